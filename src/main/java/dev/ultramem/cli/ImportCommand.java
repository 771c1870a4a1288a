package dev.ultramem.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ultramem.core.Rng;
import dev.ultramem.core.UserError;
import dev.ultramem.data.ByteTokenizer;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.data.Tokenizers;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Configs;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.ModelCosts;
import dev.ultramem.model.OfficialWeights;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.RunLock;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.TrainConfig;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "import", mixinStandardHelpOptions = true,
        description = {"Converts weights stored under the official PyTorch names into a checkpoint of this engine.",
                "Models: OLMo with UltraMem, UltraMemV2 or Memory+ layers, e.g. a state dict saved as safetensors.",
                "The official model config comes from --config (JSON/YAML, the official ModelConfig fields, or a",
                "file with a 'model' section) or from the file's metadata ('config' -> 'model_config').",
                "The model runs in released mode: it computes what the official code computes.",
                "`export` writes the other direction."})
final class ImportCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "WEIGHTS", description = {"safetensors file with official tensor names (F32, BF16 or F16),",
            "or a folder written by export (model.safetensors and config.yaml)"})
    Path weights;

    @Option(names = "--config", paramLabel = "FILE", description = "official model config (JSON or YAML)")
    Path config;

    @Option(names = "--out", paramLabel = "DIR", description = "run folder to write latest.safetensors into (default: ${DEFAULT-VALUE})")
    Path out = Path.of("runs", "imported");

    @Option(names = "--force", description = "overwrite a run folder that already holds a checkpoint")
    boolean force;

    @Option(names = "--tokenizer", paramLabel = "NAME", description = {"the model's tokenizer: byte, r50k_base, cl100k_base or hf:PATH",
            "(a Hugging Face tokenizer.json, e.g. GPT-NeoX's; embedded in the checkpoint) (default: ${DEFAULT-VALUE})"})
    String tokenizer = ByteTokenizer.NAME;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        if (Files.isDirectory(weights)) {
            if (config == null && Files.exists(weights.resolve(ExportCommand.CONFIG))) config = weights.resolve(ExportCommand.CONFIG);
            weights = weights.resolve(ExportCommand.WEIGHTS);
        }
        try (RunLock lock = Runs.lock(out, o); Safetensors st = Safetensors.open(weights)) {
            if (!force && Files.exists(out.resolve(Checkpoint.LATEST)))
                throw new UserError(out + " already holds a checkpoint; choose another --out or pass --force to overwrite it");
            ModelConfig cfg = OfficialWeights.configFromOfficial(officialConfig(st));
            cfg.tokenizer = tokenizer;
            Tokenizer tok = Tokenizers.named(tokenizer);
            if (!(tok instanceof ByteTokenizer)) Tokenizers.requireFits(tok, cfg.vocabSize);
            TrainConfig train = new TrainConfig();
            train.seqLen = Math.min(train.seqLen, cfg.maxSeqLen);
            JobConfig job = new JobConfig(cfg, train.validate());
            Capacity.require(MemoryPlan.Use.IMPORT, job);
            Model model = new Model(cfg);
            OfficialWeights.load(model, st, true); // the stored u, v, which the official inference uses
            Path file = out.resolve(Checkpoint.LATEST);
            // fresh optimizer state, so the imported model can be fine-tuned with `resume`
            Checkpoint.save(file, job, model, new AdamW(model.params(), train),
                    new Checkpoint.Progress(0, new Rng(train.seed).state(), null, new float[0], new float[0], new float[0]), tok);
            ModelCosts k = ModelCosts.of(model, cfg.maxSeqLen);
            o.printf("imported %s: %s, %d layers, d_model %d, memory %s; %,d parameters%n", weights, cfg.ffnType,
                    cfg.nLayers, cfg.dModel, cfg.memType, k.totalParams());
            o.println("checkpoint: " + file);
            if (!(tok instanceof ByteTokenizer)) o.println("tokenizer: " + tok.name() + " (" + tok.vocabSize() + " token ids)");
            else if (cfg.vocabSize > ByteTokenizer.VOCAB_SIZE)
                o.println("note: it reads bytes as tokens; pass --tokenizer with the tokenizer it was trained with to feed it text");
            if (tok instanceof ByteTokenizer && cfg.vocabSize < ByteTokenizer.VOCAB_SIZE)
                o.println("note: its vocabulary (" + cfg.vocabSize + ") is smaller than the byte tokenizer's " + ByteTokenizer.VOCAB_SIZE
                        + ", so info works on it but generate, eval and resume on text do not");
        }
        return 0;
    }

    private JsonNode officialConfig(Safetensors st) {
        if (config != null) {
            JsonNode n = Configs.readTree(config);
            return n.has("model") && n.get("model").isObject() ? n.get("model") : n;
        }
        JsonNode meta = st.metadataJson("config");
        if (meta != null && meta.has("model_config")) return meta.get("model_config");
        JsonNode direct = st.metadataJson("model_config");
        if (direct != null) return direct;
        throw new UserError(weights + ": no model config in the file's metadata; pass the official config with --config");
    }
}
