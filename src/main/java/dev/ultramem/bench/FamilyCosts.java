package dev.ultramem.bench;

import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.model.PresetFamily;

import java.io.PrintStream;

/**
 * Prints the cost table of the preset family (docs/PRESETS.md): total and activated parameters,
 * forward MACs and training FLOPs per token at the given context, and the parameter bytes a forward
 * reads per token at batch 1 and 64 (measured on freshly initialised weights, seed 1).
 */
public final class FamilyCosts {
    private FamilyCosts() {}

    public static void run(PrintStream out, int contextLen) {
        out.printf("context %d; training FLOPs = 6 x forward MACs; bytes/token measured by a forward over B tokens%n", contextLen);
        out.println("| preset | total params | table params | activated params/token | FFN+memory MACs/token | forward MACs/token | training FLOPs/token | param bytes/token B=1 | B=64 |");
        out.println("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (String name : PresetFamily.NAMES) {
            ModelConfig cfg = PresetFamily.modelConfig(name);
            Model m = ModelCosts.forCounting(cfg);
            ModelCosts c = ModelCosts.of(m, contextLen);
            long b1 = ModelCosts.measuredParamBytesPerToken(m, 1);
            long b64 = ModelCosts.measuredParamBytesPerToken(m, 64);
            out.printf("| %s | %,d | %,d | %,d | %,d | %,d | %,d | %,d | %,d |%n", name, c.totalParams(), c.tableParams(),
                    c.activatedParamsPerToken(), c.ffnMacsPerToken() + c.memoryMacsPerToken(), c.forwardMacsPerToken(),
                    c.trainingFlopsPerToken(), b1, b64);
        }
    }

    public static void main(String[] args) {
        run(System.out, args.length > 0 ? Integer.parseInt(args[0]) : 256);
    }
}
