package dev.bwrapd.jsonrpc;

/** Serves one method. Returns the result (a JsonNode or anything Jackson can write), or throws. */
@FunctionalInterface
public interface Handler {
    Object handle(Call call) throws RpcException;
}
