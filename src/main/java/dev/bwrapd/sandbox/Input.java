package dev.bwrapd.sandbox;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * Bytes on their way to a command's stdin pipe or terminal, in the order they were offered. The
 * run's poll loop takes them ({@link #next}, {@link #wrote}) when the descriptor is writable;
 * whoever offered a piece hears how many of its bytes went in once it is all written, or once
 * the descriptor closed (then fewer, down to 0). Nothing here blocks: backpressure is that the
 * offerer's answer waits until the command has taken the bytes.
 */
public final class Input {
    private record Piece(byte[] data, boolean eof, IntConsumer done) {}

    private final ArrayDeque<Piece> pieces = new ArrayDeque<>();
    /** Bytes of the first piece already written. */
    private int offset;
    private boolean closed;

    /**
     * Queues {@code data} (and, with {@code eof}, the end of input after it); {@code done} hears
     * how many bytes were written. False, with nothing queued, once the input is closed.
     */
    synchronized boolean offer(byte[] data, boolean eof, IntConsumer done) {
        if (closed) return false;
        pieces.add(new Piece(data, eof, done));
        return true;
    }

    synchronized boolean pending() {
        return !pieces.isEmpty();
    }

    /** The first piece's unwritten bytes are {@code data()[offset()...]}; null if nothing waits. */
    synchronized byte[] data() {
        Piece first = pieces.peek();
        return first == null ? null : first.data;
    }

    synchronized int offset() {
        return offset;
    }

    /**
     * {@code n} more bytes of the first piece went in. True when that completed a piece that
     * asked for the end of input: the caller closes the descriptor (and then {@link #close}s this).
     */
    boolean wrote(int n) {
        Piece finished;
        synchronized (this) {
            Piece first = pieces.peek();
            if (first == null) return false;
            offset += n;
            if (offset < first.data.length) return false;
            pieces.poll();
            offset = 0;
            finished = first;
        }
        if (finished.done != null) finished.done.accept(finished.data.length);
        return finished.eof;
    }

    /** The descriptor is gone (end of input, the command closed it, the run ended): every waiting piece hears what it got. */
    void close() {
        List<Piece> left;
        int firstWritten;
        synchronized (this) {
            closed = true;
            left = new ArrayList<>(pieces);
            firstWritten = offset;
            pieces.clear();
            offset = 0;
        }
        for (Piece piece : left) {
            if (piece.done != null) piece.done.accept(firstWritten);
            firstWritten = 0;
        }
    }
}
