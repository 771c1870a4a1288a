package dev.ultramem.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ultramem.core.UserError;
import dev.ultramem.model.Configs;
import dev.ultramem.model.MemoryPlan;
import dev.ultramem.model.ModelConfig;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * A job's configuration: a {@code model} section ({@link ModelConfig}) and a {@code train} section
 * ({@link TrainConfig}). Built in layers: a named preset (resource {@code presets/NAME.json}), then
 * a config file (JSON or YAML), then {@code section.key=value} overrides. Unknown keys are errors.
 */
public final class JobConfig {
    public final ModelConfig model;
    public final TrainConfig train;

    public JobConfig(ModelConfig model, TrainConfig train) {
        this.model = model;
        this.train = train;
    }

    /** Preset names shipped in the jar (listed in {@code presets/index.txt}). */
    public static List<String> presetNames() {
        List<String> names = new ArrayList<>();
        try (InputStream in = JobConfig.class.getResourceAsStream("/presets/index.txt")) {
            if (in == null) return names;
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                String s = line.strip();
                if (!s.isEmpty() && !s.startsWith("#")) names.add(s);
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return names;
    }

    /** The tree {model: {...}, train: {...}} of a preset. */
    public static ObjectNode presetTree(String name) {
        if (name == null || !name.matches("[A-Za-z0-9_.-]+")) throw new UserError("unknown preset '" + name + "'");
        try (InputStream in = JobConfig.class.getResourceAsStream("/presets/" + name + ".json")) {
            if (in == null) throw new UserError("unknown preset '" + name + "' (available: " + String.join(", ", presetNames()) + ")");
            JsonNode n = Configs.JSON.readTree(in);
            if (!(n instanceof ObjectNode o)) throw new IllegalStateException("preset " + name + " is not an object");
            return o;
        } catch (IOException e) {
            throw new IllegalStateException("preset " + name + " is malformed", e);
        }
    }

    /**
     * Builds a job from a preset (may be null: the config defaults), an optional config file and
     * overrides of the form {@code model.d_model=128} or {@code train.lr=1e-3}. Each layer is checked as
     * it is read ({@link #checkLayer}), so a bad value is reported with its source even when a later
     * layer overrides it; the combination of keys is checked once all layers are in ({@link #fromTree}).
     */
    public static JobConfig build(String preset, Path configFile, List<String> overrides) {
        ObjectNode tree = JsonNodeFactory.instance.objectNode();
        tree.putObject("model");
        tree.putObject("train");
        if (preset != null) {
            String what = "preset " + preset;
            merge(tree, presetTree(preset), what);
            checkLayer(tree, what);
        }
        if (configFile != null) {
            String what = configFile.toString();
            merge(tree, Configs.readTree(configFile), what);
            checkLayer(tree, what);
        }
        if (overrides != null) for (String o : overrides) {
            applyOverride(tree, o);
            checkLayer(tree, "--set " + o);
        }
        return fromTree(tree);
    }

    /**
     * Checks the values of the layers read so far (types, unknown keys and each value's range; not the
     * combination of keys, which a later layer may still change) and names the layer that broke them.
     */
    static void checkLayer(ObjectNode tree, String source) {
        try {
            Configs.convert(tree.get("model"), ModelConfig.class, "model config").validateValues();
            Configs.convert(tree.get("train"), TrainConfig.class, "train config").validate();
        } catch (UserError e) {
            String m = e.getMessage();
            throw new UserError(source + ": " + (m.startsWith("config: ") ? m.substring("config: ".length()) : m), e);
        }
    }

    /** The job of a complete tree; checks the combination of keys and the sizes the model and one training step reach. */
    public static JobConfig fromTree(ObjectNode tree) {
        ModelConfig m = Configs.convert(tree.get("model"), ModelConfig.class, "model config");
        TrainConfig t = Configs.convert(tree.get("train"), TrainConfig.class, "train config");
        m.validate();
        t.validate();
        if (t.seqLen > m.maxSeqLen)
            throw new UserError("config: train.seq_len (" + t.seqLen + ") exceeds model.max_seq_len (" + m.maxSeqLen + ")");
        MemoryPlan.of(MemoryPlan.Use.TRAIN, m, t).checkLimits();
        return new JobConfig(m, t);
    }

    /** Copies the keys of src's model/train sections over dst (src must have only those sections). */
    static void merge(ObjectNode dst, JsonNode src, String what) {
        Iterator<Map.Entry<String, JsonNode>> it = src.fields();
        while (it.hasNext()) {
            var e = it.next();
            String sec = e.getKey();
            if (!sec.equals("model") && !sec.equals("train"))
                throw new UserError(what + ": unknown section '" + sec + "' (expected model and train)");
            if (!e.getValue().isObject()) throw new UserError(what + ": section '" + sec + "' must be an object");
            ((ObjectNode) dst.get(sec)).setAll((ObjectNode) e.getValue());
        }
    }

    static void applyOverride(ObjectNode tree, String o) {
        int eq = o.indexOf('=');
        int dot = o.indexOf('.');
        if (eq < 0 || dot < 0 || dot > eq)
            throw new UserError("--set '" + o + "': expected section.key=value, e.g. train.lr=1e-3 or model.d_model=128");
        String sec = o.substring(0, dot), key = o.substring(dot + 1, eq).strip(), value = o.substring(eq + 1).strip();
        if (!sec.equals("model") && !sec.equals("train"))
            throw new UserError("--set '" + o + "': section must be model or train, got '" + sec + "'");
        if (key.isEmpty()) throw new UserError("--set '" + o + "': empty key");
        ObjectNode s = (ObjectNode) tree.get(sec);
        JsonNodeFactory f = JsonNodeFactory.instance;
        if (value.matches("[-+]?\\d+")) {
            try { s.set(key, f.numberNode(Long.parseLong(value))); }
            catch (NumberFormatException e) { throw new UserError("--set '" + o + "': number out of range"); }
        } else if (value.matches("[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?")) {
            s.set(key, f.numberNode(Double.parseDouble(value)));
        } else if (value.equals("true") || value.equals("false")) {
            s.set(key, f.booleanNode(Boolean.parseBoolean(value)));
        } else {
            s.set(key, f.textNode(value));
        }
    }

    /** {model: ..., train: ...} with every value, as JSON. */
    public ObjectNode toTree() {
        ObjectNode t = JsonNodeFactory.instance.objectNode();
        t.set("model", Configs.toTree(model));
        t.set("train", Configs.toTree(train));
        return t;
    }
}
