package dev.ultramem.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.ultramem.infer.BatchScheduler;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The body of {@code POST /v1/completions}, checked field by field against the OpenAI API: a field
 * of the wrong type or out of range, an unknown field, or a known one asking for something this
 * server does not do (n &gt; 1, echo, logprobs, penalties, logit_bias, suffix) is a 400 naming the field,
 * never a silent default. JSON null means "not given", as in the OpenAI clients.
 */
record CompletionRequest(String prompt, boolean stream, boolean includeUsage, BatchScheduler.Params params) {

    /** Sampling defaults of the OpenAI API. */
    static final int DEFAULT_MAX_TOKENS = 16;
    static final double DEFAULT_TEMPERATURE = 1.0;
    static final int MAX_STOPS = 4;

    static final ObjectMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    private static final Set<String> FIELDS = Set.of("model", "prompt", "max_tokens", "temperature", "top_p", "top_k",
            "seed", "stop", "stream", "stream_options", "n", "best_of", "echo", "logprobs", "presence_penalty",
            "frequency_penalty", "logit_bias", "suffix", "user");

    /** Parses a body; model is the served model's id, context the window of each slot. */
    static CompletionRequest parse(byte[] body, String model, int context) {
        if (body.length == 0) throw ApiError.of(400, "invalid_json", "empty request body: expected a JSON object");
        JsonNode root;
        try {
            root = JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiError.of(400, "invalid_json", "malformed JSON body: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw ApiError.of(400, "invalid_json", "unreadable body: " + e.getMessage());
        }
        if (root == null || !root.isObject()) throw ApiError.of(400, "invalid_json", "the body must be a JSON object");
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) throw new ApiError(400, "invalid_request_error", "unknown_field", f, "unknown field '" + f + "'", 0);
        }
        String m = string(root, "model");
        if (m != null && !m.equals(model))
            throw new ApiError(404, "invalid_request_error", "model_not_found", "model", "model '" + m + "' is not served here (this server serves '" + model + "')", 0);
        String prompt = prompt(root.get("prompt"));

        int maxTokens = DEFAULT_MAX_TOKENS;
        Long mt = integer(root, "max_tokens");
        if (mt != null) {
            if (mt <= 0) throw ApiError.invalid("max_tokens", "max_tokens must be >= 1, got " + mt);
            if (mt > context) throw ApiError.invalid("max_tokens", "max_tokens " + mt + " is beyond the context window of " + context + " tokens");
            maxTokens = (int) (long) mt;
        }
        Double t = number(root, "temperature");
        double temperature = t == null ? DEFAULT_TEMPERATURE : t;
        if (temperature < 0) throw ApiError.invalid("temperature", "temperature must be >= 0, got " + temperature);
        Double p = number(root, "top_p");
        double topP = p == null ? 1.0 : p;
        if (!(topP > 0 && topP <= 1)) throw ApiError.invalid("top_p", "top_p must be in (0, 1], got " + topP);
        Long k = integer(root, "top_k");
        // -1 also means "all tokens", as in other OpenAI-compatible servers
        if (k != null && (k < -1 || k > Integer.MAX_VALUE)) throw ApiError.invalid("top_k", "top_k must be >= 0 (0 or -1: all tokens), got " + k);
        int topK = k == null || k == -1 ? 0 : (int) (long) k;
        Long seed = integer(root, "seed");
        List<String> stop = stops(root.get("stop"));
        boolean stream = bool(root, "stream", false);
        boolean includeUsage = false;
        JsonNode so = root.get("stream_options");
        if (so != null && !so.isNull()) {
            if (!so.isObject()) throw ApiError.invalid("stream_options", "stream_options must be an object");
            for (Iterator<Map.Entry<String, JsonNode>> it = so.fields(); it.hasNext(); ) {
                var e = it.next();
                if (!e.getKey().equals("include_usage"))
                    throw new ApiError(400, "invalid_request_error", "unknown_field", "stream_options." + e.getKey(), "unknown field 'stream_options." + e.getKey() + "'", 0);
            }
            includeUsage = bool(so, "include_usage", false);
        }
        unsupported(root);
        if (string(root, "user") == null && root.hasNonNull("user")) throw ApiError.invalid("user", "user must be a string");
        long s = seed != null ? seed : ThreadLocalRandom.current().nextLong();
        return new CompletionRequest(prompt, stream, includeUsage,
                new BatchScheduler.Params(maxTokens, temperature, topK, topP, s, stop));
    }

    /** Fields of the API with features this server lacks: only their neutral value is accepted. */
    private static void unsupported(JsonNode root) {
        Long n = integer(root, "n");
        if (n != null && n != 1) throw ApiError.invalid("n", "only n = 1 is supported");
        Long bestOf = integer(root, "best_of");
        if (bestOf != null && bestOf != 1) throw ApiError.invalid("best_of", "only best_of = 1 is supported");
        if (bool(root, "echo", false)) throw ApiError.invalid("echo", "echo is not supported");
        if (root.hasNonNull("logprobs")) throw ApiError.invalid("logprobs", "logprobs are not supported");
        for (String f : new String[]{"presence_penalty", "frequency_penalty"}) {
            Double v = number(root, f);
            if (v != null && v != 0) throw ApiError.invalid(f, f + " is not supported (only 0)");
        }
        JsonNode lb = root.get("logit_bias");
        if (lb != null && !lb.isNull() && !(lb.isObject() && lb.isEmpty())) throw ApiError.invalid("logit_bias", "logit_bias is not supported");
        String suffix = string(root, "suffix");
        if (suffix != null && !suffix.isEmpty()) throw ApiError.invalid("suffix", "suffix is not supported");
    }

    private static String prompt(JsonNode p) {
        if (p == null || p.isNull()) throw ApiError.invalid("prompt", "prompt is required");
        if (p.isTextual()) return p.textValue();
        if (p.isArray()) {
            if (p.size() == 1 && p.get(0).isTextual()) return p.get(0).textValue();
            if (p.size() > 1 && p.get(0).isTextual())
                throw ApiError.invalid("prompt", "one prompt per request: send each of the " + p.size() + " prompts as its own request");
        }
        throw ApiError.invalid("prompt", "prompt must be a string or an array of one string");
    }

    private static List<String> stops(JsonNode s) {
        if (s == null || s.isNull()) return List.of();
        List<String> out = new ArrayList<>();
        if (s.isTextual()) out.add(s.textValue());
        else if (s.isArray()) {
            for (JsonNode e : s) {
                if (!e.isTextual()) throw ApiError.invalid("stop", "stop must be a string or an array of strings");
                out.add(e.textValue());
            }
        } else throw ApiError.invalid("stop", "stop must be a string or an array of strings");
        if (out.size() > MAX_STOPS) throw ApiError.invalid("stop", "at most " + MAX_STOPS + " stop sequences, got " + out.size());
        for (String x : out) if (x.isEmpty()) throw ApiError.invalid("stop", "a stop sequence must not be empty");
        return out;
    }

    private static String string(JsonNode root, String f) {
        JsonNode v = root.get(f);
        if (v == null || v.isNull()) return null;
        if (!v.isTextual()) throw ApiError.invalid(f, f + " must be a string");
        return v.textValue();
    }

    private static Long integer(JsonNode root, String f) {
        JsonNode v = root.get(f);
        if (v == null || v.isNull()) return null;
        if (!v.isIntegralNumber() || !v.canConvertToLong()) throw ApiError.invalid(f, f + " must be an integer");
        return v.longValue();
    }

    private static Double number(JsonNode root, String f) {
        JsonNode v = root.get(f);
        if (v == null || v.isNull()) return null;
        if (!v.isNumber()) throw ApiError.invalid(f, f + " must be a number");
        double d = v.doubleValue();
        if (!Double.isFinite(d)) throw ApiError.invalid(f, f + " must be a finite number");
        return d;
    }

    private static boolean bool(JsonNode root, String f, boolean dflt) {
        JsonNode v = root.get(f);
        if (v == null || v.isNull()) return dflt;
        if (!v.isBoolean()) throw ApiError.invalid(f, f + " must be true or false");
        return v.booleanValue();
    }
}
