package dev.ultramem.experiment;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.data.Corpus;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.zip.CRC32;

/**
 * The generated data sets rows may train on instead of the experiment's corpus: {@code tasks} (the
 * three in-context memory tasks) and {@code facts-N} (N closed-book facts), with their test items.
 */
final class Datasets {
    private Datasets() {}

    static final long SEED = 20260101L;
    /** Each fact appears this many times in the text, in a new order each time. */
    static final int FACT_REPEATS = 10;

    private static final Map<String, MemoryTasks.TaskSet> TASKS = new ConcurrentHashMap<>();

    static MemoryTasks.TaskSet tasks(Scale s) {
        return TASKS.computeIfAbsent(s.id(), k -> MemoryTasks.generate(SEED, MemoryTasks.Sizes.of(s),
                s == Scale.QUICK ? 64 << 10 : 1 << 20, s == Scale.QUICK ? 16 : s == Scale.TINY ? 200 : 500));
    }

    static int factCount(String key) {
        if (!key.startsWith("facts-")) throw new IllegalArgumentException("unknown data set " + key);
        return Integer.parseInt(key.substring("facts-".length()));
    }

    static Corpus corpus(String key, Scale s, double valFraction) {
        byte[] text = key.equals("tasks") ? tasks(s).text()
                : MemoryTasks.factText(MemoryTasks.facts(SEED, factCount(key)), FACT_REPEATS, SEED);
        ObjectNode src = JsonNodeFactory.instance.objectNode();
        src.put("type", "experiment-" + key);
        src.put("scale", s.id());
        // a small fact set still needs one validation window of the task rows' seq_len (twice the scale's)
        int nVal = (int) Math.max(Math.ceil(text.length * valFraction), 2 * s.seqLen + 1);
        CRC32 crc = new CRC32();
        crc.update(text);
        src.put("length", text.length);
        src.put("crc32", crc.getValue());
        return new Corpus(Arrays.copyOfRange(text, 0, text.length - nVal), Arrays.copyOfRange(text, text.length - nVal, text.length), src);
    }

    /** Test items per metric name (empty for the experiment's corpus). */
    static Map<String, List<MemoryTasks.Item>> tests(String key, Scale s) {
        if (key == null) return Map.of();
        if (key.equals("tasks")) return tasks(s).tests();
        return Map.of(MemoryTaskGrid.FACT_ACCURACY, MemoryTasks.facts(SEED, factCount(key)));
    }
}
