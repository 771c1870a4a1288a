package dev.ultramem.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ultramem.TestModels;
import dev.ultramem.core.Rng;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import dev.ultramem.train.AdamW;
import dev.ultramem.train.Checkpoint;
import dev.ultramem.train.JobConfig;
import dev.ultramem.train.TrainConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.ultramem.cli.MainTest.assertUserError;
import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/** bin/ultramem serve as a user runs it: a child JVM on a free port, stopped by SIGTERM. */
class ServeProcessTest {
    @TempDir Path dir;
    static final ObjectMapper JSON = new ObjectMapper();
    final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(10)).build();

    /** A run folder with a freshly initialised model big enough that a few hundred tokens take a moment. */
    private Path savedRun(int maxSeqLen) {
        ModelConfig cfg = TestModels.tinyModel();
        cfg.dModel = 128;
        cfg.nLayers = 4;
        cfg.nHeads = 4;
        cfg.mlpHiddenSize = 512;
        cfg.maxSeqLen = maxSeqLen;
        cfg.validate();
        Model m = new Model(cfg);
        m.initialize(1);
        TrainConfig t = TestModels.tinyTrain(4);
        Path run = dir.resolve("served");
        Checkpoint.save(run.resolve(Checkpoint.LATEST), new JobConfig(cfg, t), m, new AdamW(m.params(), t),
                new Checkpoint.Progress(0, new Rng(1).state(), null, new float[0], new float[0], new float[0]));
        return run;
    }

    private HttpResponse<String> get(int port, String path) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private HttpResponse<String> post(int port, String body) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void sigtermStopsAdmittingFinishesTheRunningAndQueuedStreamsAndExitsZero() throws Exception {
        Path run = savedRun(512);
        Child c = Child.start(dir, "serve", "serve", run.toString(), "--port", "0", "--max-batch", "1", "--queue", "4", "--grace", "100");
        Pattern addr = Pattern.compile("serving served on http://127\\.0\\.0\\.1:(\\d+)");
        c.await(() -> addr.matcher(c.output()).find(), "the server to listen");
        Matcher mt = addr.matcher(c.output());
        assertTrue(mt.find());
        int port = Integer.parseInt(mt.group(1));
        int n = 3, tokens = 400;
        String body = "{\"prompt\": \"drain me\", \"max_tokens\": " + tokens + ", \"temperature\": 0, \"stream\": true, \"stream_options\": {\"include_usage\": true}}";
        try (ExecutorService ex = Executors.newVirtualThreadPerTaskExecutor()) {
            List<Future<String>> streams = new ArrayList<>();
            for (int i = 0; i < n; i++) streams.add(ex.submit(() -> post(port, body).body()));
            // one running, two queued (one slot)
            c.await(() -> {
                try {
                    JsonNode h = JSON.readTree(get(port, "/health").body());
                    return h.get("active").asInt() + h.get("queued").asInt() == n;
                } catch (Exception e) {
                    return false;
                }
            }, "all requests to be in");
            c.signal("TERM");
            c.await(() -> {
                try {
                    return get(port, "/health").statusCode() == 503;
                } catch (Exception e) {
                    return true;  // already closed: checked below
                }
            }, "draining");
            try {
                HttpResponse<String> late = post(port, "{\"prompt\": \"late\", \"max_tokens\": 2}");
                assertEquals(503, late.statusCode(), late.body());
            } catch (ConnectException closed) {
                assertFalse(c.process().isAlive(), "the listener closes only at the end");
            }
            for (Future<String> f : streams) {
                String sse = f.get(120, TimeUnit.SECONDS);
                assertTrue(sse.endsWith("data: [DONE]\n\n"), sse);
                String[] events = sse.split("\n\n");
                JsonNode usage = JSON.readTree(events[events.length - 2].substring("data: ".length())).get("usage");
                assertEquals(tokens, usage.get("completion_tokens").asInt(), "every queued and running stream finished in full");
            }
        }
        assertEquals(0, c.waitExit(), c.output());
        assertTrue(c.output().contains("SIGTERM: no new requests"), c.output());
        assertTrue(c.output().contains("stopped: every running completion finished"), c.output());
    }

    @Test
    void badServeOptionsAreOneLineErrors() {
        Path run = savedRun(32);
        assertUserError(run("serve", run.toString(), "--port", "70000"), "--port");
        assertUserError(run("serve", run.toString(), "--max-batch", "0"), "--max-batch");
        assertUserError(run("serve", run.toString(), "--queue", "-1"), "--queue");
        assertUserError(run("serve", run.toString(), "--context", "33"), "context 33");
        // the KV caches of all slots are checked against the heap before any is allocated
        assertUserError(run("serve", run.toString(), "--max-batch", "100000000", "--queue", "1"), "of KV cache");
        assertUserError(run("serve", dir.resolve("nothing").toString()), "not found");
    }
}
