package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "info", mixinStandardHelpOptions = true,
        description = "Model shape, total and activated parameter counts and FLOPs per token of a checkpoint or config.")
final class InfoCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "CHECKPOINT", description = "checkpoint file or run folder")
    Path checkpoint;

    @Option(names = "--preset", description = "named preset (default: " + Main.DEFAULT_PRESET + " when neither a checkpoint nor --config is given)")
    String preset;

    @Option(names = "--config", paramLabel = "FILE", description = "JSON or YAML config with 'model' and 'train' sections")
    Path config;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "config override")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--list-presets", description = "list the shipped presets")
    boolean listPresets;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        if (listPresets) {
            for (String n : JobConfig.presetNames()) o.println(n);
            return 0;
        }
        JobConfig job;
        Model model;
        if (checkpoint != null) {
            if (preset != null || config != null || !overrides.isEmpty())
                throw new UserError("--preset, --config and --set describe a new model; they cannot be combined with a checkpoint");
            Checkpoint.Loaded ck = Checkpoint.load(checkpoint, false, true);
            job = ck.job();
            model = ck.model();
            o.println("checkpoint: " + ck.file() + " (step " + ck.progress().step() + ")");
        } else {
            String p = preset != null ? preset : (config == null ? Main.DEFAULT_PRESET : null);
            job = JobConfig.build(p, config, overrides);
            model = ModelCosts.forCounting(job.model);
            o.println("config: " + (p != null ? "preset " + p : "") + (config != null ? " " + config : ""));
        }
        print(model, job.train.seqLen, o);
        return 0;
    }

    static void print(Model model, int ctx, PrintWriter o) {
        ModelConfig c = model.config();
        o.printf("shape: vocab %d, d_model %d, %d layers, %d heads (head dim %d), max_seq_len %d%n",
                c.vocabSize, c.dModel, c.nLayers, c.nHeads, c.headDim(), c.maxSeqLen);
        if ("moe".equals(c.ffnType))
            o.printf("ffn: moe, %d experts, top-%d, expert SwiGLU width %d%n", c.moeNumExperts, c.moeTopK, c.moeExpertHidden);
        else
            o.printf("ffn: dense SwiGLU, mlp_hidden_size %d (inner width %d)%n", c.mlpHiddenSize, c.mlpHiddenSize / 2);
        if (c.hasMemory())
            o.printf("memory: %s at %s, knum %d, kdim %d, vdim %d, knn %d, heads %d%n", c.memType, c.memInsertWay,
                    c.memKnum, c.memKdim, c.memVdim, c.memKnn, c.memHead);
        else
            o.println("memory: none");
        Map<Param.Group, Long> byGroup = new EnumMap<>(Param.Group.class);
        for (Param p : model.params()) if (p.trainable) byGroup.merge(p.group, p.numel(), Long::sum);
        long idx = 0;
        for (IndexBuffer b : model.indexBuffers()) idx += b.data().length;
        ModelCosts k = ModelCosts.of(model, ctx);
        o.printf("parameters: %,d total (%s)%n", k.totalParams(), byGroup.toString().replace("{", "").replace("}", ""));
        long buffers = 0;
        for (Param p : model.params()) if (!p.trainable) buffers += p.numel();
        o.printf("buffers: %,d floats, %,d indices%n", buffers, idx);
        o.printf("activated parameters per token: %,d (dense part %,d)%n", k.activatedParamsPerToken(), k.denseParams());
        o.printf("forward multiply-adds per token (context %d): %,d (attention %,d, FFN %,d, memory %,d, logits %,d)%n", ctx,
                k.forwardMacsPerToken(), k.attentionMacsPerToken(), k.ffnMacsPerToken(), k.memoryMacsPerToken(), k.logitMacsPerToken());
        o.printf("training FLOPs per token: %,d (6 x multiply-adds)%n", k.trainingFlopsPerToken());
        // counted by the engine: a real forward at each batch size, distinct rows and experts it touched
        for (int b : new int[]{1, 8, 64, 512})
            o.printf("parameter bytes read per token at batch %d (fp32, counted): %,d%n", b, ModelCosts.measuredParamBytesPerToken(model, b));
    }
}
