package dev.bwrapd.jsonrpc;

/** Serves one method. Returns the result (a JsonNode or anything Jackson can write), or throws. */
@FunctionalInterface
public interface Handler {
    Object handle(Call call) throws RpcException;

    /**
     * Runs on the reading thread as the message arrives, in arrival order, before {@link #handle}
     * starts on a thread of its own: for what later messages must already see (sandbox/run takes
     * its sandboxId here, so a signal sent right after the request finds the sandbox). Must be
     * quick and must not block. An exception answers the request at once; handle then never runs.
     */
    default void received(Call call) throws RpcException {}
}
