package dev.bwrapd.protocol;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.bwrapd.jsonrpc.Call;
import dev.bwrapd.jsonrpc.ErrorCodes;
import dev.bwrapd.jsonrpc.JsonText;
import dev.bwrapd.jsonrpc.RawJson;
import dev.bwrapd.jsonrpc.RpcException;
import dev.bwrapd.jsonrpc.Utf8;
import dev.bwrapd.memory.MemoryBudget;
import dev.bwrapd.sandbox.RunListener;
import dev.bwrapd.sandbox.RunOutcome;
import dev.bwrapd.sandbox.Sandbox;
import dev.bwrapd.sandbox.SandboxException;
import dev.bwrapd.sandbox.Sandboxes;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Base64;

/**
 * Words one run for the client, on the run's own thread: sandbox/started, sandbox/output (each
 * chunk escaped straight from the pipe's bytes into the frame), then the answer to sandbox/run.
 */
final class RunReporter implements RunListener {
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);

    private final ObjectMapper json;
    private final Call call;
    private final Sandboxes sandboxes;
    private final Sandbox sandbox;
    private static final byte[] NO_BYTES = new byte[0];

    /** The sandbox id as a JSON string. */
    private final String quotedId;
    /** Per stream: the frame of a sandbox/output notification up to its data ({@link #prefix}); then text or base64 follows. */
    private final byte[][] prefixes = new byte[RunListener.Stream.values().length][];
    /**
     * Where each sandbox/output frame is built. A sent frame is the server's until it is written,
     * then given back ({@link #returned}) to build a later one: while the client keeps up two
     * buffers take turns, and no chunk is copied into the writer's queue.
     */
    private final FrameBuilder frame = new FrameBuilder();
    /** A written frame's buffer, given back by the server's writer thread; null while none is. */
    private final java.util.concurrent.atomic.AtomicReference<byte[]> returned = new java.util.concurrent.atomic.AtomicReference<>();
    /** An incomplete UTF-8 sequence at the end of the last chunk, per stream, held for the next. */
    private final byte[][] carries = new byte[RunListener.Stream.values().length][];

    private final MemoryBudget budget;

    RunReporter(ObjectMapper json, Call call, Sandboxes sandboxes, Sandbox sandbox, MemoryBudget budget) {
        this.budget = budget;
        this.json = json;
        this.call = call;
        this.sandboxes = sandboxes;
        this.sandbox = sandbox;
        this.quotedId = JsonText.of(json, sandbox.id());
        Arrays.fill(carries, NO_BYTES);
    }

    /** The frame of a sandbox/output notification of {@code stream} up to its data: made when the stream first sends. */
    private byte[] prefix(RunListener.Stream stream) {
        byte[] prefix = prefixes[stream.ordinal()];
        if (prefix == null) {
            prefix = ("{\"jsonrpc\":\"2.0\",\"method\":\"sandbox/output\",\"params\":{\"sandboxId\":" + quotedId
                    + ",\"stream\":\"" + stream.name().toLowerCase(java.util.Locale.ROOT) + "\",").getBytes(StandardCharsets.UTF_8);
            prefixes[stream.ordinal()] = prefix;
        }
        return prefix;
    }

    /** Written as it goes out, like sandbox/output: a tree and its serializer cost more than the run's other answers. */
    @Override
    public void started(Sandbox sandbox) {
        byte[] message = ("{\"jsonrpc\":\"2.0\",\"method\":\"sandbox/started\",\"params\":{\"sandboxId\":" + quotedId
                + ",\"pid\":" + sandbox.pid() + ",\"requestId\":" + JsonText.of(json, call.id()) + "}}").getBytes(StandardCharsets.UTF_8);
        call.notifyClientRawAtOnce(message);
    }

    /**
     * Text when the chunk is valid UTF-8 (a character split at its end waits for the next chunk),
     * else base64. The frame is held until written, within the memory budget: waiting for room
     * holds the run's thread, so the command waits on its pipe while the client is slow.
     */
    @Override
    public void output(Sandbox sandbox, RunListener.Stream stream, byte[] data, int offset, int length, Runnable whileWaiting) {
        long held = 2L * length;
        try {
            budget.reserve(held, whileWaiting);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            held = 0; // sent all the same: output is never dropped
        }
        try {
            encode(stream, data, offset, length, whileWaiting);
        } finally {
            if (held > 0) budget.release(held);
        }
    }

    private void encode(RunListener.Stream stream, byte[] data, int offset, int length, Runnable whileWaiting) {
        byte[] carry = carries[stream.ordinal()];
        if (carry.length > 0) {
            byte[] joined = Arrays.copyOf(carry, carry.length + length);
            System.arraycopy(data, offset, joined, carry.length, length);
            data = joined;
            offset = 0;
            length = joined.length;
        }
        int end = offset + length;
        int complete = Utf8.completeLength(data, offset, end);
        byte[] rest;
        if (complete == offset || sentAsText(stream, data, offset, complete, whileWaiting)) {
            rest = complete == end ? NO_BYTES : Arrays.copyOfRange(data, complete, end);
        } else {
            sendBase64(stream, data, offset, end, whileWaiting);
            rest = NO_BYTES;
        }
        carries[stream.ordinal()] = rest;
    }

    private static final java.lang.invoke.VarHandle LONGS =
            java.lang.invoke.MethodHandles.byteArrayViewVarHandle(long[].class, java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final long ONES = 0x0101010101010101L, HIGHS = 0x8080808080808080L;

    /**
     * The end of the run of bytes from {@code i} that a JSON string takes as they are: up to the
     * first control character, quote, backslash or byte of a multi-byte sequence, or {@code to}.
     * Eight bytes at a time while none of them is one (streamed output is mostly such runs: the
     * scan was half of what a chunk cost), then byte by byte to the exact place.
     */
    static int plainEnd(byte[] data, int i, int to) {
        while (i + 8 <= to && special((long) LONGS.get(data, i)) == 0) i += 8;
        while (i < to && data[i] >= 0x20 && data[i] != '"' && data[i] != '\\') i++;
        return i;
    }

    /**
     * Non-zero when one of the eight bytes of {@code x} is below 0x20, a quote, a backslash or
     * 0x80 and above (the usual "has a byte less than n" and "has a zero byte" word tricks: never
     * zero when there is one; a borrow may also mark a byte after one, which the byte loop passes).
     */
    static long special(long x) {
        long quote = x ^ 0x2222222222222222L;
        long backslash = x ^ 0x5c5c5c5c5c5c5c5cL;
        return ((x - 0x2020202020202020L) & ~x | (quote - ONES) & ~quote | (backslash - ONES) & ~backslash | x) & HIGHS;
    }

    @Override
    public void outputEnded(Sandbox sandbox, RunListener.Stream stream, Runnable whileWaiting) {
        byte[] carry = carries[stream.ordinal()];
        if (carry.length > 0) sendBase64(stream, carry, 0, carry.length, whileWaiting);
    }

    /** A text frame of {@code data[from..to)}, sent; false, nothing sent, at a malformed UTF-8 sequence. */
    private boolean sentAsText(RunListener.Stream stream, byte[] data, int from, int to, Runnable whileWaiting) {
        frame.start(prefix(stream), "\"text\":\"", to - from + (to - from) / 8);
        if (!frame.text(data, from, to)) return false;
        send(whileWaiting);
        return true;
    }

    private void sendBase64(RunListener.Stream stream, byte[] data, int from, int to, Runnable whileWaiting) {
        byte[] text = Base64.getEncoder().encode(Arrays.copyOfRange(data, from, to)); // the rare case: not UTF-8
        frame.start(prefix(stream), "\"base64\":\"", text.length);
        frame.append(text);
        send(whileWaiting);
    }

    /**
     * A written frame's buffer is kept for the next only up to this size (a chunk's frame is
     * ~74 KB; one of control characters grows to ~560 KB): what a run keeps between frames is not
     * counted against the budget, so it stays small.
     */
    private static final int KEPT_AT_MOST = 256 * 1024;

    /** Hands the frame to the server, and builds the next one in the buffer it gave back last, if any. */
    private void send(Runnable whileWaiting) {
        int length = frame.end();
        byte[] sent = frame.bytes;
        byte[] back = returned.getAndSet(null);
        frame.bytes = back != null ? back : NO_BYTES;
        call.notifyClientRaw(sent, length, () -> { // a spare byte is left: the newline goes there
            if (sent.length <= KEPT_AT_MOST) returned.set(sent);
        }, whileWaiting);
    }

    /**
     * One sandbox/output frame being built: up to its data from a prefix, then the data escaped as
     * a JSON string's content, then its end, with a spare byte after it. Its buffer grows only
     * when escapes make the text longer than the room it was started with.
     */
    static final class FrameBuilder {
        /** After the data: the string's quote and the two objects' braces, and the spare byte. */
        private static final int END = 4;
        byte[] bytes = NO_BYTES;
        private int at;

        /** Starts a frame: the prefix, the member name, room for {@code room} bytes of data. */
        void start(byte[] prefix, String member, int room) {
            at = 0;
            ensure(prefix.length + member.length() + room);
            System.arraycopy(prefix, 0, bytes, 0, prefix.length);
            at = prefix.length;
            for (int i = 0; i < member.length(); i++) bytes[at++] = (byte) member.charAt(i);
        }

        /** Room for {@code more} bytes after what is written, and the end. */
        private void ensure(int more) {
            long need = (long) at + more + END;
            if (need > Integer.MAX_VALUE - 8) throw new OutOfMemoryError("a frame of " + need + " bytes");
            // No minimum: a queued frame is held at its array's size, and a slow client's queue of small frames must stay small.
            if (bytes.length < need) bytes = Arrays.copyOf(bytes, (int) Math.max(need, Math.min(Integer.MAX_VALUE - 8, bytes.length + (long) bytes.length / 2)));
        }

        void append(byte[] data) {
            ensure(data.length);
            System.arraycopy(data, 0, bytes, at, data.length);
            at += data.length;
        }

        /**
         * Escapes {@code data[from..to)} in, checking UTF-8 on the way (one pass: runs of plain
         * ASCII are copied whole); false at a malformed sequence. There is always room for the
         * rest of the data as it is: only an escape, which adds up to five bytes, makes more.
         */
        boolean text(byte[] data, int from, int to) {
            ensure(to - from);
            int i = from;
            while (i < to) {
                int plain = plainEnd(data, i, to);
                System.arraycopy(data, i, bytes, at, plain - i);
                at += plain - i;
                i = plain;
                if (i == to) break;
                byte b = data[i];
                if (b < 0) { // a multi-byte sequence: JSON takes it as it is, if well-formed
                    int length = Utf8.sequenceLength(data, i, to);
                    if (length == 0) return false;
                    System.arraycopy(data, i, bytes, at, length);
                    at += length;
                    i += length;
                    continue;
                }
                if (bytes.length - at < to - i + 5 + END) ensure(to - i + 5);
                bytes[at++] = '\\';
                if (b == '"' || b == '\\') {
                    bytes[at++] = b;
                } else {
                    control(b);
                }
                i++;
            }
            return true;
        }

        private void control(byte b) {
            switch (b) {
                case '\n' -> bytes[at++] = 'n';
                case '\r' -> bytes[at++] = 'r';
                case '\t' -> bytes[at++] = 't';
                case '\b' -> bytes[at++] = 'b';
                case '\f' -> bytes[at++] = 'f';
                default -> {
                    bytes[at++] = 'u';
                    bytes[at++] = '0';
                    bytes[at++] = '0';
                    bytes[at++] = HEX[b >> 4];
                    bytes[at++] = HEX[b & 0xf];
                }
            }
        }

        /** Ends the frame: its length (the spare byte after it is not counted). */
        int end() {
            bytes[at++] = '"';
            bytes[at++] = '}';
            bytes[at++] = '}';
            return at;
        }
    }

    @Override
    public void finished(RunOutcome outcome) {
        sandboxes.removeThenAnswer(sandbox, () -> { // removed first: the client may reuse the id at once
            // Written (captured output streamed from memory and spool file) and closed by the server.
            RunResult result = RunResults.of(outcome);
            if (outcome.status() == RunOutcome.Status.CANCELLED) {
                call.fail(new RpcException(ErrorCodes.REQUEST_CANCELLED, "Request cancelled", json.getNodeFactory().pojoNode(result)));
            } else {
                RawJson written = RunResults.written(result, json);
                call.reply(written != null ? written : result);
            }
        });
    }

    @Override
    public void failed(SandboxException failure) {
        sandboxes.removeThenAnswer(sandbox, () -> call.fail(failure));
    }
}
