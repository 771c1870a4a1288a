package dev.ultramem.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.infer.BatchScheduler;
import dev.ultramem.infer.BatchSchedulerTest;
import dev.ultramem.infer.RecordingDecoder;
import dev.ultramem.infer.TextCodec;
import dev.ultramem.model.Model;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/** The real server on a loopback port, driven by the JDK's HTTP client (and a raw socket for disconnects). */
class CompletionServerTest {
    static final int CTX = 64;
    static final ObjectMapper JSON = new ObjectMapper();
    static Model model;
    final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();
    final List<CompletionServer> servers = new ArrayList<>();

    @BeforeAll
    static void buildModel() { model = BatchSchedulerTest.tinyModel(CTX); }

    @AfterEach
    void stopServers() { servers.forEach(CompletionServer::close); }

    private CompletionServer start(Model.BatchDecoder dec, int queue, int prefill, int maxBody) throws Exception {
        CompletionServer s = CompletionServer.start(dec, TextCodec.bytes(),
                new CompletionServer.Options("127.0.0.1", 0, queue, prefill, maxBody, "tiny"));
        servers.add(s);
        return s;
    }

    private CompletionServer start(int batch, int queue) throws Exception { return start(model.newBatchDecoder(batch, CTX), queue, 5, 4096); }

    private static URI uri(CompletionServer s, String path) { return URI.create("http://127.0.0.1:" + s.port() + path); }

    private HttpResponse<String> get(CompletionServer s, String path) throws Exception {
        return client.send(HttpRequest.newBuilder(uri(s, path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private HttpResponse<String> post(CompletionServer s, String path, String body) throws Exception {
        return client.send(HttpRequest.newBuilder(uri(s, path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    static ObjectNode body(String prompt, int maxTokens, double temperature, long seed) {
        return JSON.createObjectNode().put("model", "tiny").put("prompt", prompt).put("max_tokens", maxTokens)
                .put("temperature", temperature).put("seed", seed);
    }

    static BatchScheduler.Params params(ObjectNode b, List<String> stop) {
        return new BatchScheduler.Params(b.get("max_tokens").intValue(), b.get("temperature").doubleValue(),
                b.has("top_k") ? b.get("top_k").intValue() : 0, b.has("top_p") ? b.get("top_p").doubleValue() : 1,
                b.get("seed").longValue(), stop);
    }

    /** A streamed completion: the data events (JSON), and whether [DONE] ended it. */
    record Stream(int status, List<JsonNode> events, boolean done, HttpResponse<?> response) {
        String text() {
            StringBuilder sb = new StringBuilder();
            for (JsonNode e : events) if (e.has("choices") && !e.get("choices").isEmpty()) sb.append(e.get("choices").get(0).get("text").asText());
            return sb.toString();
        }

        String finish() {
            for (JsonNode e : events) if (e.has("choices") && !e.get("choices").isEmpty() && !e.get("choices").get(0).get("finish_reason").isNull())
                return e.get("choices").get(0).get("finish_reason").asText();
            return null;
        }
    }

    private Stream stream(CompletionServer s, ObjectNode b) throws Exception {
        ObjectNode sb = b.deepCopy().put("stream", true);
        HttpResponse<java.util.stream.Stream<String>> r = client.send(HttpRequest.newBuilder(uri(s, "/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofString(sb.toString())).build(), HttpResponse.BodyHandlers.ofLines());
        List<JsonNode> events = new ArrayList<>();
        boolean done = false;
        for (String line : (Iterable<String>) r.body()::iterator) {
            if (!line.startsWith("data: ")) continue;
            assertFalse(done, "data after [DONE]");
            String d = line.substring(6);
            if (d.equals("[DONE]")) done = true;
            else events.add(JSON.readTree(d));
        }
        return new Stream(r.statusCode(), events, done, r);
    }

    private static String reference(ObjectNode b, List<String> stop) {
        return BatchSchedulerTest.reference(model, TextCodec.bytes().encode(b.get("prompt").asText()), params(b, stop));
    }

    @Test
    void completionsMatchTheBatchOneGeneratorAsJsonAndAsServerSentEvents() throws Exception {
        CompletionServer s = start(4, 8);
        ObjectNode b = body("the cat sat", 20, 0.8, 11);
        String expected = reference(b, List.of());

        HttpResponse<String> r = post(s, "/v1/completions", b.toString());
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        JsonNode j = JSON.readTree(r.body());
        assertTrue(j.get("id").asText().startsWith("cmpl-"));
        assertEquals("text_completion", j.get("object").asText());
        assertTrue(j.get("created").isIntegralNumber());
        assertEquals("tiny", j.get("model").asText());
        JsonNode c = j.get("choices").get(0);
        assertEquals(expected, c.get("text").asText());
        assertEquals(0, c.get("index").asInt());
        assertEquals("length", c.get("finish_reason").asText());
        assertTrue(c.get("logprobs").isNull());
        assertEquals(11, j.get("usage").get("prompt_tokens").asInt());
        assertEquals(20, j.get("usage").get("completion_tokens").asInt());
        assertEquals(31, j.get("usage").get("total_tokens").asInt());

        Stream st = stream(s, b.deepCopy().set("stream_options", JSON.createObjectNode().put("include_usage", true)));
        assertEquals(200, st.status());
        assertTrue(st.response().headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        assertTrue(st.done(), "ends with [DONE]");
        assertEquals(expected, st.text());
        assertEquals("length", st.finish());
        JsonNode last = st.events().getLast();
        assertTrue(last.get("choices").isEmpty(), "the usage chunk has no choices");
        assertEquals(20, last.get("usage").get("completion_tokens").asInt());
        for (JsonNode e : st.events().subList(0, st.events().size() - 2)) assertTrue(e.get("choices").get(0).get("finish_reason").isNull());
        assertEquals("text_completion", st.events().getFirst().get("object").asText());

        // greedy, prompt as an array of one string, model omitted, defaults for the rest
        ObjectNode g = JSON.createObjectNode().put("max_tokens", 9).put("temperature", 0);
        g.putArray("prompt").add("once upon");
        JsonNode gj = JSON.readTree(post(s, "/v1/completions", g.toString()).body());
        assertEquals(reference(body("once upon", 9, 0, 0), List.of()), gj.get("choices").get(0).get("text").asText());
        JsonNode d = JSON.readTree(post(s, "/v1/completions", "{\"prompt\": \"x\"}").body());
        assertEquals(CompletionRequest.DEFAULT_MAX_TOKENS, d.get("usage").get("completion_tokens").asInt(), "OpenAI's default max_tokens");
    }

    @Test
    void stopSequencesCutTheTextTheSameWayStreamedOrNot() throws Exception {
        CompletionServer s = start(2, 4);
        ObjectNode b = body("stop here: ", 40, 1.0, 5);
        String whole = reference(b, List.of());
        String stop = whole.substring(10, 12);
        for (var stops : List.of(List.of(stop), List.of("\u0001\u0002\u0003", stop))) {
            ObjectNode sb = b.deepCopy();
            if (stops.size() == 1) sb.put("stop", stops.getFirst());
            else stops.forEach(sb.putArray("stop")::add);
            String expected = whole.substring(0, whole.indexOf(stop));
            JsonNode j = JSON.readTree(post(s, "/v1/completions", sb.toString()).body());
            assertEquals(expected, j.get("choices").get(0).get("text").asText());
            assertEquals("stop", j.get("choices").get(0).get("finish_reason").asText());
            Stream st = stream(s, sb);
            assertEquals(expected, st.text());
            assertEquals("stop", st.finish());
            assertTrue(st.done());
        }
    }

    @Test
    void modelsHealthAndMetricsEndpoints() throws Exception {
        CompletionServer s = start(3, 2);
        JsonNode models = JSON.readTree(get(s, "/v1/models").body());
        assertEquals("list", models.get("object").asText());
        assertEquals("tiny", models.get("data").get(0).get("id").asText());
        assertEquals("model", models.get("data").get(0).get("object").asText());
        assertEquals(200, get(s, "/v1/models/tiny").statusCode());
        assertEquals(404, get(s, "/v1/models/other").statusCode());
        HttpResponse<String> h = get(s, "/health");
        assertEquals(200, h.statusCode());
        assertEquals("ok", JSON.readTree(h.body()).get("status").asText());
        assertEquals(3, JSON.readTree(h.body()).get("capacity").asInt());

        int generated = 0;
        for (int i = 0; i < 3; i++) {
            JsonNode j = JSON.readTree(post(s, "/v1/completions", body("m" + i, 4 + i, 0.5, i).toString()).body());
            generated += j.get("usage").get("completion_tokens").asInt();
        }
        post(s, "/v1/completions", "{\"prompt\": 1}");
        HttpResponse<String> m = get(s, "/metrics");
        assertEquals(200, m.statusCode());
        assertTrue(m.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"));
        String t = m.body();
        assertEquals(3, metric(t, "ultramem_http_requests_total{path=\"/v1/completions\",status=\"200\"}"));
        assertEquals(1, metric(t, "ultramem_http_requests_total{path=\"/v1/completions\",status=\"400\"}"));
        assertEquals(generated, metric(t, "ultramem_generated_tokens_total"));
        assertEquals(3, metric(t, "ultramem_time_to_first_token_seconds_count"));
        assertEquals(3, metric(t, "ultramem_completions_finished_total{reason=\"length\"}"));
        assertEquals(0, metric(t, "ultramem_queue_length"));
        assertEquals(0, metric(t, "ultramem_batch_occupancy"));
        assertEquals(3, metric(t, "ultramem_batch_capacity"));
        assertEquals(generated - 3, metric(t, "ultramem_decode_step_batch_sum"), "every token after the first comes from a decode step");
        assertTrue(t.contains("# TYPE ultramem_tokens_per_second gauge"), t);
        assertTrue(t.contains("ultramem_decode_step_seconds_bucket{le=\"+Inf\"}"), t);
    }

    /** The value of one sample line of the Prometheus text format. */
    static double metric(String text, String name) {
        Matcher mt = Pattern.compile("(?m)^" + Pattern.quote(name) + " (\\S+)$").matcher(text);
        assertTrue(mt.find(), name + " in\n" + text);
        return Double.parseDouble(mt.group(1));
    }

    @Test
    void badRequestsGetA4xxJsonErrorNamingTheReasonAndTheServerGoesOn() throws Exception {
        CompletionServer s = start(2, 2);
        String longPrompt = "p".repeat(CTX + 1);
        Object[][] cases = {
                {"{not json", 400, "malformed"},
                {"", 400, "empty request body"},
                {"[1, 2]", 400, "JSON object"},
                {"{\"prompt\": \"a\"} trailing", 400, "malformed"},
                {"{\"prompt\": \"a\", \"prompt\": \"b\"}", 400, "malformed"},
                {"{\"prompt\": \"a\", \"bogus\": 1}", 400, "bogus"},
                {"{}", 400, "prompt is required"},
                {"{\"prompt\": 5}", 400, "prompt must be"},
                {"{\"prompt\": [\"a\", \"b\"]}", 400, "one prompt per request"},
                {"{\"prompt\": \"a\", \"max_tokens\": \"5\"}", 400, "max_tokens must be an integer"},
                {"{\"prompt\": \"a\", \"max_tokens\": 1.5}", 400, "max_tokens must be an integer"},
                {"{\"prompt\": \"a\", \"max_tokens\": 0}", 400, "max_tokens must be >= 1"},
                {"{\"prompt\": \"a\", \"max_tokens\": -3}", 400, "max_tokens must be >= 1"},
                {"{\"prompt\": \"a\", \"max_tokens\": " + (CTX + 1) + "}", 400, "beyond the context"},
                {"{\"prompt\": \"a\", \"max_tokens\": 99999999999999999999}", 400, "max_tokens must be an integer"},
                {"{\"prompt\": \"a\", \"temperature\": -0.1}", 400, "temperature must be >= 0"},
                {"{\"prompt\": \"a\", \"temperature\": \"hot\"}", 400, "temperature must be a number"},
                {"{\"prompt\": \"a\", \"top_p\": 0}", 400, "top_p must be in (0, 1]"},
                {"{\"prompt\": \"a\", \"top_p\": 1.01}", 400, "top_p must be in (0, 1]"},
                {"{\"prompt\": \"a\", \"top_k\": -2}", 400, "top_k"},
                {"{\"prompt\": \"a\", \"seed\": \"x\"}", 400, "seed must be an integer"},
                {"{\"prompt\": \"a\", \"stop\": 5}", 400, "stop must be"},
                {"{\"prompt\": \"a\", \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", 400, "at most 4"},
                {"{\"prompt\": \"a\", \"stop\": \"\"}", 400, "must not be empty"},
                {"{\"prompt\": \"a\", \"stream\": \"yes\"}", 400, "stream must be true or false"},
                {"{\"prompt\": \"a\", \"stream_options\": {\"x\": 1}}", 400, "stream_options.x"},
                {"{\"prompt\": \"a\", \"n\": 2}", 400, "n = 1"},
                {"{\"prompt\": \"a\", \"echo\": true}", 400, "echo"},
                {"{\"prompt\": \"a\", \"logprobs\": 1}", 400, "logprobs"},
                {"{\"prompt\": \"a\", \"presence_penalty\": 0.5}", 400, "presence_penalty"},
                {"{\"prompt\": \"" + longPrompt + "\"}", 400, "longer than the context window"},
                {"{\"model\": \"gpt-4\", \"prompt\": \"a\"}", 404, "not served here"},
                {"{\"prompt\": \"" + "q".repeat(5000) + "\"}", 413, "larger than the limit"},
        };
        for (Object[] c : cases) {
            HttpResponse<String> r = post(s, "/v1/completions", (String) c[0]);
            String what = "body " + c[0] + " -> " + r.body();
            assertEquals((int) c[1], r.statusCode(), what);
            JsonNode e = JSON.readTree(r.body()).get("error");
            assertNotNull(e, what);
            assertEquals("invalid_request_error", e.get("type").asText(), what);
            assertTrue(e.get("message").asText().contains((String) c[2]), what);
        }
        JsonNode unknown = JSON.readTree(post(s, "/v1/completions", "{\"prompt\": \"a\", \"bogus\": 1}").body()).get("error");
        assertEquals("bogus", unknown.get("param").asText());
        // a body that announces its size too large is refused before it is read
        HttpResponse<String> big = client.send(HttpRequest.newBuilder(uri(s, "/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofByteArray(new byte[1 << 16])).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(413, big.statusCode());

        HttpResponse<String> wrongMethod = get(s, "/v1/completions");
        assertEquals(405, wrongMethod.statusCode());
        assertEquals("POST", wrongMethod.headers().firstValue("Allow").orElse(""));
        assertEquals(405, post(s, "/health", "{}").statusCode());
        assertEquals(405, post(s, "/v1/models", "{}").statusCode());
        HttpResponse<String> nowhere = get(s, "/v1/chat");
        assertEquals(404, nowhere.statusCode());
        assertTrue(JSON.readTree(nowhere.body()).get("error").get("message").asText().contains("no such endpoint"));

        // a request with invalid UTF-8 in its JSON and one cut off mid-body do not hurt the server either
        rawExchange(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{\"prompt\": \"\u00ff");
        ObjectNode ok = body("still here", 5, 0, 1);
        HttpResponse<String> r = post(s, "/v1/completions", ok.toString());
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(reference(ok, List.of()), JSON.readTree(r.body()).get("choices").get(0).get("text").asText());
    }

    /** Sends raw bytes and closes the socket without waiting for a complete answer. */
    private static void rawExchange(CompletionServer s, String request) throws Exception {
        try (Socket sock = new Socket("127.0.0.1", s.port())) {
            OutputStream out = sock.getOutputStream();
            out.write(request.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            sock.shutdownOutput();
            sock.setSoTimeout(5000);
            sock.getInputStream().read();
        }
    }

    private static void await(BooleanSupplier cond, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > end) fail("timed out waiting for " + what);
            Thread.sleep(5);
        }
    }

    @Test
    void aClientThatDisconnectsMidStreamFreesItsSlotAtOnce() throws Exception {
        // one slot, no queue; each decode step sleeps so the stream would run for seconds
        RecordingDecoder slow = new RecordingDecoder(model.newBatchDecoder(1, CTX), 40);
        CompletionServer s = start(slow, 0, 8, 4096);
        String req = body("bye", CTX, 0.7, 3).put("stream", true).toString();
        try (Socket sock = new Socket("127.0.0.1", s.port())) {
            sock.getOutputStream().write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                    + req.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + req).getBytes(StandardCharsets.UTF_8));
            BufferedReader in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
            int events = 0;
            for (String line; events < 2 && (line = in.readLine()) != null; ) if (line.startsWith("data: {")) events++;
            assertEquals(2, events);
        }
        await(() -> s.scheduler().active() == 0, "the slot to be freed");
        long generated = s.scheduler().tokensGenerated();
        assertTrue(generated < CTX, "stopped early: " + generated + " of " + CTX + " tokens");
        assertEquals(1, metric(get(s, "/metrics").body(), "ultramem_completions_finished_total{reason=\"cancelled\"}"));
        // the slot takes the next request
        HttpResponse<String> r = post(s, "/v1/completions", body("next", 2, 0, 1).toString());
        assertEquals(200, r.statusCode(), r.body());
    }

    @Test
    void moreClientsThanSlotsPlusQueueGet503WithRetryAfter() throws Exception {
        RecordingDecoder slow = new RecordingDecoder(model.newBatchDecoder(2, CTX), 0);
        CompletionServer s = start(slow, 1, 8, 4096);
        int clients = 8;
        // the gate holds the admitted streams until every other client has had its answer, so however slowly the
        // clients arrive, exactly two slots and one queue place are taken
        java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
        slow.gate = gate;
        List<Stream> results = new ArrayList<>();
        try (ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<Stream>> fs = new ArrayList<>();
            for (int i = 0; i < clients; i++) {
                int k = i;
                fs.add(ex.submit(() -> stream(s, body("overload " + k, 12, 0.5, k))));
            }
            await(() -> fs.stream().filter(Future::isDone).count() == clients - 3, "the clients beyond two slots and a queue of one to be answered");
            gate.countDown();
            for (Future<Stream> f : fs) results.add(f.get(120, TimeUnit.SECONDS));
        }
        slow.gate = null;
        int ok = 0, busy = 0;
        for (Stream r : results) {
            if (r.status() == 200) {
                ok++;
                assertTrue(r.done());
                assertEquals("length", r.finish());
            } else {
                busy++;
                assertEquals(503, r.status());
                assertEquals(String.valueOf(CompletionServer.RETRY_AFTER_SECONDS), r.response().headers().firstValue("Retry-After").orElse(""));
            }
        }
        assertEquals(3, ok, ok + " of " + clients + " served with 2 slots and a queue of 1");
        assertEquals(clients - 3, busy, "clients turned away");
        // the body of a 503: fill the two slots and the queue directly, then ask
        java.util.concurrent.CountDownLatch hold = new java.util.concurrent.CountDownLatch(1);
        slow.gate = hold;
        BatchScheduler.Request[] held = new BatchScheduler.Request[3];
        for (int i = 0; i < 3; i++) held[i] = s.scheduler().submit(new int[]{65}, new BatchScheduler.Params(CTX, 0, 0, 1, 0, List.of()));
        HttpResponse<String> r503 = post(s, "/v1/completions", body("x", 2, 0, 0).toString());
        for (BatchScheduler.Request h : held) h.cancel();
        hold.countDown();
        assertEquals(503, r503.statusCode());
        JsonNode e = JSON.readTree(r503.body()).get("error");
        assertEquals("server_error", e.get("type").asText());
        assertEquals("overloaded", e.get("code").asText());
    }

    interface Client<T> { T run(int i) throws Exception; }

    /** Runs n clients at once on virtual threads and returns their results in order. */
    static <T> List<T> concurrently(int n, Client<T> c) throws Exception {
        try (ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<T>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int k = i;
                fs.add(ex.submit((Callable<T>) () -> c.run(k)));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : fs) out.add(f.get(120, TimeUnit.SECONDS));
            return out;
        }
    }

    @Test
    void manyConcurrentStreamsGiveWhatTheSameRequestsGiveOneAtATime() throws Exception {
        CompletionServer s = start(model.newBatchDecoder(16, CTX), 64, 16, 4096);
        int clients = 48;
        List<ObjectNode> reqs = new ArrayList<>();
        for (int i = 0; i < clients; i++) reqs.add(body("client " + i + " says " + "ab".repeat(i % 7), 6 + i % 9, i % 4 == 0 ? 0 : 0.9, 1000 + i));
        List<Stream> together = concurrently(clients, i -> stream(s, reqs.get(i)));
        for (int i = 0; i < clients; i++) {
            Stream alone = stream(s, reqs.get(i));
            Stream both = together.get(i);
            assertEquals(200, both.status());
            assertTrue(both.done());
            assertEquals(alone.text(), both.text(), "client " + i);
            assertEquals(reference(reqs.get(i), List.of()), both.text(), "client " + i + " against the batch-1 generator");
        }
    }

    @Test
    void shutdownFinishesRunningStreamsWithinTheGracePeriodAndCutsThemOffAfter() throws Exception {
        CompletionServer s = start(new RecordingDecoder(model.newBatchDecoder(2, CTX), 20), 2, 8, 4096);
        ObjectNode b = body("drain", 30, 0.7, 8);
        try (ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            Future<Stream> running = ex.submit(() -> stream(s, b));
            await(() -> s.scheduler().tokensGenerated() > 0, "the stream to start");
            Future<Boolean> stopped = ex.submit(() -> s.shutdown(Duration.ofSeconds(60)));
            await(() -> {
                try {
                    return get(s, "/health").statusCode() == 503;
                } catch (Exception e) {
                    return false;
                }
            }, "draining");
            HttpResponse<String> late = post(s, "/v1/completions", body("late", 2, 0, 0).toString());
            assertEquals(503, late.statusCode());
            assertEquals("shutting_down", JSON.readTree(late.body()).get("error").get("code").asText());
            Stream r = running.get(60, TimeUnit.SECONDS);
            assertTrue(r.done());
            assertEquals(reference(b, List.of()), r.text());
            assertTrue(stopped.get(60, TimeUnit.SECONDS), "everything finished within the grace period");
        }
        CompletionServer cut = start(new RecordingDecoder(model.newBatchDecoder(1, CTX), 50), 0, 8, 4096);
        try (ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            Future<Stream> running = ex.submit(() -> stream(cut, body("cut", CTX, 0.7, 8)));
            await(() -> cut.scheduler().tokensGenerated() > 0, "the stream to start");
            assertFalse(cut.shutdown(Duration.ofMillis(50)), "a 3 s stream does not fit a 50 ms grace period");
            Stream r = running.get(60, TimeUnit.SECONDS);
            assertFalse(r.done());
            assertTrue(r.events().getLast().has("error"), "the stream ends with an error event");
        }
    }
}
