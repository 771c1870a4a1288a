package dev.ultramem.cli;

import dev.ultramem.core.UserError;
import dev.ultramem.infer.TextCodec;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.model.Model;
import dev.ultramem.serve.CompletionServer;
import dev.ultramem.train.Checkpoint;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.io.PrintWriter;
import java.net.BindException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serves a checkpoint over HTTP with an OpenAI-compatible API and continuous batching:",
                "POST /v1/completions (stream: true for server-sent events), GET /v1/models, /health, /metrics (Prometheus).",
                "SIGTERM or Ctrl-C stops admitting requests, finishes the running ones within --grace, then exits 0."})
final class ServeCommand implements Callable<Integer> {
    @CommandLine.Spec CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", paramLabel = "RUN", description = "checkpoint file or run folder")
    Path checkpoint;

    @Option(names = "--host", description = "address to listen on; 0.0.0.0 for every interface (default: ${DEFAULT-VALUE})")
    String host = "127.0.0.1";

    @Option(names = "--port", description = "TCP port, 0 for any free one (default: ${DEFAULT-VALUE})")
    int port = 8000;

    @Option(names = "--max-batch", paramLabel = "B", description = "sequences decoded together, each in its own KV-cache slot (default: ${DEFAULT-VALUE})")
    int maxBatch = 16;

    @Option(names = "--queue", paramLabel = "Q", description = "requests that may wait for a free slot; beyond them the answer is 503 (default: ${DEFAULT-VALUE})")
    int queue = 64;

    @Option(names = "--context", paramLabel = "C", description = "positions each slot keeps, the longest prompt and max_tokens (default: the model's max_seq_len)")
    Integer context;

    @Option(names = "--prefill-tokens", description = "prompt tokens fed per scheduler iteration, which bounds how long a new prompt delays running streams (default: max(32, B))")
    Integer prefillTokens;

    @Option(names = "--max-body", paramLabel = "BYTES", description = "largest request body (default: ${DEFAULT-VALUE})")
    int maxBody = 1 << 20;

    @Option(names = "--kv-bf16", description = "keep the KV cache as bfloat16: half its memory; logits move by about 1e-2 of their scale")
    boolean kvBf16;

    @Option(names = "--model-name", description = "model id in the API (default: the run folder's name)")
    String modelName;

    @Option(names = "--grace", paramLabel = "SECONDS", description = "how long a stop waits for running completions (default: ${DEFAULT-VALUE})")
    double grace = 30;

    @CommandLine.Mixin ThreadsOption threads = new ThreadsOption();

    @Override
    public Integer call() throws Exception {
        PrintWriter o = spec.commandLine().getOut();
        threads.apply();
        if (port < 0 || port > 65535) throw new UserError("--port must be in [0, 65535], got " + port);
        if (maxBatch < 1) throw new UserError("--max-batch must be >= 1, got " + maxBatch);
        if (queue < 0) throw new UserError("--queue must be >= 0, got " + queue);
        if (maxBody < 1024) throw new UserError("--max-body must be >= 1024 bytes, got " + maxBody);
        if (!(grace >= 0) || Double.isInfinite(grace)) throw new UserError("--grace must be >= 0 seconds, got " + grace);
        int prefill = prefillTokens != null ? prefillTokens : Math.max(32, maxBatch);
        if (prefill < 1) throw new UserError("--prefill-tokens must be >= 1, got " + prefill);
        Capacity.requireForCheckpoint(checkpoint, MemoryPlan.Use.GENERATE, j -> {});
        Checkpoint.Loaded ck = Checkpoint.load(checkpoint, false, true);
        ck.model().setTraining(false);
        TextCodec codec = TextCodec.of(ck.tokenizer());
        int vocab = ck.job().model.vocabSize;
        if (vocab < codec.vocabSize())
            throw new UserError("the model's vocabulary (" + vocab + ") is smaller than its tokenizer's (" + codec.vocabSize()
                    + ", " + ck.tokenizer().name() + ")");
        int ctx = context != null ? context : ck.job().model.maxSeqLen;
        // the KV caches of all slots are allocated up front: refuse a size the heap cannot hold
        long kv = Model.kvCacheBytes(ck.job().model, maxBatch, ctx, kvBf16);
        Runtime rt = Runtime.getRuntime();
        long free = rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
        if (kv > free * 0.9)
            throw new UserError("--max-batch " + maxBatch + " × --context " + ctx + " needs " + MemoryPlan.human(kv)
                    + " of KV cache, more than the " + MemoryPlan.human(free) + " of heap left; lower them or raise -Xmx via ULTRAMEM_JAVA_OPTS");
        ck.model().useBf16KvCache(kvBf16);
        Model.BatchDecoder dec = ck.model().newBatchDecoder(maxBatch, ctx);
        String name = modelName != null ? modelName : defaultName(checkpoint);
        var opts = new CompletionServer.Options(host, port, queue, prefill, maxBody, name);
        CompletionServer server;
        try {
            server = CompletionServer.start(dec, codec, opts);
        } catch (BindException e) {
            throw new UserError("cannot listen on " + host + ":" + port + ": " + e.getMessage());
        } catch (IOException | IllegalArgumentException e) {
            throw new UserError("cannot start the server on " + host + ":" + port + ": " + e.getMessage());
        }
        try (StopSignals signals = StopSignals.install(System.err,
                "no new requests; finishing the running completions (up to " + grace + " s)", "running completions were cut off")) {
            o.println("serving " + name + " on http://" + host + ":" + server.port() + " (max batch " + maxBatch + ", queue " + queue
                    + ", context " + ctx + ", prefill " + prefill + " tokens per step" + (kvBf16 ? ", KV cache bf16" : "") + ")");
            o.flush();
            while (!signals.requested()) Thread.sleep(100);
            boolean done = server.shutdown(Duration.ofMillis((long) (grace * 1000)));
            o.println(done ? "stopped: every running completion finished" : "stopped: completions still running after " + grace + " s were ended");
        }
        return 0;
    }

    /** The run folder's name (or the checkpoint file's, without its extension). */
    private static String defaultName(Path p) {
        Path abs = p.toAbsolutePath().normalize();
        String n = abs.getFileName() == null ? "ultramem" : abs.getFileName().toString();
        if (!java.nio.file.Files.isDirectory(abs) && n.endsWith(".safetensors")) {
            Path parent = abs.getParent();
            n = n.equals(Checkpoint.LATEST) && parent != null && parent.getFileName() != null
                    ? parent.getFileName().toString() : n.substring(0, n.length() - ".safetensors".length());
        }
        return n;
    }
}
