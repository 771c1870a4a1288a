package dev.ultramem.cli;

import org.junit.jupiter.api.Test;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static dev.ultramem.cli.MainTest.run;
import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code bench serve} on a small model: every streaming client receives all its tokens through the bench's own
 * chunked-SSE client (a short stream fails the command), and the server's decode steps are read from its metrics.
 */
class BenchServeTest {

    @Test
    void everyClientStreamsItsTokensAndTheServersStepsAreCounted() {
        MainTest.Result r = run("bench", "serve", "--preset", "family-ultramem-v2", "--set", "model.mem_knum=12",
                "--set", "model.n_layers=2", "--set", "model.mem_knn=8", "--max-batch", "4", "--clients", "6",
                "--prompt-tokens", "5", "--tokens", "7");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("(42 tokens"), r.out());  // 6 clients × 7 tokens
        Matcher m = Pattern.compile("server ([\\d,]+) of mean batch ([\\d.]+)").matcher(r.out());
        assertTrue(m.find(), r.out());
        int steps = Integer.parseInt(m.group(1).replace(",", ""));
        double batch = Double.parseDouble(m.group(2));
        // 42 tokens, at most 4 a step, the first token of each request sampled by its prefill
        assertTrue(steps >= (42 - 6) / 4 && steps <= 42, r.out());
        assertTrue(batch > 0 && batch <= 4, r.out());
    }
}
