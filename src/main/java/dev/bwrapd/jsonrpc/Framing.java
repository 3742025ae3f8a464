package dev.bwrapd.jsonrpc;

/** How messages are delimited on the wire (docs/protocol.md, Transport). */
public enum Framing {
    /** One JSON value per line. */
    NDJSON,
    /** LSP base protocol: a Content-Length header block, a blank line, then the body. */
    LSP;

    /** The framing a stream starts with, from its first byte after blank space, or null for none. */
    static Framing detect(int firstByte) {
        return switch (firstByte) {
            case '{', '[' -> NDJSON;
            case 'C', 'c' -> LSP;
            default -> null;
        };
    }

    public static Framing parse(String name) {
        return switch (name) {
            case "ndjson" -> NDJSON;
            case "lsp" -> LSP;
            default -> throw new IllegalArgumentException("--framing takes ndjson or lsp, not " + name);
        };
    }
}
