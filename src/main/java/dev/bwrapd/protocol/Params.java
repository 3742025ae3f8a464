package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.JsonNode;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.RpcException;

import java.util.Iterator;
import java.util.Set;

/**
 * Typed, strict access to a params object: every error names the offending field
 * ("mounts[2].target: must be a string"), and unknown fields are refused.
 */
final class Params {
    private final JsonNode node;
    private final String prefix;

    private Params(JsonNode node, String prefix) {
        this.node = node;
        this.prefix = prefix;
    }

    /** The params of a call: an object, or missing (= empty); an array is refused (named params only). */
    static Params of(JsonNode params, String... allowed) throws RpcException {
        if (params == null || params.isMissingNode() || params.isNull()) return new Params(com.fasterxml.jackson.databind.node.JsonNodeFactory.instance.objectNode(), "");
        if (!params.isObject()) throw invalid("params: must be an object");
        Params p = new Params(params, "");
        if (allowed.length > 0) p.onlyFields(Set.of(allowed));
        return p;
    }

    /** A nested object. */
    Params object(String field, String... allowed) throws RpcException {
        JsonNode value = node.get(field);
        if (!value.isObject()) throw invalid(name(field) + ": must be an object");
        Params p = new Params(value, name(field) + ".");
        p.onlyFields(Set.of(allowed));
        return p;
    }

    static Params element(JsonNode value, String name, String... allowed) throws RpcException {
        if (!value.isObject()) throw invalid(name + ": must be an object");
        Params p = new Params(value, name + ".");
        p.onlyFields(Set.of(allowed));
        return p;
    }

    private void onlyFields(Set<String> allowed) throws RpcException {
        for (Iterator<String> names = node.fieldNames(); names.hasNext(); ) {
            String field = names.next();
            if (!allowed.contains(field)) throw invalid(name(field) + ": unknown field");
        }
    }

    boolean has(String field) {
        JsonNode value = node.get(field);
        return value != null && !value.isNull();
    }

    JsonNode raw(String field) {
        return node.get(field);
    }

    String name(String field) {
        return prefix + field;
    }

    String string(String field, String fallback) throws RpcException {
        if (!has(field)) return fallback;
        JsonNode value = node.get(field);
        if (!value.isTextual()) throw invalid(name(field) + ": must be a string");
        return wellFormed(name(field), value.textValue());
    }

    String requiredString(String field) throws RpcException {
        if (!has(field)) throw invalid(name(field) + ": required");
        return string(field, null);
    }

    boolean bool(String field, boolean fallback) throws RpcException {
        if (!has(field)) return fallback;
        JsonNode value = node.get(field);
        if (!value.isBoolean()) throw invalid(name(field) + ": must be true or false");
        return value.booleanValue();
    }

    /**
     * A whole number within [min, max]; null when absent. {@code 1.0} and {@code 1e3} are whole
     * numbers (as JSON Schema's "integer" has them); one of more than 19 digits is out of range,
     * told without expanding it ({@code 1e999999999}).
     */
    Long integer(String field, long min, long max) throws RpcException {
        if (!has(field)) return null;
        JsonNode value = node.get(field);
        if (!value.isNumber()) throw invalid(name(field) + ": must be a whole number");
        java.math.BigDecimal d;
        try {
            d = value.decimalValue();
        } catch (NumberFormatException e) { // a double that overflowed (a tree not parsed with exact decimals)
            throw invalid(name(field) + ": must be between " + min + " and " + max);
        }
        // Digits before the point, in a long: an int overflows for 100e2147483647, as does the scale
        // of stripTrailingZeros, which is taken only once the number is known to be small.
        if (d.signum() != 0 && (long) d.precision() - d.scale() > 19) throw invalid(name(field) + ": must be between " + min + " and " + max);
        d = d.stripTrailingZeros();
        if (d.scale() > 0) throw invalid(name(field) + ": must be a whole number");
        java.math.BigInteger whole = d.toBigIntegerExact();
        if (whole.compareTo(java.math.BigInteger.valueOf(min)) < 0 || whole.compareTo(java.math.BigInteger.valueOf(max)) > 0) {
            throw invalid(name(field) + ": must be between " + min + " and " + max);
        }
        return whole.longValue();
    }

    /** A number (fractions allowed) within [min, max]; null when absent. */
    Double number(String field, double min, double max) throws RpcException {
        if (!has(field)) return null;
        JsonNode value = node.get(field);
        if (!value.isNumber()) throw invalid(name(field) + ": must be a number");
        double n = value.doubleValue();
        if (!(n >= min && n <= max)) throw invalid(name(field) + ": must be between " + min + " and " + max);
        return n;
    }

    /**
     * {@code value} if it holds no NUL and no unpaired surrogate. JSON's {@code "\\ud800"} escape
     * parses to a lone surrogate, which no UTF-8 can carry: encoded for the kernel it would
     * become {@code ?}, another argument, another host path than the one the client named.
     */
    static String wellFormed(String field, String value) throws RpcException {
        if (value.indexOf('\0') >= 0) throw invalid(field + ": must not contain a NUL character");
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (!Character.isSurrogate(c)) continue;
            if (Character.isHighSurrogate(c) && i + 1 < value.length() && Character.isLowSurrogate(value.charAt(i + 1))) {
                i++;
                continue;
            }
            throw invalid(field + ": must not contain an unpaired surrogate (\\u" + Integer.toHexString(c) + ")");
        }
        return value;
    }

    static RpcException invalid(String message) {
        return new RpcException(ErrorCodes.INVALID_PARAMS, message);
    }

    static RpcException pathNotAllowed(String message) {
        return new RpcException(ProtocolErrors.PATH_NOT_ALLOWED, message);
    }
}
