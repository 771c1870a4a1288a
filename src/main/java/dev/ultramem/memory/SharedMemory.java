package dev.ultramem.memory;

import dev.ultramem.core.Param;
import dev.ultramem.core.Rng;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * The official {@code full_memory_layer} module: value (and pre-value) tables shared by all memory
 * layers of a model. UltraMemV2 layers read ring windows of it; Memory+ layers all read the whole
 * table. UltraMem v1 and PKM own their tables, so for them this holds nothing.
 *
 * <p>Tables are off-heap (they may exceed 2^31 elements) and live in the VALUE parameter group.
 */
public final class SharedMemory {

    /** {@code values_for_look_up [allValueNum, vdim]}, or null. */
    public final Param values;
    /** {@code pre_values_for_look_up [allValueNum, preVdim]}, or null. */
    public final Param preValues;
    /** Rows of the global table. */
    public final long allValueNum;

    private SharedMemory(Param values, Param preValues, long allValueNum) {
        this.values = values;
        this.preValues = preValues;
        this.allValueNum = allValueNum;
    }

    /**
     * Builds the shared tables for a config with {@code memLayerNum} memory layers.
     * UltraMemV2: {@code all_value_num = knum² · mem_layer_num}; Memory+: {@code knum²} rows of width d.
     */
    public static SharedMemory create(MemoryConfig cfg, int memLayerNum, String prefix) {
        Arena arena = Arena.ofAuto();
        return switch (cfg.type()) {
            case "ultramem_v2" -> {
                long all = (long) cfg.knum() * cfg.knum() * memLayerNum;
                Param v = Param.offHeap(prefix + "values_for_look_up", Param.Group.VALUE, arena, all, cfg.vdim());
                Param p = cfg.preVdim() > 0
                        ? Param.offHeap(prefix + "pre_values_for_look_up", Param.Group.VALUE, arena, all, cfg.preVdim())
                        : null;
                yield new SharedMemory(v, p, all);
            }
            case "memory_plus" -> {
                long all = (long) cfg.knum() * cfg.knum();
                Param v = Param.offHeap(prefix + "values_for_look_up", Param.Group.VALUE_FIXED_LR, arena, all, cfg.vdim());
                yield new SharedMemory(v, null, all);
            }
            default -> new SharedMemory(null, null, 0);
        };
    }

    public List<Param> params() {
        List<Param> out = new ArrayList<>();
        if (values != null) out.add(values);
        if (preValues != null) out.add(preValues);
        return out;
    }

    /**
     * Official init: UltraMemV2 values and pre-values N(0, 0.02²); Memory+ values N(0, 1/vdim).
     * UltraMemV2 with {@code mem_init: paper}: values and pre-values use the variance-matching std of
     * {@link PaperInit#valueStd} with the assumed score spread {@link PaperInit#DEFAULT_SIGMA_S}
     * (the table is shared, so no single layer's calibration applies).
     */
    public void initialize(MemoryConfig cfg, Rng rng) {
        if (values == null) return;
        double std = cfg.type().equals("memory_plus") ? 1.0 / Math.sqrt(cfg.vdim()) : 0.02;
        if (cfg.type().equals("ultramem_v2") && cfg.paperInit()) {
            int layers = (int) (allValueNum / ((long) cfg.knum() * cfg.knum()));
            std = PaperInit.valueStd(cfg, layers, PaperInit.DEFAULT_SIGMA_S, cfg.preVdim());
        }
        values.initNormal(rng, std);
        if (preValues != null) preValues.initNormal(rng, cfg.type().equals("ultramem_v2") ? std : 0.02);
    }
}
