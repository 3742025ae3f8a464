package dev.bwrapd.jsonrpc;

/** One unit read from the wire: a message body, or the reason there is none. */
sealed interface Frame {
    /** A complete message body. */
    record Message(byte[] body) implements Frame {}

    /** A message over the size limit; its bytes were skipped so serving can go on. */
    record TooLarge(long size) implements Frame {}

    /** Bytes that are no message in the stream's framing (a broken header, a stray first byte). */
    record Garbled(String reason) implements Frame {}

    /** End of input. */
    record End() implements Frame {}
}
