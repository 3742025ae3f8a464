package dev.bwrapd.jsonrpc;

/** A JSON value already serialized (UTF-8), written into a message as it is. */
public record RawJson(byte[] bytes, int length) {}
