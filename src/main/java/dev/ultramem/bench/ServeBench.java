package dev.ultramem.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ultramem.infer.TextCodec;
import dev.ultramem.model.Model;
import dev.ultramem.serve.CompletionServer;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.CompilationMXBean;
import java.lang.management.ManagementFactory;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
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
 * the server's figure also pays for prefill, admission and the HTTP work. Neither side is timed cold: the direct
 * rounds run until steady, the server's measured round follows unmeasured rounds of the same work until the JIT
 * has settled ({@link #warmUpServer}).
 */
public final class ServeBench {
    private ServeBench() {}

    /**
     * serverTokensPerSecond counts from the first request to the last [DONE]; steadyTokensPerSecond
     * only while every client streams (from the last first token to the first finish), the figure to
     * compare with direct decode steps, which exclude prefill too.
     */
    public record Result(double decodeTokensPerSecond, double serverTokensPerSecond, double steadyTokensPerSecond,
                         double meanTtftMillis, long tokens, int failed, String firstFailure, Steps direct, Steps server,
                         int serverWarmUps) {
        public double ratio() { return steadyTokensPerSecond / decodeTokensPerSecond; }
    }

    /**
     * Decode steps of one measured round: how many, their mean batch and mean time; the server's are
     * read from its {@code /metrics} before and after the round, so they show whether the server's steps
     * themselves are slower than the direct ones or the time goes between them.
     */
    public record Steps(long count, double meanBatch, double meanMillis) {
        double seconds() { return count * meanMillis / 1e3; }

        double tokensPerSecond() { return meanBatch * 1e3 / meanMillis; }
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Every prompt: promptTokens bytes of text; every completion: tokens tokens (seeded sampling). */
    public static Result run(Model model, int batch, int clients, int promptTokens, int tokens) throws IOException, InterruptedException {
        int ctx = promptTokens + tokens;
        if (ctx > model.config().maxSeqLen)
            throw new IllegalArgumentException("prompt + tokens (" + ctx + ") exceed max_seq_len " + model.config().maxSeqLen);
        model.setTraining(false);
        // The direct side: rounds until steady (the benches' warm-up rule), then the median of three rounds before
        // the server's measured round and three after it, since this machine's speed drifts within minutes.
        Model.BatchDecoder direct = model.newBatchDecoder(batch, ctx);
        SteadyState.warmUp(() -> directDecode(direct, promptTokens, tokens).seconds());
        List<Steps> directRounds = new ArrayList<>();
        for (int i = 0; i < 3; i++) directRounds.add(directDecode(direct, promptTokens, tokens));

        Model.BatchDecoder dec = model.newBatchDecoder(batch, ctx);
        var opts = new CompletionServer.Options("127.0.0.1", 0, clients, Math.max(32, batch), 1 << 20, "bench");
        try (CompletionServer server = CompletionServer.start(dec, TextCodec.bytes(), opts);
             ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(30)).build();
            URI uri = URI.create("http://127.0.0.1:" + server.port() + "/v1/completions");
            stream(uri, prompt(0, promptTokens), 2, 0);  // the HTTP path answers
            int warmUps = warmUpServer(ex, uri, clients, promptTokens, tokens);
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
            URI metrics = URI.create("http://127.0.0.1:" + server.port() + "/metrics");
            double[] before = stepSums(client, metrics);
            long t0 = System.nanoTime();
            List<Future<long[]>> fs = submitAll(ex, uri, clients, promptTokens, tokens);
            long total = 0, ttft = 0, lastFirst = 0, firstEnd = Long.MAX_VALUE;
            int failed = 0;
            String firstFailure = null;
            for (Future<long[]> f : fs) {
                long[] r;
                try {
                    r = f.get(1, TimeUnit.HOURS);
                } catch (Exception e) {
                    if (failed++ == 0) firstFailure = String.valueOf(e.getCause() != null ? e.getCause() : e);
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
            double[] after = stepSums(client, metrics);
            long n = Math.round(after[0] - before[0]);
            Steps serverSteps = new Steps(n, n == 0 ? 0 : (after[2] - before[2]) / n, n == 0 ? 0 : (after[1] - before[1]) * 1e3 / n);
            for (int i = 0; i < 3; i++) directRounds.add(directDecode(direct, promptTokens, tokens));
            directRounds.sort(java.util.Comparator.comparingDouble(Steps::meanMillis));
            Steps directSteps = directRounds.get(directRounds.size() / 2);
            int ok = clients - failed;
            return new Result(directSteps.tokensPerSecond(), total / sec, rate(samples, lastFirst, firstEnd), ok == 0 ? 0 : ttft / 1e6 / ok, total, failed,
                    firstFailure, directSteps, serverSteps, warmUps);
        }
    }

    /**
     * Rounds of the measured round's requests until the JIT compiled for less than 15% of a round's time (at least
     * three rounds, at most 20 s): a server's per-request code (connections, JSON, virtual threads, HTTP parsing) runs
     * 64 times a round and takes about twenty rounds to settle, and a compile on the second core slows the decode
     * steps as much as the HTTP work does. Returns the number of rounds.
     */
    private static int warmUpServer(ExecutorService ex, URI uri, int clients, int promptTokens, int tokens) {
        CompilationMXBean jit = ManagementFactory.getCompilationMXBean();
        boolean jitTimed = jit != null && jit.isCompilationTimeMonitoringSupported();
        long start = System.nanoTime();
        boolean failed = false;
        for (int round = 1; ; round++) {
            long jit0 = jitTimed ? jit.getTotalCompilationTime() : 0, r0 = System.nanoTime();
            for (Future<long[]> f : submitAll(ex, uri, clients, promptTokens, tokens)) {
                try {
                    f.get(1, TimeUnit.HOURS);
                } catch (Exception e) {
                    failed = true;  // shows again, counted and with its reason, in the measured round
                }
            }
            long now = System.nanoTime();
            if (failed) return round;
            double jitShare = jitTimed ? (jit.getTotalCompilationTime() - jit0) / ((now - r0) / 1e6) : 0;
            if ((round >= 3 && jitShare < 0.15) || now - start > 20_000_000_000L) return round;
        }
    }

    /** One streaming request per client, client k with prompt k and seed k. */
    private static List<Future<long[]>> submitAll(ExecutorService ex, URI uri, int clients,
                                                  int promptTokens, int tokens) {
        List<Future<long[]>> fs = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            int k = i;
            fs.add(ex.submit(() -> stream(uri, prompt(k, promptTokens), tokens, k)));
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

    /** {decode steps, their summed seconds, their summed batch} from the server's Prometheus text. */
    private static double[] stepSums(HttpClient client, URI metrics) throws IOException, InterruptedException {
        String text = client.send(HttpRequest.newBuilder(metrics).GET().build(), HttpResponse.BodyHandlers.ofString()).body();
        double[] v = new double[3];
        for (String line : text.split("\n")) {
            String[] kv = line.split(" ");
            if (kv.length != 2) continue;
            switch (kv[0]) {
                case "ultramem_decode_step_seconds_count" -> v[0] = Double.parseDouble(kv[1]);
                case "ultramem_decode_step_seconds_sum" -> v[1] = Double.parseDouble(kv[1]);
                case "ultramem_decode_step_batch_sum" -> v[2] = Double.parseDouble(kv[1]);
                default -> { }
            }
        }
        return v;
    }

    /** One round of step calls over all slots, after every slot was reset and prefilled. */
    private static Steps directDecode(Model.BatchDecoder dec, int promptTokens, int tokens) {
        int b = dec.capacity();
        int[] slots = new int[b], next = new int[b];
        int[][] chunks = new int[b][];
        for (int s = 0; s < b; s++) {
            dec.reset(s);
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
        return new Steps(steps, b, (System.nanoTime() - t0) / 1e6 / steps);
    }

    private static String prompt(int i, int len) {
        StringBuilder sb = new StringBuilder("request " + i + ": ");
        while (sb.length() < len) sb.append("the cat sat on the mat. ");
        return sb.substring(0, len);
    }

    /**
     * One streaming completion over a plain socket: {tokens generated, time of its first event, time of its last}.
     * The load generator shares the server's cores, so it is kept as small as wrk-style clients are: it writes one
     * HTTP/1.1 request, decodes the chunked body and looks only for the SSE data lines, parsing just the usage
     * chunk (the JDK's HttpClient spent more CPU and JIT time per token than the server's own HTTP work).
     */
    private static long[] stream(URI uri, String prompt, int tokens, long seed) throws IOException {
        var body = JSON.createObjectNode().put("prompt", prompt).put("max_tokens", tokens).put("temperature", 0.8)
                .put("seed", seed).put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        byte[] json = body.toString().getBytes(StandardCharsets.UTF_8);
        try (Socket socket = new Socket(uri.getHost(), uri.getPort())) {
            socket.setTcpNoDelay(true);
            OutputStream out = new BufferedOutputStream(socket.getOutputStream());
            out.write(("POST " + uri.getPath() + " HTTP/1.1\r\nHost: " + uri.getHost() + ":" + uri.getPort()
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + json.length
                    + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(json);
            out.flush();
            InputStream in = new BufferedInputStream(socket.getInputStream());
            String status = line(in);
            if (status == null || !status.startsWith("HTTP/1.1 200")) throw new IOException("status line " + status);
            boolean chunked = false;
            for (String h; (h = line(in)) != null && !h.isEmpty(); )
                if (h.toLowerCase(java.util.Locale.ROOT).startsWith("transfer-encoding:") && h.toLowerCase(java.util.Locale.ROOT).contains("chunked")) chunked = true;
            if (!chunked) throw new IOException("the event stream is not chunked");
            long first = 0, last = 0, n = 0;
            var event = new java.io.ByteArrayOutputStream();
            while (true) {
                String size = line(in);
                if (size == null) throw new IOException("the stream ended without [DONE]");
                int len = Integer.parseInt(size.split(";", 2)[0].trim(), 16);
                if (len == 0) break;
                for (int i = 0; i < len; i++) {
                    int b = in.read();
                    if (b < 0) throw new IOException("the stream ended inside a chunk");
                    if (b != '\n') {
                        event.write(b);
                        continue;
                    }
                    String l = event.toString(StandardCharsets.UTF_8);
                    event.reset();
                    if (l.endsWith("\r")) l = l.substring(0, l.length() - 1);  // SSE allows CRLF line ends
                    if (l.equals("data: [DONE]")) {
                        if (n != tokens) throw new IOException("stream ended after " + n + " of " + tokens + " tokens");
                        return new long[]{n, first, last};
                    }
                    if (!l.startsWith("data: {")) continue;
                    last = System.nanoTime();
                    if (first == 0) first = last;
                    if (!l.contains("\"usage\":{")) continue;
                    JsonNode e = JSON.readTree(l.substring(6));
                    if (e.hasNonNull("usage")) n = e.get("usage").get("completion_tokens").asLong();
                }
                line(in);  // the CRLF after the chunk's data
            }
            throw new IOException("the stream ended without [DONE] after " + n + " tokens");
        }
    }

    /** One CRLF- or LF-terminated ASCII line without its terminator; null at the end of the stream. */
    private static String line(InputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int b; (b = in.read()) >= 0; ) {
            if (b == '\n') {
                int n = sb.length();
                return n > 0 && sb.charAt(n - 1) == '\r' ? sb.substring(0, n - 1) : sb.toString();
            }
            sb.append((char) b);
        }
        return sb.isEmpty() ? null : sb.toString();
    }
}
