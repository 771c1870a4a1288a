package dev.ultramem.model;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.ultramem.core.UserError;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** JSON/YAML mapping of configs, with one-line errors for bad files and unknown keys. */
public final class Configs {
    public static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(SerializationFeature.INDENT_OUTPUT);
    public static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory())
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    private Configs() {}

    /** Reads a JSON (.json) or YAML (.yml/.yaml) file into a tree. */
    public static JsonNode readTree(Path file) {
        String n = file.getFileName().toString().toLowerCase();
        ObjectMapper m = (n.endsWith(".yml") || n.endsWith(".yaml")) ? YAML : JSON;
        try {
            JsonNode node = m.readTree(Files.readAllBytes(file));
            if (node == null || !node.isObject()) throw new UserError(file + ": config must be a JSON/YAML object");
            return node;
        } catch (NoSuchFileException e) {
            throw new UserError(file + ": file not found");
        } catch (IOException e) {
            throw new UserError(file + ": malformed config (" + firstLine(e.getMessage()) + ")");
        }
    }

    /** Converts a tree into a config object; unknown keys and wrong types become one-line errors. */
    public static <T> T convert(JsonNode node, Class<T> type, String what) {
        try {
            return JSON.treeToValue(node, type);
        } catch (UnrecognizedPropertyException e) {
            throw new UserError(what + ": unknown key '" + e.getPropertyName() + "'");
        } catch (IOException | IllegalArgumentException e) {
            throw new UserError(what + ": invalid value (" + firstLine(e.getMessage()) + ")");
        }
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
