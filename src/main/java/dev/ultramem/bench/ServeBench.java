package dev.ultramem.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ultramem.infer.TextCodec;
import dev.ultramem.model.Model;
import dev.ultramem.serve.CompletionServer;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * The server against the decoder it drives: tokens/s of {@code batch}-slot decode steps called
 * directly, then tokens/s of the HTTP server (continuous batching, SSE, JSON) under {@code clients}
 * concurrent streaming clients on loopback, counted from the first request to the last [DONE], so
 * the server's figure also pays for prefill, admission and the HTTP work. Each side is timed on its second round
 * (the first warms the JIT up on the same work), since a round lasts about a second.
 */
public final class ServeBench {
    private ServeBench() {}

    /**
     * serverTokensPerSecond counts from the first request to the last [DONE]; steadyTokensPerSecond
     * only while every client streams (from the last first token to the first finish), the figure to
     * compare with direct decode steps, which exclude prefill too.
     */
    public record Result(double decodeTokensPerSecond, double serverTokensPerSecond, double steadyTokensPerSecond,
                         double meanTtftMillis, long tokens, int failed) {
        public double ratio() { return steadyTokensPerSecond / decodeTokensPerSecond; }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Every prompt: promptTokens bytes of text; every completion: tokens tokens (seeded sampling). */
    public static Result run(Model model, int batch, int clients, int promptTokens, int tokens) throws IOException, InterruptedException {
        int ctx = promptTokens + tokens;
        if (ctx > model.config().maxSeqLen)
            throw new IllegalArgumentException("prompt + tokens (" + ctx + ") exceed max_seq_len " + model.config().maxSeqLen);
        model.setTraining(false);
        // both sides measured after one identical unmeasured round, so neither figure includes JIT warm-up
        directDecode(model.newBatchDecoder(batch, ctx), promptTokens, tokens);
        double direct = directDecode(model.newBatchDecoder(batch, ctx), promptTokens, tokens);

        Model.BatchDecoder dec = model.newBatchDecoder(batch, ctx);
        var opts = new CompletionServer.Options("127.0.0.1", 0, clients, Math.max(32, batch), 1 << 20, "bench");
        try (CompletionServer server = CompletionServer.start(dec, TextCodec.bytes(), opts);
             ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(30)).build();
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            stream(client, uri, prompt(0, promptTokens), 2, 0);  // the HTTP path answers
            for (Future<long[]> f : submitAll(ex, client, uri, clients, promptTokens, tokens)) {
                try {
                    f.get(1, TimeUnit.HOURS);
                } catch (Exception e) {
                    // a failed warm-up request shows again, counted, in the measured round
                }
            }
            // the scheduler's token count over time, to find the rate while all clients stream
            List<long[]> samples = java.util.Collections.synchronizedList(new ArrayList<>());
            var scheduler = server.scheduler();
            Thread sampler = Thread.ofVirtual().start(() -> {
                while (!Thread.currentThread().isInterrupted()) {
                    samples.add(new long[]{System.nanoTime(), scheduler.tokensGenerated()});
                    try {
                        Thread.sleep(20);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            long t0 = System.nanoTime();
            List<Future<long[]>> fs = submitAll(ex, client, uri, clients, promptTokens, tokens);
            long total = 0, ttft = 0, lastFirst = 0, firstEnd = Long.MAX_VALUE;
            int failed = 0;
            for (Future<long[]> f : fs) {
                long[] r;
                try {
                    r = f.get(1, TimeUnit.HOURS);
                } catch (Exception e) {
                    failed++;
                    continue;
                }
                total += r[0];
                ttft += r[1] - t0;
                lastFirst = Math.max(lastFirst, r[1]);
                firstEnd = Math.min(firstEnd, r[2]);
            }
            double sec = (System.nanoTime() - t0) / 1e9;
            sampler.interrupt();
            sampler.join();
            int ok = clients - failed;
            return new Result(direct, total / sec, rate(samples, lastFirst, firstEnd), ok == 0 ? 0 : ttft / 1e6 / ok, total, failed);
        }
    }

    /** One streaming request per client, client k with prompt k and seed k. */
    private static List<Future<long[]>> submitAll(ExecutorService ex, HttpClient client, URI uri, int clients,
                                                  int promptTokens, int tokens) {
        List<Future<long[]>> fs = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            int k = i;
            fs.add(ex.submit(() -> stream(client, uri, prompt(k, promptTokens), tokens, k)));
        }
        return fs;
    }

    /** tokens/s between the first and last samples inside [from, to]; NaN when fewer than two fall there. */
    private static double rate(List<long[]> samples, long from, long to) {
        long[] a = null, b = null;
        synchronized (samples) {
            for (long[] s : samples) {
                if (s[0] < from || s[0] > to) continue;
                if (a == null) a = s;
                b = s;
            }
        }
        if (a == null || b == a) return Double.NaN;
        return (b[1] - a[1]) / ((b[0] - a[0]) / 1e9);
    }

    /** tokens/s of step calls over all slots after every slot was prefilled. */
    private static double directDecode(Model.BatchDecoder dec, int promptTokens, int tokens) {
        int b = dec.capacity();
        int[] slots = new int[b], next = new int[b];
        int[][] chunks = new int[b][];
        for (int s = 0; s < b; s++) {
            slots[s] = s;
            chunks[s] = TextCodec.bytes().encode(prompt(s, promptTokens));
            next[s] = 'a' + s % 26;
        }
        dec.forward(slots, chunks, b);
        dec.step(slots, next, b);  // warm-up
        int steps = tokens - 1;
        long t0 = System.nanoTime();
        for (int i = 0; i < steps; i++) {
            float[] logits = dec.step(slots, next, b);
            for (int s = 0; s < b; s++) next[s] = Math.floorMod(Float.floatToIntBits(logits[s * dec.vocab()]), 26) + 'a';
        }
        return (double) b * steps / ((System.nanoTime() - t0) / 1e9);
    }

    private static String prompt(int i, int len) {
        StringBuilder sb = new StringBuilder("request " + i + ": ");
        while (sb.length() < len) sb.append("the cat sat on the mat. ");
        return sb.substring(0, len);
    }

    /** One streaming completion: {tokens generated, time of its first event, time of its last}. */
    private static long[] stream(HttpClient client, URI uri, String prompt, int tokens, long seed) throws IOException, InterruptedException {
        var body = JSON.createObjectNode().put("prompt", prompt).put("max_tokens", tokens).put("temperature", 0.8)
                .put("seed", seed).put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        HttpResponse<java.util.stream.Stream<String>> r = client.send(HttpRequest.newBuilder(uri)
                .POST(HttpRequest.BodyPublishers.ofString(body.toString())).build(), HttpResponse.BodyHandlers.ofLines());
        if (r.statusCode() != 200) throw new IOException("status " + r.statusCode());
        long first = 0, last = 0, n = 0;
        for (String line : (Iterable<String>) r.body()::iterator) {
            if (!line.startsWith("data: {")) continue;
            last = System.nanoTime();
            if (first == 0) first = last;
            // only the usage chunk is parsed: the clients share the server's cores, so their work is kept small
            if (!line.contains("\"usage\":{")) continue;
            JsonNode e = JSON.readTree(line.substring(6));
            if (e.hasNonNull("usage")) n = e.get("usage").get("completion_tokens").asLong();
        }
        if (n != tokens) throw new IOException("stream ended after " + n + " of " + tokens + " tokens");
        return new long[]{n, first, last};
    }
}
