package dev.ultramem.cli;

import dev.ultramem.core.Parallel;
import dev.ultramem.core.UserError;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.model.MemoryPlan;
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
        description = {"Model shape, total and activated parameter counts, FLOPs per token and the memory plan of a checkpoint or config.",
                "A model too large to build here is counted from its config (the measured bytes per token are then skipped)."})
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
        Model model = null;
        if (checkpoint != null) {
            if (preset != null || config != null || !overrides.isEmpty())
                throw new UserError("--preset, --config and --set describe a new model; they cannot be combined with a checkpoint");
            job = Capacity.peek(checkpoint);
            if (job == null || MemoryPlan.of(MemoryPlan.Use.COUNT_CHECKPOINT, job.model, job.train).fitsComfortably()) {
                Checkpoint.Loaded ck = Checkpoint.load(checkpoint, false, true);
                job = ck.job();
                model = ck.model();
                o.println("checkpoint: " + ck.file() + " (step " + ck.progress().step() + ")");
            } else {
                o.println("checkpoint: " + Checkpoint.resolve(checkpoint) + " (header only: the model is too large to load here)");
            }
        } else {
            String p = preset != null ? preset : (config == null ? Main.DEFAULT_PRESET : null);
            job = JobConfig.build(p, config, overrides);
            // counting builds and initialises the model: only when it fits with room to spare
            if (MemoryPlan.of(MemoryPlan.Use.COUNT, job.model, job.train).fitsComfortably()) model = ModelCosts.forCounting(job.model);
            o.println("config: " + (p != null ? "preset " + p : "") + (config != null ? " " + config : ""));
        }
        print(job, model, o);
        return 0;
    }

    /**
     * Shape, counts and memory plan of a job. With a built model the counts are taken on it (and the bytes read
     * per token measured by real forwards); without one (too large to build here) they are computed from the config.
     */
    static void print(JobConfig job, Model model, PrintWriter o) {
        ModelConfig c = job.model;
        int ctx = job.train.seqLen;
        o.printf("shape: vocab %d, d_model %d, %d layers, %d heads (head dim %d), max_seq_len %d%n",
                c.vocabSize, c.dModel, c.nLayers, c.nHeads, c.headDim(), c.maxSeqLen);
        o.println("tokenizer: " + c.tokenizer);
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
        long buffers = 0, idx;
        if (model != null) {
            for (Param p : model.params()) {
                if (p.trainable) byGroup.merge(p.group, p.numel(), Long::sum);
                else buffers += p.numel();
            }
            idx = 0;
            for (IndexBuffer b : model.indexBuffers()) idx += b.data().length;
        } else {
            MemoryPlan shape = MemoryPlan.of(MemoryPlan.Use.MODEL, c, null);
            for (MemoryPlan.Tensor t : shape.tensors()) {
                if (t.trainable()) byGroup.merge(t.group(), t.total(), MemoryPlan::add);
                else buffers = MemoryPlan.add(buffers, t.total());
            }
            idx = shape.indexEntries();
        }
        ModelCosts k = model != null ? ModelCosts.of(model, ctx) : ModelCosts.of(c, ctx);
        o.printf("parameters: %,d total (%s)%n", k.totalParams(), byGroup.toString().replace("{", "").replace("}", ""));
        o.printf("buffers: %,d floats, %,d indices%n", buffers, idx);
        o.printf("activated parameters per token: %,d (dense part %,d)%n", k.activatedParamsPerToken(), k.denseParams());
        o.printf("forward multiply-adds per token (context %d): %,d (attention %,d, FFN %,d, memory %,d, logits %,d)%n", ctx,
                k.forwardMacsPerToken(), k.attentionMacsPerToken(), k.ffnMacsPerToken(), k.memoryMacsPerToken(), k.logitMacsPerToken());
        o.printf("training FLOPs per token: %,d (6 x multiply-adds)%n", k.trainingFlopsPerToken());
        if (model != null) {
            // counted by the engine: a real forward at each batch size, distinct rows and experts it touched
            for (int b : new int[]{1, 8, 64, MemoryPlan.COUNT_TOKENS})
                o.printf("parameter bytes read per token at batch %d (fp32, counted): %,d%n", b, ModelCosts.measuredParamBytesPerToken(model, b));
        } else {
            o.println("parameter bytes read per token (counted): skipped, the model is too large to build here; the counts above are computed from the config");
        }
        printMemory(job, o);
    }

    /** The memory plan for training and for generation, and what this machine offers. */
    static void printMemory(JobConfig job, PrintWriter o) {
        MemoryPlan train = MemoryPlan.of(MemoryPlan.Use.TRAIN, job.model, job.train);
        o.printf("memory for training (batch %d x %d tokens, %d threads): heap %s (%s)%s%s%n", job.train.batchSize, job.train.seqLen,
                Parallel.threads(), MemoryPlan.human(train.heapBytes()), train.partsOf(true),
                train.offHeapBytes() > 0 ? "; off-heap " + MemoryPlan.human(train.offHeapBytes()) + " (" + train.partsOf(false) + ")" : "",
                train.fits() ? "" : "; more than this machine offers");
        MemoryPlan gen = MemoryPlan.of(MemoryPlan.Use.GENERATE, job.model, job.train);
        o.printf("memory for generation (KV cache per sequence at max_seq_len %d): heap %s (%s)%s%s%n", job.model.maxSeqLen,
                MemoryPlan.human(gen.heapBytes()), gen.partsOf(true),
                gen.mappedBytes() > 0 ? "; value tables " + MemoryPlan.human(gen.mappedBytes()) + " memory-mapped from the checkpoint" : "",
                gen.fits() ? "" : "; more than this machine offers");
        long tokens = (long) job.train.batchSize * job.train.seqLen;
        o.printf("activation memory: %s per training token; decode state %s per sequence (KV cache at max_seq_len %d)%n",
                MemoryPlan.human(train.bytes(MemoryPlan.Part.ACTIVATIONS, true) / tokens),
                MemoryPlan.human(gen.bytes(MemoryPlan.Part.KV_CACHE, true)), job.model.maxSeqLen);
        o.printf("available here: heap %s (-Xmx), direct memory %s, physical memory %s%n", MemoryPlan.human(Runtime.getRuntime().maxMemory()),
                MemoryPlan.human(MemoryPlan.maxDirectMemory()), MemoryPlan.human(MemoryPlan.physicalMemory()));
    }
}
