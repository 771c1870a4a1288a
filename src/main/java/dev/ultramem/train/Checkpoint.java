package dev.ultramem.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.io.AtomicFiles;
import dev.ultramem.io.Safetensors;
import dev.ultramem.model.Configs;
import dev.ultramem.model.Model;
import dev.ultramem.model.OfficialWeights;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.zip.CRC32;

/**
 * Checkpoints as one safetensors file: weights and float buffers under their param names, index
 * buffers as I64, AdamW moments as {@code optim.m.<name>} / {@code optim.v.<name>}, the loss history,
 * and metadata (format version, model and train config JSON, step, optimizer step, the data
 * sampler's RNG state, the data source and a CRC32 of all tensor bytes).
 */
public final class Checkpoint {
    public static final String FORMAT = "ultramem-checkpoint";
    public static final int VERSION = 1;
    public static final String LATEST = "latest.safetensors";

    private Checkpoint() {}

    /** Training progress saved beside the weights. */
    public record Progress(long step, long[] dataRng, ObjectNode dataSource, float[] trainLoss, float[] valSteps, float[] valLoss) {}

    /** What {@link #load} returns: the model with its weights, the optimizer (if requested) and the progress. */
    public record Loaded(JobConfig job, Model model, AdamW optimizer, Progress progress, Path file) {}

    /** Resolves a checkpoint argument: a file, or a run folder holding {@value #LATEST}. */
    public static Path resolve(Path p) {
        if (Files.isDirectory(p)) {
            Path f = p.resolve(LATEST);
            if (!Files.exists(f)) throw new UserError(p + ": folder has no " + LATEST);
            return f;
        }
        if (!Files.exists(p)) throw new UserError(p + ": checkpoint not found");
        UserError.requireRegularFile(p);
        return p;
    }

    public static void save(Path file, JobConfig job, Model model, AdamW opt, Progress pr) {
        List<Safetensors.Out> outs = new ArrayList<>();
        for (Param p : model.params()) outs.add(Safetensors.Out.f32(p.name, p.shape, p.segment()));
        for (IndexBuffer b : model.indexBuffers()) outs.add(Safetensors.Out.i64(b.name(), new long[]{b.data().length}, b.data()));
        if (opt != null) {
            for (Param p : opt.params()) {
                outs.add(Safetensors.Out.f32("optim.m." + p.name, p.shape, opt.expAvg(p.name).segment()));
                outs.add(Safetensors.Out.f32("optim.v." + p.name, p.shape, opt.expAvgSq(p.name).segment()));
            }
        }
        // the TRAINING_TENSORS
        outs.add(Safetensors.Out.f32("train.loss_history", new long[]{pr.trainLoss().length}, pr.trainLoss()));
        outs.add(Safetensors.Out.f32("train.val_steps", new long[]{pr.valSteps().length}, pr.valSteps()));
        outs.add(Safetensors.Out.f32("train.val_loss", new long[]{pr.valLoss().length}, pr.valLoss()));

        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.put("format_version", Integer.toString(VERSION));
        meta.put("model_config", Configs.toJson(job.model));
        meta.put("train_config", Configs.toJson(job.train));
        meta.put("step", Long.toString(pr.step()));
        meta.put("optim_step", Long.toString(opt == null ? 0 : opt.step()));
        meta.put("data_rng", Arrays.toString(pr.dataRng()));
        meta.put("data_source", pr.dataSource() == null ? "{}" : pr.dataSource().toString());
        meta.put("data_crc32", Long.toString(crc(outs)));
        String kept = Files.exists(file) ? "; the previous checkpoint is intact" : "; no checkpoint was saved";
        try {
            Safetensors.write(file, outs, meta);
        } catch (IOException e) {
            throw AtomicFiles.writeError(file, e, kept);
        }
        // a run folder's config.json always describes the latest checkpoint beside it
        if (file.getFileName().toString().equals(LATEST)) {
            Path cfg = file.resolveSibling("config.json");
            try {
                AtomicFiles.write(cfg, Configs.JSON.writeValueAsString(job.toTree()) + "\n");
            } catch (IOException e) {
                throw AtomicFiles.writeError(cfg, e, "; the checkpoint was saved, the previous " + cfg.getFileName() + " is intact");
            }
        }
    }

    /** Loads a checkpoint; with {@code withOptimizer} the AdamW state is restored too. */
    public static Loaded load(Path path, boolean withOptimizer) { return load(path, withOptimizer, false); }

    /**
     * Loads a checkpoint. With {@code mapTables} (inference only) the off-heap tensors — value and
     * pre-value tables — are not copied but served straight from the memory-mapped file, so they
     * may be larger than RAM; the mapping then stays open for the life of the process.
     */
    public static Loaded load(Path path, boolean withOptimizer, boolean mapTables) {
        if (withOptimizer && mapTables) throw new IllegalArgumentException("mapped tables are read-only: no optimizer state");
        Path file = resolve(path);
        Safetensors st = Safetensors.open(file);
        try {
            Map<String, String> meta = st.metadata();
            if (!FORMAT.equals(meta.get("format")))
                throw new UserError(file + ": not an ultramem checkpoint (metadata format is " + (meta.get("format") == null ? "missing" : UserError.quote(meta.get("format"))) + ")");
            int version = parseInt(file, meta, "format_version");
            if (version != VERSION) throw new UserError(file + ": checkpoint format version " + version + " is not supported (expected " + VERSION + ")");
            verifyCrc(file, st, meta);
            ObjectNode tree = Configs.JSON.createObjectNode();
            tree.set("model", json(st, "model_config"));
            tree.set("train", json(st, "train_config"));
            JobConfig job;
            try {
                job = JobConfig.fromTree(tree);
            } catch (UserError e) {
                throw new UserError(file + ": " + String.valueOf(e.getMessage()).replaceAll("\\p{Cntrl}", " "));
            }
            Model model = new Model(job.model);
            requireNoUnknownTensors(st, model);
            loadWeights(st, model, mapTables);
            AdamW opt = null;
            if (withOptimizer) {
                opt = new AdamW(model.params(), job.train);
                for (Param p : opt.params()) {
                    copyInto(st, "optim.m." + p.name, p.shape, opt.expAvg(p.name).segment());
                    copyInto(st, "optim.v." + p.name, p.shape, opt.expAvgSq(p.name).segment());
                }
                opt.setStep(parseLong(file, meta, "optim_step"));
            }
            long step = parseLong(file, meta, "step");
            long[] rng = parseRng(file, meta.get("data_rng"));
            JsonNode src = json(st, "data_source");
            Progress pr = new Progress(step, rng, src instanceof ObjectNode o ? o : null,
                    floats(st, "train.loss_history"), floats(st, "train.val_steps"), floats(st, "train.val_loss"));
            if (pr.trainLoss().length != step) throw new UserError(file + ": loss history has " + pr.trainLoss().length + " entries for step " + step);
            return new Loaded(job, model, opt, pr, file);
        } finally {
            if (!mapTables) st.close();
        }
    }

    /** The training tensors beside the weights and the optimizer state. */
    private static final List<String> TRAINING_TENSORS = List.of("train.loss_history", "train.val_steps", "train.val_loss");

    /**
     * Every tensor of a checkpoint is a param or index buffer of the model, AdamW state of a param
     * AdamW optimizes, or a training tensor; anything else means the file is not what its config says.
     */
    private static void requireNoUnknownTensors(Safetensors st, Model model) {
        Set<String> known = new HashSet<>(TRAINING_TENSORS);
        for (Param p : model.params()) {
            known.add(p.name);
            if (AdamW.optimizes(p)) {
                known.add("optim.m." + p.name);
                known.add("optim.v." + p.name);
            }
        }
        for (IndexBuffer b : model.indexBuffers()) known.add(b.name());
        st.requireNoUnknownTensors(known::contains, "not a weight, buffer, optimizer state or training tensor of the checkpoint's model config");
    }

    /** Copies every param and index buffer of the model from the file, checking names and shapes. */
    public static void loadWeights(Safetensors st, Model model) { loadWeights(st, model, false); }

    /** As {@link #loadWeights(Safetensors, Model)}; with {@code mapTables} off-heap tensors read the file in place. */
    public static void loadWeights(Safetensors st, Model model, boolean mapTables) {
        boolean nativeLE = java.nio.ByteOrder.nativeOrder() == java.nio.ByteOrder.LITTLE_ENDIAN;
        for (Param p : model.params()) {
            if (mapTables && nativeLE && !p.isHeap()) {
                Safetensors.Entry e = checkedEntry(st, p.name, p.shape);
                if (e.data().address() % Float.BYTES == 0) {
                    p.mapReadOnly(e.data());
                    continue;
                }
            }
            copyInto(st, p.name, p.shape, p.segment());
        }
        for (IndexBuffer b : model.indexBuffers()) {
            Safetensors.Entry e = st.get(b.name());
            if (e.numel() != b.data().length)
                throw new UserError(st.path() + ": shape mismatch for " + b.name() + ": file has " + Arrays.toString(e.shape())
                        + ", the config needs [" + b.data().length + "]");
            int[] v = e.toInts();
            System.arraycopy(v, 0, b.data(), 0, v.length);
        }
        model.afterWeightsChanged();
        // the stored u, v: the recomputed ones for this engine's checkpoints, the official ones for an import
        OfficialWeights.keepStoredTuckerVectors(model, st);
    }

    static void copyInto(Safetensors st, String name, long[] shape, MemorySegment dst) {
        Safetensors.Entry e = checkedEntry(st, name, shape);
        MemorySegment.copy(e.data(), Safetensors.LE_FLOAT, 0, dst, ValueLayout.JAVA_FLOAT, 0, e.numel());
    }

    private static Safetensors.Entry checkedEntry(Safetensors st, String name, long[] shape) {
        Safetensors.Entry e = st.get(name);
        if (!Arrays.equals(e.shape(), shape))
            throw new UserError(st.path() + ": shape mismatch for " + name + ": file has " + Arrays.toString(e.shape())
                    + ", the config needs " + Arrays.toString(shape));
        e.requireDtype("F32");
        return e;
    }

    private static float[] floats(Safetensors st, String name) {
        return st.get(name).toFloats();
    }

    private static JsonNode json(Safetensors st, String key) {
        JsonNode n = st.metadataJson(key);
        if (n == null) throw new UserError(st.path() + ": checkpoint metadata lacks " + key);
        return n;
    }

    private static int parseInt(Path f, Map<String, String> meta, String key) { return (int) parseLong(f, meta, key); }

    private static long parseLong(Path f, Map<String, String> meta, String key) {
        String s = meta.get(key);
        if (s == null) throw new UserError(f + ": checkpoint metadata lacks " + key);
        try {
            return Long.parseLong(s.strip());
        } catch (NumberFormatException e) {
            throw new UserError(f + ": checkpoint metadata " + key + " is not a number");
        }
    }

    private static long[] parseRng(Path f, String s) {
        if (s == null) throw new UserError(f + ": checkpoint metadata lacks data_rng");
        String[] parts = s.replace("[", "").replace("]", "").split(",");
        if (parts.length != 4) throw new UserError(f + ": checkpoint data_rng must hold 4 numbers");
        long[] r = new long[4];
        try {
            for (int i = 0; i < 4; i++) r[i] = Long.parseLong(parts[i].strip());
        } catch (NumberFormatException e) {
            throw new UserError(f + ": checkpoint data_rng must hold 4 numbers");
        }
        return r;
    }

    // CRC32 of the tensors' little-endian bytes in file order, so bit rot inside the data is caught.
    private static long crc(List<Safetensors.Out> outs) {
        CRC32 crc = new CRC32();
        byte[] buf = new byte[1 << 16];
        for (Safetensors.Out o : outs) {
            if ("F32".equals(o.dtype())) {
                MemorySegment s = o.f32();
                long n = s.byteSize() / 4;
                for (long i = 0; i < n; i += buf.length / 4) {
                    int c = (int) Math.min(buf.length / 4, n - i);
                    MemorySegment.copy(s, ValueLayout.JAVA_FLOAT, i * 4, MemorySegment.ofArray(buf), Safetensors.LE_FLOAT, 0, c);
                    crc.update(buf, 0, c * 4);
                }
            } else {
                MemorySegment b = MemorySegment.ofArray(buf);
                int[] v = o.ints();
                for (int i = 0; i < v.length; i += buf.length / 8) {
                    int c = Math.min(buf.length / 8, v.length - i);
                    for (int j = 0; j < c; j++) b.set(Safetensors.LE_LONG, 8L * j, v[i + j]);
                    crc.update(buf, 0, c * 8);
                }
            }
        }
        return crc.getValue();
    }

    private static void verifyCrc(Path f, Safetensors st, Map<String, String> meta) {
        String want = meta.get("data_crc32");
        if (want == null) return;
        CRC32 crc = new CRC32();
        byte[] buf = new byte[1 << 16];
        // in header order, which binds the bytes to the names: tensors of one shape whose offsets were swapped fail
        for (Safetensors.Entry e : st.entries().values()) {
            MemorySegment s = e.data();
            long n = s.byteSize();
            for (long i = 0; i < n; i += buf.length) {
                int c = (int) Math.min(buf.length, n - i);
                MemorySegment.copy(s, ValueLayout.JAVA_BYTE, i, buf, 0, c);
                crc.update(buf, 0, c);
            }
        }
        if (!Long.toString(crc.getValue()).equals(want.strip()))
            throw new UserError(f + ": checkpoint is corrupt (data checksum mismatch)");
    }
}
