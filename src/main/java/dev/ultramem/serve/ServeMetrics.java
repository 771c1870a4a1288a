package dev.ultramem.serve;

import dev.ultramem.infer.BatchScheduler;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;

/**
 * The server's Prometheus metrics, in a registry of its own (several servers may run in one JVM, as
 * in the tests). Written with the Prometheus Java client (prometheus-metrics-core) and its text
 * format writer, so names, label escaping, histogram buckets and the content type follow the format.
 */
final class ServeMetrics implements BatchScheduler.Listener {
    static final String CONTENT_TYPE = PrometheusTextFormatWriter.CONTENT_TYPE;
    /** tokens/s is the mean over this many whole seconds before the current one. */
    private static final int RATE_SECONDS = 10;

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final PrometheusTextFormatWriter writer = PrometheusTextFormatWriter.create();
    private final Counter requests, finished, promptTokens;
    private final Histogram ttft, stepSeconds, stepBatch;
    // tokens sampled per second of the clock: slot i holds second stamps[i]
    private final AtomicLongArray stamps = new AtomicLongArray(RATE_SECONDS + 2), counts = new AtomicLongArray(RATE_SECONDS + 2);

    ServeMetrics(int capacity, IntSupplier active, IntSupplier queued, LongSupplier generated) {
        requests = Counter.builder().name("ultramem_http_requests").help("HTTP requests by path and status code")
                .labelNames("path", "status").register(registry);
        finished = Counter.builder().name("ultramem_completions_finished")
                .help("completions by how they ended: stop, length, cancelled (client gone), error").labelNames("reason").register(registry);
        promptTokens = Counter.builder().name("ultramem_prompt_tokens").help("prompt tokens admitted").register(registry);
        CounterWithCallback.builder().name("ultramem_generated_tokens").help("tokens sampled")
                .callback(cb -> cb.call(generated.getAsLong())).register(registry);
        GaugeWithCallback.builder().name("ultramem_batch_active_slots").help("slots holding a request (prefilling or decoding)")
                .callback(cb -> cb.call(active.getAsInt())).register(registry);
        GaugeWithCallback.builder().name("ultramem_batch_capacity").help("slots of the batch decoder (--max-batch)")
                .callback(cb -> cb.call(capacity)).register(registry);
        GaugeWithCallback.builder().name("ultramem_batch_occupancy").help("active slots / capacity")
                .callback(cb -> cb.call(active.getAsInt() / (double) capacity)).register(registry);
        GaugeWithCallback.builder().name("ultramem_queue_length").help("requests waiting for a slot")
                .callback(cb -> cb.call(queued.getAsInt())).register(registry);
        GaugeWithCallback.builder().name("ultramem_tokens_per_second")
                .help("tokens sampled per second, mean over the last " + RATE_SECONDS + " whole seconds")
                .callback(cb -> cb.call(tokensPerSecond())).register(registry);
        ttft = Histogram.builder().name("ultramem_time_to_first_token_seconds")
                .help("from accepting a completion to sampling its first token (queueing and prefill)")
                .classicOnly().classicUpperBounds(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30).register(registry);
        stepSeconds = Histogram.builder().name("ultramem_decode_step_seconds").help("time of one batched decode step")
                .classicOnly().classicUpperBounds(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1).register(registry);
        stepBatch = Histogram.builder().name("ultramem_decode_step_batch").help("sequences advanced by one decode step")
                .classicOnly().classicExponentialUpperBounds(1, 2, 1 + Integer.numberOfTrailingZeros(Integer.highestOneBit(Math.max(1, capacity)) * 2))
                .register(registry);
    }

    void request(String path, int status) { requests.labelValues(path, Integer.toString(status)).inc(); }

    void promptTokens(int n) { promptTokens.inc(n); }

    @Override public void firstToken(long nanos) {
        ttft.observe(nanos / 1e9);
        count(1);
    }

    @Override public void decodeStep(int batch, long nanos) {
        stepSeconds.observe(nanos / 1e9);
        stepBatch.observe(batch);
        count(batch);
    }

    @Override public void finished(String reason) { finished.labelValues(reason).inc(); }

    private void count(int tokens) {
        long sec = System.nanoTime() / 1_000_000_000L;
        int i = (int) (sec % stamps.length());
        if (stamps.get(i) != sec) {  // only the scheduler thread writes
            counts.set(i, 0);
            stamps.set(i, sec);
        }
        counts.addAndGet(i, tokens);
    }

    private double tokensPerSecond() {
        long now = System.nanoTime() / 1_000_000_000L, sum = 0;
        for (int i = 0; i < stamps.length(); i++) {
            long s = stamps.get(i);
            if (s < now && s >= now - RATE_SECONDS) sum += counts.get(i);
        }
        return sum / (double) RATE_SECONDS;
    }

    void write(OutputStream out) throws IOException { writer.write(out, registry.scrape()); }
}
