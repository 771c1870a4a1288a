package dev.ultramem.infer;

import dev.ultramem.TestModels;
import dev.ultramem.model.Model;
import dev.ultramem.model.ModelConfig;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

public class BatchSchedulerTest {

    public static Model tinyModel(int maxSeqLen) {
        ModelConfig cfg = TestModels.tinyUltraMemV2();
        cfg.maxSeqLen = maxSeqLen;
        Model m = new Model(cfg.validate());
        m.initialize(5);
        m.afterWeightsChanged();
        m.setTraining(false);
        return m;
    }

    /** What the batch-1 generator (the model's own KV-cache decoder) samples, as text cut before the first stop. */
    public static String reference(Model m, int[] prompt, BatchScheduler.Params p) {
        int[] toks = Generator.generate(m, prompt, p.maxTokens(), new Sampler(p.temperature(), p.topK(), p.topP(), p.seed()), null);
        TextCodec.Decoder d = TextCodec.bytes().newDecoder();
        StringBuilder sb = new StringBuilder();
        for (int t : toks) sb.append(d.append(t));
        sb.append(d.finish());
        String text = sb.toString();
        int end = text.length();
        for (String s : p.stop()) if (text.contains(s)) end = Math.min(end, text.indexOf(s));
        return text.substring(0, end);
    }

    record Outcome(String text, String finish, String error, int events) {}

    static Outcome collect(BatchScheduler.Request r) throws InterruptedException {
        StringBuilder sb = new StringBuilder();
        int n = 0;
        while (true) {
            BatchScheduler.Event e = r.next(60, TimeUnit.SECONDS);
            assertNotNull(e, "no event within a minute");
            n++;
            if (e.text() != null) sb.append(e.text());
            if (e.last()) return new Outcome(sb.toString(), e.finish(), e.error(), n);
        }
    }

    static int[] prompt(String s) { return TextCodec.bytes().encode(s); }

    @Test
    void requestsRunTogetherGiveWhatEachGivesAloneThroughTheBatchOneDecoder() throws Exception {
        Model m = tinyModel(64);
        List<int[]> prompts = new ArrayList<>();
        List<BatchScheduler.Params> params = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            prompts.add(prompt("prompt number " + i + " " + "x".repeat(i)));
            params.add(new BatchScheduler.Params(25 + i, i % 3 == 0 ? 0 : 0.9, i % 4, i % 5 == 4 ? 0.8 : 1, 100 + i, List.of()));
        }
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) expected.add(reference(m, prompts.get(i), params.get(i)));

        RecordingDecoder dec = new RecordingDecoder(m.newBatchDecoder(4, 64), 0);
        int budget = 7;
        try (BatchScheduler s = new BatchScheduler(dec, TextCodec.bytes(), 16, budget, null)) {
            List<BatchScheduler.Request> rs = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) rs.add(s.submit(prompts.get(i), params.get(i)));
            for (int i = 0; i < rs.size(); i++) {
                Outcome o = collect(rs.get(i));
                assertNull(o.error());
                assertEquals("length", o.finish());
                assertEquals(expected.get(i), o.text(), "request " + i);
                assertEquals(params.get(i).maxTokens(), rs.get(i).completionTokens());
            }
            assertTrue(s.awaitIdle(10, TimeUnit.SECONDS));
        }
        // the prompts (15 to 24 tokens) went in chunks within the per-iteration budget
        for (RecordingDecoder.Call c : dec.calls) if (c.kind().equals("forward")) assertTrue(c.totalTokens() <= budget, "prefill of " + c.totalTokens());
        assertTrue(dec.calls.stream().anyMatch(c -> c.kind().equals("step") && c.slots().length == 4), "four sequences decoded in one step");
    }

    @Test
    void aNewRequestJoinsTheRunningBatchAndItsPrefillDelaysTheRunningOneByOneCallAtATime() throws Exception {
        Model m = tinyModel(64);
        RecordingDecoder dec = new RecordingDecoder(m.newBatchDecoder(2, 64), 2);
        try (BatchScheduler s = new BatchScheduler(dec, TextCodec.bytes(), 0, 4, null)) {
            BatchScheduler.Request a = s.submit(prompt("a"), new BatchScheduler.Params(40, 0, 0, 1, 1, List.of()));
            while (a.completionTokens() < 3) Thread.sleep(1);
            BatchScheduler.Request b = s.submit(prompt("a much longer prompt of thirty bytes"), new BatchScheduler.Params(3, 0, 0, 1, 1, List.of()));
            Outcome ob = collect(b);
            assertEquals("length", ob.finish());
            assertTrue(a.completionTokens() < 40, "b finished while a still ran");
            assertEquals("length", collect(a).finish());
        }
        List<RecordingDecoder.Call> calls = new ArrayList<>(dec.calls);
        int slotA = calls.get(0).slots()[0], slotB = 1 - slotA;
        assertTrue(calls.stream().anyMatch(c -> c.kind().equals("step") && c.has(slotA) && c.has(slotB)), "a and b decoded in one step");
        // between two decode steps of a, at most one prefill call of b's prompt (of at most 4 tokens)
        int since = -1;
        for (RecordingDecoder.Call c : calls) {
            if (c.kind().equals("step") && c.has(slotA)) since = 0;
            else if (c.kind().equals("forward") && since >= 0) {
                assertTrue(++since <= 1, "two prefill calls between steps of a running sequence");
                assertTrue(c.totalTokens() <= 4);
            }
        }
    }

    @Test
    void stopStringsEndTheCompletionAndTheQueueLimitRejects() throws Exception {
        Model m = tinyModel(48);
        int[] p = prompt("the ");
        BatchScheduler.Params free = new BatchScheduler.Params(30, 0.9, 0, 1, 42, List.of());
        String whole = reference(m, p, free);
        String stop = whole.substring(6, 8);
        BatchScheduler.Params stopped = new BatchScheduler.Params(30, 0.9, 0, 1, 42, List.of(stop, "\u0000never"));
        RecordingDecoder dec = new RecordingDecoder(m.newBatchDecoder(1, 48), 0);
        try (BatchScheduler s = new BatchScheduler(dec, TextCodec.bytes(), 1, 8, null)) {
            Outcome o = collect(s.submit(p, stopped));
            assertEquals("stop", o.finish());
            assertEquals(whole.substring(0, whole.indexOf(stop)), o.text());
            // one slot and one place in the queue: the third concurrent request is refused. The gate holds r1 in
            // its slot, so r1 cannot finish (and free the queue place) before the third submission.
            java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
            dec.gate = gate;
            BatchScheduler.Request r1 = s.submit(p, free), r2 = s.submit(p, free);
            BatchScheduler.Rejected e = assertThrows(BatchScheduler.Rejected.class, () -> s.submit(p, free));
            assertFalse(e.shuttingDown);
            gate.countDown();
            collect(r1);
            collect(r2);
            s.drain();
            assertTrue(assertThrows(BatchScheduler.Rejected.class, () -> s.submit(p, free)).shuttingDown);
        }
    }
}
