package dev.ultramem.memory;

/**
 * What the memory layers of a model are built from: the {@code mem_*} settings with the
 * type-dependent defaults resolved, the model width, and the FFN inner width the papers'
 * variance-matching init matches. Each layer reads its part (e.g. PKM and Memory+ ignore the
 * Tucker and expansion settings).
 *
 * @param type            {@code ultramem_v1}, {@code ultramem_v2}, {@code pkm} or {@code memory_plus}
 * @param dModel          width of the layer input and output
 * @param ffnInner        SwiGLU inner width of the FFN slot (MoE: experts per token × expert width)
 * @param stage1Knn       row/column top-k; 0 means {@code knn}
 * @param v1ValueExpand   UltraMem v1 implicit value expansion E (a perfect square)
 * @param queryMode       UltraMemV2 query: "released" (shared row/column query in a 2·r·kdim projection),
 *                        "paper" (a query per side and rank) or "shared" (shared row/column query, 2·kdim projection)
 * @param paperInit       the papers' variance-matching init rather than the official constants
 * @param tuckerPenalty   Tucker-core penalty weight α in force (0 = off)
 * @param keyNorm         PKM / Memory+: normalise the keys
 */
public record MemoryConfig(
        String type, int dModel, double ffnInner,
        int knum, int kdim, int vdim, int preVdim, int knn, int stage1Knn, int heads,
        double shareRatio, int keyExpandTime, int valueExpandTime, int v1ValueExpand,
        int tuckerRank, int tuckerCores, String queryMode, boolean paperInit,
        double tuckerPenalty, double tuckerTau, double keyBalanceCoef, double outputDropout,
        boolean useGluAct, boolean keyNorm) {

    /** UltraMemV2 query mode "released". */
    public boolean releasedQueries() { return "released".equals(queryMode); }
}
