package dev.ultramem.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;
import dev.ultramem.io.AtomicFiles;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Configs;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.model.OfficialWeights;
import dev.ultramem.train.Checkpoint;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Writes a run's model in the official PyTorch/OLMo layout: DIR/model.safetensors (official",
                "tensor names, shapes and layouts, weights and buffers only) and DIR/config.yaml (the official",
                "ModelConfig fields under 'model:'). Models the official code cannot represent are refused."})
final class ExportCommand implements Callable<Integer> {
    static final String WEIGHTS = "model.safetensors", CONFIG = "config.yaml";

    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "RUN", description = "run folder or checkpoint file")
    Path run;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "folder to write model.safetensors and config.yaml into")
    Path out;

    @Option(names = "--force", description = "write into a folder that is not empty (replacing the two files)")
    boolean force;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        requireOutFolder();
        // tables are read from the mapped checkpoint in place: a table larger than RAM exports too
        Checkpoint.Loaded ck = Checkpoint.load(run, false, true);
        Model model = ck.model();
        ModelConfig cfg = model.config();
        ObjectNode official = OfficialWeights.officialConfig(cfg);
        List<Safetensors.Out> tensors = OfficialWeights.officialTensors(model);
        ObjectNode yaml = Configs.JSON.createObjectNode();
        yaml.set("model", official);
        Path weights = out.resolve(WEIGHTS), config = out.resolve(CONFIG);
        try {
            Files.createDirectories(out);
        } catch (IOException e) {
            throw new UserError(out + ": cannot create the output folder (" + e.getMessage() + ")");
        }
        try {
            // the config also rides in the metadata, so `import DIR/model.safetensors` needs no --config
            Safetensors.write(weights, tensors, Map.of("format", "pt", "model_config", official.toString()));
        } catch (IOException e) {
            throw AtomicFiles.writeError(weights, e);
        }
        try {
            AtomicFiles.write(config, Configs.YAML.writeValueAsString(yaml));
        } catch (IOException e) {
            throw AtomicFiles.writeError(config, e);
        }
        long numbers = 0;
        for (Safetensors.Out t : tensors) numbers += Safetensors.Out.numel(t.shape());
        o.printf("exported %s (%s, %d layers, d_model %d, memory %s): %d tensors, %,d numbers%n", ck.file(), cfg.ffnType,
                cfg.nLayers, cfg.dModel, cfg.memType, tensors.size(), numbers);
        if (cfg.memType.equals("ultramem_v2") && cfg.memQueryMode.equals("shared"))
            o.println("note: the 2·kdim shared query is written in the released 4·kdim layout (mem_q_for_each_tucker_rank: true, "
                    + "unused rows zero), which the official code runs and which computes the same function");
        o.println("weights: " + weights);
        o.println("config:  " + config);
        return 0;
    }

    /** DIR may be new or empty; one that holds anything needs --force, and a file is never a folder. */
    private void requireOutFolder() {
        if (Files.exists(out) && !Files.isDirectory(out)) throw new UserError(out + " exists and is not a folder");
        if (force || !Files.isDirectory(out)) return;
        try (Stream<Path> s = Files.list(out)) {
            if (s.findAny().isPresent())
                throw new UserError(out + " is not empty; choose another --out or pass --force to replace " + WEIGHTS + " and " + CONFIG + " there");
        } catch (IOException e) {
            throw UserError.cannotRead(out, e);
        }
    }
}
