package dev.ultramem.memory;

/**
 * Variance-matching initialisation of the memory layers (UltraMemV2 paper, appendix A; official
 * code does not implement it). Assumptions: the memory input has unit variance, every linear has
 * std sqrt(2/(5d)) (so a projected coordinate has variance 0.4), the norm weights are calibrated
 * so the mean selected score is 1 with relative std σ_s. The value std is chosen so the memory
 * output variance equals the output variance of a SwiGLU FFN of the model (eq. 25):
 * {@code σ_ffn² = 0.064·k_inner/(2L)}, {@code k_inner} = FFN inner width / d.
 * <ul>
 *   <li>with pre-values (eq. 22/26): {@code σ_mem² = 0.16·(1+σ_s²)·σ_V⁴·d_pre·k·H·d_v/d}, so
 *       {@code σ_V⁴ = 0.2·k_inner·d / (k·H·(1+σ_s²)·d_pre·d_v·L)};</li>
 *   <li>without pre-values (v1, or V2 with pre_vdim 0) the same derivation with the pre-value factor
 *       removed: {@code σ_mem² = 0.4·(1+σ_s²)·σ_V²·k·H·d_v/d}, so
 *       {@code σ_V² = 0.08·k_inner·d / (k·H·(1+σ_s²)·d_v·L)}.</li>
 * </ul>
 * L is the number of memory layers. Pre-values use the same std as the values.
 */
public final class PaperInit {
    private PaperInit() {}

    /** Relative std of the selected scores assumed where it cannot be measured per layer (shared tables). */
    public static final double DEFAULT_SIGMA_S = 0.15;

    public static double linearStd(MemoryConfig cfg) { return Math.sqrt(2.0 / (5.0 * cfg.dModel())); }

    public static double kInner(MemoryConfig cfg) { return cfg.ffnInner() / cfg.dModel(); }

    public static double valueStd(MemoryConfig cfg, int memLayerNum, double sigmaS, int preVdim) {
        double k = cfg.knn(), H = cfg.heads(), dv = cfg.vdim(), L = Math.max(1, memLayerNum), h = cfg.dModel();
        double s = 1 + sigmaS * sigmaS;
        if (preVdim > 0) return Math.pow(0.2 * kInner(cfg) * h / (k * H * s * preVdim * dv * L), 0.25);
        return Math.sqrt(0.08 * kInner(cfg) * h / (k * H * s * dv * L));
    }
}
