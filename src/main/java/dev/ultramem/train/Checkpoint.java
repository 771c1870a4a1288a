package dev.ultramem.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.DeferredNormal;
import dev.ultramem.core.IndexBuffer;
import dev.ultramem.core.Param;
import dev.ultramem.core.UserError;
import dev.ultramem.data.Tokenizer;
import dev.ultramem.data.Tokenizers;
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
 * sampler's RNG state, the data source and a CRC32 of all tensor bytes). The tokenizer is named by the
 * model config's {@code tokenizer}; an hf: tokenizer's tokenizer.json text is embedded as metadata
 * {@code tokenizer_json} (with its CRC32), so the checkpoint alone can encode and decode text.
 */
public final class Checkpoint {
    public static final String FORMAT = "ultramem-checkpoint";
    public static final int VERSION = 1;
    public static final String LATEST = "latest.safetensors";

    private Checkpoint() {}

    /** Training progress saved beside the weights. */
    public record Progress(long step, long[] dataRng, ObjectNode dataSource, float[] trainLoss, float[] valSteps, float[] valLoss) {}

    /** What {@link #load} returns: the model with its weights, the optimizer (if requested), the progress and the tokenizer. */
    public record Loaded(JobConfig job, Model model, AdamW optimizer, Progress progress, Path file, Tokenizer tokenizer) {}

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

    /**
     * A checkpoint of the weights alone, at step 0 with no optimizer state (written by {@code init}):
     * it can be served, evaluated and generated from, not resumed.
     */
    public static void saveWeightsOnly(Path file, JobConfig job, Model model) {
        save(file, job, model, null, new Progress(0, new long[4], null, new float[0], new float[0], new float[0]));
    }

    /** Saves with the tokenizer model.tokenizer names (an hf: tokenizer is read from its path). */
    public static void save(Path file, JobConfig job, Model model, AdamW opt, Progress pr) {
        save(file, job, model, opt, pr, Tokenizers.isHf(job.model.tokenizer) ? Tokenizers.named(job.model.tokenizer) : null);
    }

    /** Saves; tok is the tokenizer model.tokenizer names, whose definition is embedded (null: a built-in one). */
    public static void save(Path file, JobConfig job, Model model, AdamW opt, Progress pr, Tokenizer tok) {
        save(file, job, model, opt, pr, tok, null);
    }

    /**
     * Saves with the value and pre-value tables (the off-heap tensors) written as {@code tables}, converted
     * on the fly from how they are stored (null: as stored). Dense weights are always float32.
     */
    public static void save(Path file, JobConfig job, Model model, AdamW opt, Progress pr, Tokenizer tok, Param.Storage tables) {
        if (opt != null && tables == Param.Storage.BF16)
            throw new IllegalArgumentException("bf16 tables are for inference: a checkpoint with optimizer state keeps float32 tables");
        if (tok != null && !tok.name().equals(job.model.tokenizer))
            throw new IllegalArgumentException("tokenizer " + tok.name() + " is not the config's " + job.model.tokenizer);
        List<Safetensors.Out> outs = new ArrayList<>();
        // tables whose init was deferred (Model.initializeTablesDeferred) are made while written, in file order
        DeferredNormal.Replay replay = new DeferredNormal.Replay();
        for (Param p : model.params()) {
            Param.Storage as = p.isHeap() || tables == null ? p.storage() : tables;
            if (p.deferredInit() != null) outs.add(Safetensors.Out.filled(p.name, p.shape, replay.of(p.deferredInit())));
            else if (as == Param.Storage.BF16) outs.add(Safetensors.Out.bf16(p.name, p.shape, p.segment()));
            else if (p.isBf16()) outs.add(Safetensors.Out.f32FromBf16(p.name, p.shape, p.segment()));
            else outs.add(Safetensors.Out.f32(p.name, p.shape, p.segment()));
        }
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
        if (opt == null) meta.put("weights_only", "true");
        meta.put("data_rng", Arrays.toString(pr.dataRng()));
        meta.put("data_source", pr.dataSource() == null ? "{}" : pr.dataSource().toString());
        String definition = tok == null ? null : tok.definition();
        if (definition != null) {
            meta.put("tokenizer_json", definition);
            meta.put("tokenizer_crc32", Long.toString(crc(definition)));
        } else if (Tokenizers.isHf(job.model.tokenizer)) {
            throw new IllegalArgumentException("an hf: tokenizer needs its tokenizer.json to be saved");
        }
        String kept = Files.exists(file) ? "; the previous checkpoint is intact" : "; no checkpoint was saved";
        try {
            // data_crc32: the CRC32 of the tensors' bytes in file order (bit rot inside the data is caught on
            // load), computed by the writer as the bytes go out, in one pass (a filled table exists only then)
            Safetensors.write(file, outs, meta, "data_crc32");
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
            if (withOptimizer && "true".equals(meta.get("weights_only")))
                throw new UserError(file + " holds weights only (written by init), no optimizer state: it can be served, "
                        + "evaluated and generated from, not resumed; train a model with 'ultramem train'");
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
            return new Loaded(job, model, opt, pr, file, tokenizer(file, job.model.tokenizer, meta));
        } finally {
            if (!mapTables) st.close();
        }
    }

    /** The checkpoint's tokenizer: a built-in one by name, an hf: one from the embedded tokenizer.json. */
    private static Tokenizer tokenizer(Path file, String name, Map<String, String> meta) {
        if (!Tokenizers.isHf(name)) return Tokenizers.builtin(name);
        String json = meta.get("tokenizer_json");
        if (json == null) throw new UserError(file + ": checkpoint metadata lacks the tokenizer_json of its tokenizer " + name);
        if (!Long.toString(crc(json)).equals(String.valueOf(meta.get("tokenizer_crc32")).strip()))
            throw new UserError(file + ": checkpoint is corrupt (tokenizer_json checksum mismatch)");
        return Tokenizers.fromHfJson(name, json, file + " (embedded tokenizer.json)");
    }

    private static long crc(String s) {
        CRC32 c = new CRC32();
        c.update(s.getBytes(java.nio.charset.StandardCharsets.UTF_8));
        return c.getValue();
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
            Safetensors.Entry e = checkedEntry(st, p.name, p.shape, p.isHeap() ? "F32" : null);
            boolean bf16 = e.dtype().equals("BF16");
            if (mapTables && nativeLE && !p.isHeap() && e.data().address() % (bf16 ? 2 : Float.BYTES) == 0) {
                p.mapReadOnly(e.data(), bf16 ? Param.Storage.BF16 : Param.Storage.F32);
                dev.ultramem.io.PageAdvice.random(e.data());
                continue;
            }
            if (bf16) {
                // a table converted to bf16 stays bf16 in memory (half the RAM; inference only)
                p.storeAsBf16();
                MemorySegment.copy(e.data(), Safetensors.LE_SHORT, 0, p.segment(), ValueLayout.JAVA_SHORT, 0, e.numel());
            } else {
                MemorySegment.copy(e.data(), Safetensors.LE_FLOAT, 0, p.segment(), ValueLayout.JAVA_FLOAT, 0, e.numel());
            }
            // a mapped file stays open: the pages of what was copied out need not stay resident too
            if (mapTables) dev.ultramem.io.PageAdvice.release(st.get(p.name).data());
        }
        for (IndexBuffer b : model.indexBuffers()) {
            Safetensors.Entry e = st.get(b.name());
            if (e.numel() != b.data().length)
                throw new UserError(st.path() + ": shape mismatch for " + b.name() + ": file has " + Arrays.toString(e.shape())
                        + ", the config needs [" + b.data().length + "]");
            int[] v = e.toInts();
            System.arraycopy(v, 0, b.data(), 0, v.length);
            if (mapTables) dev.ultramem.io.PageAdvice.release(e.data());
        }
        model.afterWeightsChanged();
        // the stored u, v: the recomputed ones for this engine's checkpoints, the official ones for an import
        OfficialWeights.keepStoredTuckerVectors(model, st);
    }

    static void copyInto(Safetensors st, String name, long[] shape, MemorySegment dst) {
        Safetensors.Entry e = checkedEntry(st, name, shape);
        MemorySegment.copy(e.data(), Safetensors.LE_FLOAT, 0, dst, ValueLayout.JAVA_FLOAT, 0, e.numel());
    }

    private static Safetensors.Entry checkedEntry(Safetensors st, String name, long[] shape) { return checkedEntry(st, name, shape, "F32"); }

    /** The entry, checked for shape and dtype (null: F32, or BF16 as written for a table by {@code convert}). */
    private static Safetensors.Entry checkedEntry(Safetensors st, String name, long[] shape, String dtype) {
        Safetensors.Entry e = st.get(name);
        if (!Arrays.equals(e.shape(), shape))
            throw new UserError(st.path() + ": shape mismatch for " + name + ": file has " + Arrays.toString(e.shape())
                    + ", the config needs " + Arrays.toString(shape));
        if (dtype != null) e.requireDtype(dtype);
        else if (!e.dtype().equals("F32") && !e.dtype().equals("BF16"))
            throw new UserError(st.path() + ": " + name + ": expected dtype F32 or BF16, found " + e.dtype());
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

    private static void verifyCrc(Path f, Safetensors st, Map<String, String> meta) {
        String want = meta.get("data_crc32");
        if (want == null) return;
        CRC32 crc = new CRC32();
        // Read through a channel, not the mapping (mapped tables read here would stay resident), and with
        // O_DIRECT where the filesystem allows it: the page cache would otherwise hold the file in large
        // blocks, which the later random reads of a mapped table would map whole.
        int block = 1 << 20;
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocateDirect(2 * block).alignedSlice(4096);
        buf.limit(block);
        java.nio.channels.FileChannel ch = null;
        boolean direct = true;
        try {
            try {
                ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.READ, com.sun.nio.file.ExtendedOpenOption.DIRECT);
            } catch (IOException | UnsupportedOperationException e) {
                ch = java.nio.channels.FileChannel.open(f, java.nio.file.StandardOpenOption.READ);
                direct = false;
            }
            // in header order, which binds the bytes to the names: tensors of one shape whose offsets were swapped fail
            for (Safetensors.Entry e : st.entries().values()) {
                long at = st.fileOffset(e), end = at + e.data().byteSize();
                long pos = direct ? at & -4096L : at;
                while (pos < end) {
                    buf.clear().limit((int) Math.min(block, direct ? block : end - pos));
                    int r = ch.read(buf, pos);
                    if (r <= 0) throw new UserError(f + ": checkpoint is truncated");
                    long from = Math.max(pos, at), to = Math.min(pos + r, end);
                    buf.flip().position((int) (from - pos)).limit((int) (to - pos));
                    crc.update(buf);
                    pos += r;
                }
            }
        } catch (IOException e) {
            throw UserError.cannotRead(f, e);
        } finally {
            if (ch != null) try { ch.close(); } catch (IOException ignored) { }
        }
        if (!Long.toString(crc.getValue()).equals(want.strip()))
            throw new UserError(f + ": checkpoint is corrupt (data checksum mismatch)");
    }
}
