package dev.ultramem.core;

import java.lang.foreign.MemorySegment;
import java.util.function.Consumer;

/**
 * A tensor's initialisation recorded instead of run ({@link Param#deferInit}): the next {@code count}
 * draws N(0, std²) of a generator in the state {@code start}. A writer {@linkplain Replay replays} it a
 * chunk at a time, so a value table larger than RAM goes to a file without ever being in memory, with
 * exactly the values the in-memory initialisation gives.
 */
public record DeferredNormal(Rng start, long count, double std) {

    /**
     * Whether these draws come straight after prev's from the same generator, nothing drawn in between:
     * then the generator that made prev's draws is positioned at these, and one pass makes both.
     */
    public boolean follows(DeferredNormal prev) {
        Rng end = prev.start.copy();
        end.skipGaussians(prev.count);
        return end.sameState(start);
    }

    /**
     * Replays deferred initialisations one after another (a file's tables in file order). A table whose
     * draws follow the previous table's continues its generator; any other starts from its own
     * recorded state, which first makes the draws before it (time, no memory).
     */
    public static final class Replay {
        private DeferredNormal current;
        private Rng generator;
        private long drawn;

        /**
         * The filler of d's values: each call fills the native-order floats of its segment with the next
         * byteSize/4 of them. Each table's chunks must be asked for in order, one table after another.
         */
        public Consumer<MemorySegment> of(DeferredNormal d) {
            return dst -> {
                if (current != d) begin(d);
                long n = dst.byteSize() / Float.BYTES;
                if (drawn + n > d.count) throw new IllegalStateException("asked for " + (drawn + n) + " of " + d.count + " values");
                generator.fillNormal(dst, 0, n, d.std);
                drawn += n;
            };
        }

        private void begin(DeferredNormal d) {
            boolean continues = current != null && drawn == current.count && d.follows(current);
            if (!continues) generator = d.start.copy();
            current = d;
            drawn = 0;
        }
    }
}
