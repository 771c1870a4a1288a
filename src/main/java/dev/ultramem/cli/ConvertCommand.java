package dev.ultramem.cli;

import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.RunLock;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;

@Command(name = "convert", mixinStandardHelpOptions = true,
        description = {"Writes a run's model with its value and pre-value tables stored as bf16 (half the disk, RAM and",
                "bytes read per decoded token; for generate, eval, serve and bench, not for training) or back as",
                "float32. Dense weights stay float32. The result is a weights-only checkpoint in a new run folder;",
                "the tables are converted as they are written, so a table larger than RAM converts too."})
final class ConvertCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "RUN", description = "run folder or checkpoint file")
    Path run;

    @Option(names = "--dtype", required = true, paramLabel = "bf16|f32", description = "storage of the tables: bf16 or f32")
    String dtype;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "run folder to write latest.safetensors and config.json into")
    Path out;

    @Option(names = "--force", description = "overwrite a run folder that already holds a checkpoint")
    boolean force;

    @Override
    public Integer call() {
        PrintWriter o = spec.commandLine().getOut();
        Param.Storage to = switch (dtype.toLowerCase(java.util.Locale.ROOT)) {
            case "bf16" -> Param.Storage.BF16;
            case "f32", "fp32", "float32" -> Param.Storage.F32;
            default -> throw new UserError("--dtype must be bf16 or f32, not " + UserError.quote(dtype));
        };
        Path src = Checkpoint.resolve(run), dst = out.resolve(Checkpoint.LATEST);
        if (Files.exists(dst) && sameFile(src, dst))
            throw new UserError(out + " is the run being converted; write the converted model to another folder (the source stays as it is)");
        try (RunLock lock = Runs.lock(out, o)) {
            if (!force && Files.exists(dst))
                throw new UserError(out + " already holds a checkpoint; pass --force to replace it");
            // the tables are read from the mapped source and converted while they are written
            Checkpoint.Loaded ck = Checkpoint.load(src, false, true);
            Checkpoint.save(dst, ck.job(), ck.model(), null, ck.progress(), ck.tokenizer(), to);
            long before = size(src), after = size(dst);
            o.printf("wrote %s: tables as %s, %s on disk (the source has %s)%n", dst, to == Param.Storage.BF16 ? "bf16" : "float32",
                    MemoryPlan.human(after), MemoryPlan.human(before));
        }
        return 0;
    }

    private static boolean sameFile(Path a, Path b) {
        try {
            return Files.isSameFile(a, b);
        } catch (IOException e) {
            return false;
        }
    }

    private static long size(Path f) {
        try { return Files.size(f); } catch (IOException e) { return -1; }
    }
}
