package dev.ultramem.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.cfg.MapperBuilder;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.ultramem.core.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** JSON/YAML mapping of configs, with one-line errors for bad files and unknown keys. */
public final class Configs {
    /**
     * Strict on purpose: no string-to-number or float-to-int coercion ("32" or 32.5 for an int key is an error,
     * not 32), and trailing content, duplicate keys and further YAML documents are errors, not silently dropped.
     */
    public static final ObjectMapper JSON = strict(JsonMapper.builder())
            .enable(SerializationFeature.INDENT_OUTPUT)
            .build();
    public static final ObjectMapper YAML = strict(YAMLMapper.builder()).build();

    private static <M extends ObjectMapper, B extends MapperBuilder<M, B>> B strict(B b) {
        return b.enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
                .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
                .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY)
                .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION);
    }

    private Configs() {}

    /** Reads a JSON (.json) or YAML (.yml/.yaml) file into a tree. */
    public static JsonNode readTree(Path file) {
        String n = file.getFileName().toString().toLowerCase();
        ObjectMapper m = (n.endsWith(".yml") || n.endsWith(".yaml")) ? YAML : JSON;
        UserError.requireRegularFile(file);
        try {
            JsonNode node = m.readTree(Files.readAllBytes(file));
            if (node == null || !node.isObject()) throw new UserError(file + ": config must be a JSON/YAML object");
            return node;
        } catch (JacksonException e) {
            String hint = m == JSON ? " (read as JSON; YAML files need a .yaml or .yml name)" : "";
            String what = firstLine(e.getOriginalMessage());
            if (what.startsWith("Trailing token")) what = "content after the end of the config (a second YAML document or trailing text)";
            throw new UserError(file + ": malformed config: " + what + hint);
        } catch (IOException e) {
            throw UserError.cannotRead(file, e);
        }
    }

    /** Converts a tree into a config object; unknown keys and wrong types become one-line errors. */
    public static <T> T convert(JsonNode node, Class<T> type, String what) {
        try {
            return JSON.treeToValue(node, type);
        } catch (UnrecognizedPropertyException e) {
            throw new UserError(what + ": unknown key '" + e.getPropertyName() + "'");
        } catch (MismatchedInputException e) {
            String key = e.getPath().isEmpty() ? "?" : e.getPath().get(e.getPath().size() - 1).getFieldName();
            Class<?> t = e.getTargetType();
            String expected = t == null ? "another type"
                    : t == int.class || t == Integer.class || t == long.class || t == Long.class ? "an integer"
                    : t == double.class || t == Double.class ? "a number"
                    : t == boolean.class || t == Boolean.class ? "true or false"
                    : t == String.class ? "a string" : t.getSimpleName();
            JsonNode given = node.get(key);
            throw new UserError(what + ": '" + key + "' must be " + expected + ", got " + (given == null ? "nothing" : given.toString()));
        } catch (IOException | IllegalArgumentException e) {
            throw new UserError(what + ": invalid value (" + firstLine(e.getMessage()) + ")");
        }
    }

    /** A config value that must be a finite number (NaN and ±Infinity parse as doubles but train nothing). */
    public static void requireFinite(String key, double v) {
        if (!Double.isFinite(v)) throw new UserError("config: " + key + " must be a finite number, got " + v);
    }

    public static ObjectNode toTree(Object o) { return JSON.valueToTree(o); }

    public static String toJson(Object o) {
        try {
            return JSON.writeValueAsString(o);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static String firstLine(String s) {
        if (s == null) return "";
        int i = s.indexOf('\n');
        return i < 0 ? s : s.substring(0, i);
    }
}
