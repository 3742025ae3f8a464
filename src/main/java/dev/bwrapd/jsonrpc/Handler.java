package dev.bwrapd.jsonrpc;

/**
 * Serves one method. The plain form runs on a thread of the server's pool and may block: its
 * return value (a JsonNode, a {@link RawJson}, or anything Jackson can write) or exception is the
 * answer. An exception that is not an {@link RpcException} goes through the server's error mapper.
 */
@FunctionalInterface
public interface Handler {
    Object handle(Call call) throws Exception;

    /**
     * Runs on the reading thread as the message arrives, in arrival order, before the method
     * starts: for what later messages must already see (a barrier). Must be quick and must not
     * block. An exception answers the request at once; the method then never runs.
     */
    default void received(Call call) throws Exception {}

    /**
     * A method that answers later: {@link #start} runs on the reading thread as the message
     * arrives, in arrival order, before any later message is read (so what it records is seen by
     * the messages after it), and must not block. It answers through {@link Call#reply} or
     * {@link Call#fail}, from any thread, or throws to answer at once.
     */
    @FunctionalInterface
    interface Deferred extends Handler {
        void start(Call call) throws Exception;

        @Override
        default Object handle(Call call) {
            throw new UnsupportedOperationException("a deferred handler is started, not called");
        }
    }
}
