package dev.bwrapd.buildbarn;

import io.grpc.netty.shaded.io.netty.channel.Channel;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandler;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandlerContext;
import io.grpc.netty.shaded.io.netty.channel.ChannelInboundHandlerAdapter;
import org.jboss.logging.Logger;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Bounds the connections open at once: on the listening channel's pipeline, ahead of the handler
 * Netty's ServerBootstrap adds there to register each accepted connection, it sees every
 * connection as it is accepted, and closes one beyond {@link #limit} at once, before gRPC makes
 * anything of it (no HTTP/2 codec, no transport, no heap but the channel's object). grpc-java has
 * no limit of its own, and each connection holds a descriptor: a client opening thousands spent
 * the runner's open files, and then every action failed (docs/buildbarn.md, What the socket takes).
 */
@ChannelHandler.Sharable // one count for every listening channel gRPC makes (one: one address)
final class ConnectionLimit extends ChannelInboundHandlerAdapter {
    private static final Logger LOG = Logger.getLogger(ConnectionLimit.class);
    /**
     * The most connections at any open-files limit. bb_worker opens one to its runner (gRPC's
     * clients share a connection between calls), a few at most with several build directories:
     * 64 leave room for bb_worker's restarts and an operator's tools, and cap the memory they may
     * take (each its flow-control window, 1 MiB, while a call's request arrives; see RunnerCommand).
     */
    static final int MOST = 64;
    /** The runner's descriptors with no connection and no run (measured: 79 to 86), and room. */
    static final long FILES_AT_REST = 256;
    /** The descriptors one running action holds (measured: about 13, paths, pipes, pidfd, cgroup), and room. */
    static final long FILES_PER_RUN = 64;
    /** A warning for refused connections at most this often, so that a client cannot fill the log. */
    private static final long WARNING_EVERY_NANOS = TimeUnit.MINUTES.toNanos(1);

    private final int limit;
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicLong lastWarning = new AtomicLong(System.nanoTime() - WARNING_EVERY_NANOS);

    ConnectionLimit(int limit) {
        this.limit = limit;
    }

    /**
     * The connections open at once given the runner's open-files limit (its soft limit, which the
     * JVM raises to the hard one): what the limit leaves beyond the runner's own descriptors and
     * those of --concurrency actions running, {@link #MOST} at most, at least one.
     */
    static int limit(long openFiles, int concurrency) {
        if (openFiles < 0) return MOST; // RLIM_INFINITY
        return (int) Math.max(1, Math.min(MOST, openFiles - FILES_AT_REST - FILES_PER_RUN * concurrency));
    }

    /** The open-files limit that leaves {@link #MOST} connections to a runner of {@code concurrency}. */
    static long openFilesFor(int concurrency) {
        return FILES_AT_REST + FILES_PER_RUN * concurrency + MOST;
    }

    @Override
    public void channelRead(ChannelHandlerContext context, Object accepted) {
        Channel connection = (Channel) accepted;
        if (open.incrementAndGet() > limit) {
            open.decrementAndGet();
            connection.unsafe().closeForcibly(); // not registered yet: as Netty closes one it cannot register
            long now = System.nanoTime(), last = lastWarning.get();
            if (now - last >= WARNING_EVERY_NANOS && lastWarning.compareAndSet(last, now)) {
                LOG.warnf("a connection closed at once: %d connections are open already (the most the open-files limit and"
                        + " --concurrency leave, %d at most; docs/buildbarn.md, What the socket takes); more are closed"
                        + " without a word for a minute", limit, MOST);
            }
            return;
        }
        connection.closeFuture().addListener(closed -> open.decrementAndGet());
        context.fireChannelRead(accepted);
    }
}
