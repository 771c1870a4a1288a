package dev.ultramem.serve;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** A request the server refuses, answered as an OpenAI-style error object with an HTTP status. */
final class ApiError extends RuntimeException {
    final int status;
    final String type, code, param;
    /** Seconds after which the client may try again (503), or 0. */
    final int retryAfter;

    ApiError(int status, String type, String code, String param, String message, int retryAfter) {
        super(message);
        this.status = status;
        this.type = type;
        this.code = code;
        this.param = param;
        this.retryAfter = retryAfter;
    }

    /** 400 about one field of the request body. */
    static ApiError invalid(String param, String message) {
        return new ApiError(400, "invalid_request_error", "invalid_value", param, message, 0);
    }

    static ApiError of(int status, String code, String message) {
        return new ApiError(status, status >= 500 ? "server_error" : "invalid_request_error", code, null, message, 0);
    }

    /** {"error": {"message", "type", "param", "code"}} as the OpenAI API answers. */
    ObjectNode body() { return body(getMessage(), type, param, code); }

    static ObjectNode body(String message, String type, String param, String code) {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        ObjectNode e = root.putObject("error");
        e.put("message", message);
        e.put("type", type);
        e.put("param", param);
        e.put("code", code);
        return root;
    }
}
