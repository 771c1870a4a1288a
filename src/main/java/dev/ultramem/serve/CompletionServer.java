package dev.ultramem.serve;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.ultramem.infer.BatchScheduler;
import dev.ultramem.infer.TextCodec;
import dev.ultramem.model.Model;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An OpenAI-compatible completion server over a {@link BatchScheduler}: {@code POST /v1/completions}
 * (JSON or server-sent events), {@code GET /v1/models}, {@code GET /health}, {@code GET /metrics}.
 *
 * <p>HTTP is the JDK's own server (com.sun.net.httpserver) with one virtual thread per exchange: a
 * stream is a chunked response written token by token, a waiting client costs a parked virtual
 * thread, and the decoding happens on the scheduler thread alone, so no client can hold up another.
 * A stream whose client has gone fails on its next write (a keep-alive comment is written every
 * second while no token comes, so that also holds in the queue) and its request is cancelled.
 */
public final class CompletionServer implements AutoCloseable {

    /**
     * host and port to listen on (port 0: any free port), requests that may wait beyond the batch,
     * prompt tokens prefilled per scheduler iteration, the largest request body, the model's id.
     */
    public record Options(String host, int port, int queue, int prefillTokens, int maxBodyBytes, String modelName) {}

    /** How long a client that met a full queue is told to wait. */
    static final int RETRY_AFTER_SECONDS = 1;
    private static final long KEEP_ALIVE_MILLIS = 1000;
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    static {
        // small SSE chunks must leave at once, not wait for Nagle's algorithm (read when the first server starts)
        if (System.getProperty("sun.net.httpserver.nodelay") == null) System.setProperty("sun.net.httpserver.nodelay", "true");
    }

    private final Options opt;
    private final int context;
    private final TextCodec codec;
    private final BatchScheduler scheduler;
    private final ServeMetrics metrics;
    private final HttpServer http;
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    private final long created = System.currentTimeMillis() / 1000;
    private final AtomicInteger completions = new AtomicInteger();  // accepted and not yet answered in full
    private volatile boolean draining;

    private CompletionServer(Model.BatchDecoder dec, TextCodec codec, Options opt) throws IOException {
        this.opt = opt;
        this.codec = codec;
        this.context = dec.context();
        if (codec.vocabSize() > dec.vocab())
            throw new IllegalArgumentException("the model's vocabulary (" + dec.vocab() + ") is smaller than the tokenizer's (" + codec.vocabSize() + ")");
        ServeMetrics[] m = new ServeMetrics[1];
        BatchScheduler.Listener relay = new BatchScheduler.Listener() {
            @Override public void firstToken(long nanos) { m[0].firstToken(nanos); }
            @Override public void decodeStep(int batch, long nanos) { m[0].decodeStep(batch, nanos); }
            @Override public void finished(String reason) { m[0].finished(reason); }
        };
        this.scheduler = new BatchScheduler(dec, codec, opt.queue(), opt.prefillTokens(), relay);
        this.metrics = m[0] = new ServeMetrics(dec.capacity(), scheduler::active, scheduler::queued, scheduler::tokensGenerated);
        try {
            http = HttpServer.create(new InetSocketAddress(opt.host(), opt.port()), 1024);
        } catch (IOException e) {
            scheduler.close();
            throw e;
        }
        http.setExecutor(executor);
        http.createContext("/", this::handle);
        http.start();
    }

    /** Starts serving; the decoder's context is the longest prompt and max_tokens accepted. */
    public static CompletionServer start(Model.BatchDecoder dec, TextCodec codec, Options opt) throws IOException {
        return new CompletionServer(dec, codec, opt);
    }

    /** The port listened on (the chosen one when started with port 0). */
    public int port() { return http.getAddress().getPort(); }

    public BatchScheduler scheduler() { return scheduler; }

    /**
     * Graceful stop: new completions get 503 at once, the running and queued ones go on for up to
     * the grace period, those still unfinished then end with an error; then the listener closes.
     * Returns whether everything in flight finished within the grace period.
     */
    public boolean shutdown(Duration grace) throws InterruptedException {
        long deadline = System.nanoTime() + grace.toNanos();
        draining = true;
        scheduler.drain();
        boolean done = scheduler.awaitIdle(grace.toNanos(), TimeUnit.NANOSECONDS)
                && awaitNoExchanges(deadline);  // the last tokens may still be on their way to the clients
        scheduler.close();
        // a handler still writing gets a moment to send the error; a client that stopped reading is cut off
        awaitNoExchanges(System.nanoTime() + TimeUnit.SECONDS.toNanos(1));
        http.stop(0);
        executor.shutdownNow();
        executor.awaitTermination(2, TimeUnit.SECONDS);
        return done;
    }

    private boolean awaitNoExchanges(long deadline) throws InterruptedException {
        while (completions.get() > 0) {
            if (System.nanoTime() >= deadline) return false;
            Thread.sleep(5);
        }
        return true;
    }

    @Override
    public void close() {
        try {
            shutdown(Duration.ZERO);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void handle(HttpExchange ex) {
        String path = ex.getRequestURI().getPath();
        String label = switch (path) {
            case "/v1/completions", "/v1/models", "/health", "/metrics" -> path;
            default -> path.startsWith("/v1/models/") ? "/v1/models/{id}" : "other";
        };
        int status;
        try {
            status = route(ex, path);
        } catch (ApiError e) {
            status = e.status;
            if (e.retryAfter > 0) ex.getResponseHeaders().set("Retry-After", Integer.toString(e.retryAfter));
            sendJson(ex, e.status, e.body());
        } catch (RuntimeException e) {
            status = 500;
            sendJson(ex, 500, ApiError.body("internal error: " + e, "server_error", null, "internal_error"));
        } finally {
            ex.close();
        }
        metrics.request(label, status);
    }

    /** Answers the exchange and returns the status sent. */
    private int route(HttpExchange ex, String path) {
        String method = ex.getRequestMethod();
        switch (path) {
            case "/v1/completions" -> {
                allow(ex, method, "POST");
                return completion(ex);
            }
            case "/v1/models" -> {
                allow(ex, method, "GET");
                ObjectNode list = NODES.objectNode().put("object", "list");
                list.putArray("data").add(modelObject());
                return sendJson(ex, 200, list);
            }
            case "/health" -> {
                allow(ex, method, "GET");
                ObjectNode h = NODES.objectNode().put("status", draining ? "draining" : "ok")
                        .put("model", opt.modelName()).put("active", scheduler.active()).put("queued", scheduler.queued())
                        .put("capacity", scheduler.capacity());
                return sendJson(ex, draining ? 503 : 200, h);
            }
            case "/metrics" -> {
                allow(ex, method, "GET");
                ex.getResponseHeaders().set("Content-Type", ServeMetrics.CONTENT_TYPE);
                try {
                    ex.sendResponseHeaders(200, 0);
                    metrics.write(ex.getResponseBody());
                } catch (IOException e) {
                    // the scraper went away
                }
                return 200;
            }
            default -> {
                if (path.startsWith("/v1/models/")) {
                    allow(ex, method, "GET");
                    String id = path.substring("/v1/models/".length());
                    if (!id.equals(opt.modelName())) throw ApiError.of(404, "model_not_found", "model '" + id + "' is not served here");
                    return sendJson(ex, 200, modelObject());
                }
                throw ApiError.of(404, "not_found", "no such endpoint: " + path + " (this server has POST /v1/completions, GET /v1/models, /health, /metrics)");
            }
        }
    }

    private ObjectNode modelObject() {
        return NODES.objectNode().put("id", opt.modelName()).put("object", "model").put("created", created).put("owned_by", "ultramem");
    }

    private static void allow(HttpExchange ex, String method, String allowed) {
        if (method.equals(allowed)) return;
        ex.getResponseHeaders().set("Allow", allowed);
        throw ApiError.of(405, "method_not_allowed", "method " + method + " is not allowed here; use " + allowed);
    }

    private int completion(HttpExchange ex) {
        CompletionRequest req = CompletionRequest.parse(readBody(ex), opt.modelName(), context);
        int[] prompt = req.prompt().isEmpty() ? codec.emptyPrompt() : codec.encode(req.prompt());
        if (prompt.length > context)
            throw ApiError.invalid("prompt", "the prompt is " + prompt.length + " tokens, longer than the context window of " + context);
        if (draining) throw new ApiError(503, "server_error", "shutting_down", null, "the server is shutting down", RETRY_AFTER_SECONDS);
        BatchScheduler.Request r;
        try {
            r = scheduler.submit(prompt, req.params());
        } catch (BatchScheduler.Rejected e) {
            throw new ApiError(503, "server_error", e.shuttingDown ? "shutting_down" : "overloaded", null,
                    "server busy: " + e.getMessage() + "; try again later", RETRY_AFTER_SECONDS);
        }
        metrics.promptTokens(prompt.length);
        completions.incrementAndGet();
        String id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
        long now = System.currentTimeMillis() / 1000;
        try {
            return req.stream() ? stream(ex, r, req, id, now) : whole(ex, r, id, now);
        } catch (InterruptedException e) {
            r.cancel();
            Thread.currentThread().interrupt();
            return 500;
        } finally {
            r.cancel();  // no-op once finished; frees the slot if the handler ends early
            completions.decrementAndGet();
        }
    }

    private byte[] readBody(HttpExchange ex) {
        int limit = opt.maxBodyBytes();
        String len = ex.getRequestHeaders().getFirst("Content-Length");
        if (len != null) {
            try {
                if (Long.parseLong(len.trim()) > limit) throw tooLarge(limit);
            } catch (NumberFormatException e) {
                throw ApiError.of(400, "invalid_request", "bad Content-Length: " + len);
            }
        }
        try (InputStream in = ex.getRequestBody()) {
            byte[] b = in.readNBytes(limit + 1);
            if (b.length > limit) throw tooLarge(limit);
            return b;
        } catch (IOException e) {
            throw ApiError.of(400, "invalid_request", "could not read the request body: " + e.getMessage());
        }
    }

    private static ApiError tooLarge(int limit) {
        return ApiError.of(413, "request_too_large", "the request body is larger than the limit of " + limit + " bytes");
    }

    /** The non-streaming answer: waits for the whole completion. */
    private int whole(HttpExchange ex, BatchScheduler.Request r, String id, long now) throws InterruptedException {
        StringBuilder text = new StringBuilder();
        while (true) {
            BatchScheduler.Event e = r.next(1, TimeUnit.DAYS);
            if (e == null) continue;
            if (e.error() != null) throw ApiError.of(500, "internal_error", e.error());
            if (e.text() != null) text.append(e.text());
            if (e.finish() != null) {
                ObjectNode body = chunk(id, now, text.toString(), e.finish());
                body.set("usage", usage(r));
                return sendJson(ex, 200, body);
            }
        }
    }

    /** Server-sent events: one data line per batch of tokens, the finish reason, optionally the usage, then [DONE]. */
    private int stream(HttpExchange ex, BatchScheduler.Request r, CompletionRequest req, String id, long now) throws InterruptedException {
        var h = ex.getResponseHeaders();
        h.set("Content-Type", "text/event-stream; charset=utf-8");
        h.set("Cache-Control", "no-cache");
        h.set("X-Accel-Buffering", "no");
        OutputStream out = ex.getResponseBody();
        List<BatchScheduler.Event> ready = new ArrayList<>();
        try {
            ex.sendResponseHeaders(200, 0);
            out.flush();
            while (true) {
                BatchScheduler.Event first = r.next(KEEP_ALIVE_MILLIS, TimeUnit.MILLISECONDS);
                if (first == null) {
                    write(out, ": keep-alive\n\n");  // an SSE comment: finds a client that has gone
                    continue;
                }
                ready.clear();
                ready.add(first);
                r.drainTo(ready);  // a reader slower than the decoder gets several tokens per event
                StringBuilder text = new StringBuilder();
                BatchScheduler.Event end = null;
                for (BatchScheduler.Event e : ready) {
                    if (e.text() != null) text.append(e.text());
                    if (e.last()) end = e;
                }
                if (end != null && end.error() != null) {
                    if (!text.isEmpty()) event(out, chunk(id, now, text.toString(), null), req.includeUsage());
                    write(out, "data: " + ApiError.body(end.error(), "server_error", null, "internal_error") + "\n\n");
                    return 500;
                }
                if (end == null) {
                    event(out, chunk(id, now, text.toString(), null), req.includeUsage());
                    continue;
                }
                event(out, chunk(id, now, text.toString(), end.finish()), req.includeUsage());
                if (req.includeUsage()) {
                    ObjectNode u = chunk(id, now, null, null);
                    u.putArray("choices");
                    u.set("usage", usage(r));
                    write(out, "data: " + u + "\n\n");
                }
                write(out, "data: [DONE]\n\n");
                return 200;
            }
        } catch (IOException gone) {
            r.cancel();
            return 200;  // the status line went out before the client left
        } finally {
            // end the chunked body here, before the caller stops counting this completion: a shutdown that
            // waits for the count then cannot stop the server between the last event and the final chunk
            try {
                out.close();
            } catch (IOException ignored) {
                // the client has gone
            }
        }
    }

    private static void event(OutputStream out, ObjectNode chunk, boolean includeUsage) throws IOException {
        if (includeUsage) chunk.putNull("usage");
        write(out, "data: " + chunk + "\n\n");
    }

    private static void write(OutputStream out, String s) throws IOException {
        out.write(s.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    /** A text_completion object with one choice (text null: no choices array). */
    private ObjectNode chunk(String id, long now, String text, String finish) {
        ObjectNode c = NODES.objectNode().put("id", id).put("object", "text_completion").put("created", now).put("model", opt.modelName());
        if (text != null) {
            ArrayNode choices = c.putArray("choices");
            ObjectNode ch = choices.addObject().put("text", text).put("index", 0);
            ch.putNull("logprobs");
            ch.put("finish_reason", finish);
        }
        return c;
    }

    private static ObjectNode usage(BatchScheduler.Request r) {
        return NODES.objectNode().put("prompt_tokens", r.promptTokens()).put("completion_tokens", r.completionTokens())
                .put("total_tokens", r.promptTokens() + r.completionTokens());
    }

    private static int sendJson(HttpExchange ex, int status, ObjectNode body) {
        byte[] b = (body.toString() + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        try {
            ex.sendResponseHeaders(status, b.length);
            ex.getResponseBody().write(b);
        } catch (IOException e) {
            // the client went away before the answer
        }
        return status;
    }
}
