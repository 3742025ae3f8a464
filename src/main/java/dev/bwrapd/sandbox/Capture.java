package dev.bwrapd.sandbox;

import dev.bwrapd.memory.MemoryBudget;
import dev.bwrapd.process.Libc;

import java.io.IOException;
import java.io.InputStream;
import java.io.SequenceInputStream;
import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

/**
 * The captured bytes of one output stream, exact or saying they are not. The first bytes are kept
 * in memory (up to {@link Store#memoryBytes()}) while the memory budget stays at most half used
 * with them: captures leave the other half to requests and streamed output, which have no file to
 * go to (when captures could hold the whole budget, every larger request was refused and every
 * stream waited until those runs ended). The rest, up to
 * the capture limit, goes to an unlinked temporary file, so nothing below the limit is dropped. It
 * counts every byte the stream produced: {@link #truncated()} is true exactly when fewer were kept
 * (beyond the limit, or after a failure, which {@link #error()} then names).
 *
 * <p>Independent of who reads the pipe: the reader calls {@link #append} for every chunk, even
 * after a failure (the pipe must keep draining), then {@link #finish}. The owner reads it back
 * with {@link #open} (as often as needed: once to measure a response, once to write it) and
 * {@link #close}s it, which gives back its memory and its file.
 */
public final class Capture implements AutoCloseable {
    /** Where captures keep their bytes: the shared budget, a directory for spool files, the memory part's size. */
    public record Store(MemoryBudget budget, Path spoolDirectory, int memoryBytes) {}

    private static final byte[] EMPTY = new byte[0];

    private final long limit;
    private final Store store;
    private byte[] memory = EMPTY;
    private int inMemory;
    private boolean memoryFull;
    private FileChannel spool;
    private long spooled;
    private long size;
    private String error;
    private boolean finished;
    private boolean closed;
    private final Utf8Check utf8 = new Utf8Check();

    public Capture(long limit, Store store) {
        if (limit < 0) throw new IllegalArgumentException("negative capture limit: " + limit);
        this.limit = limit;
        this.store = store;
    }

    /** Takes the next bytes of the stream. Never throws: a failure is recorded and counting goes on. */
    public synchronized void append(byte[] data, int offset, int length) {
        if (finished) throw new IllegalStateException("the capture has finished");
        long room = Math.max(0, limit - size);
        size += length;
        if (error != null || closed || room == 0) return;
        int keep = (int) Math.min(room, length);
        int toMemory = memoryFull || spool != null ? 0 : Math.min(keep, makeRoom(keep));
        if (toMemory > 0) {
            System.arraycopy(data, offset, memory, inMemory, toMemory);
            inMemory += toMemory;
            utf8.scan(data, offset, toMemory);
        }
        if (keep > toMemory) toSpool(data, offset + toMemory, keep - toMemory);
    }

    /** Grows the memory part toward {@code wanted} more bytes within the budget; how many fit. */
    private int makeRoom(int wanted) {
        int free = memory.length - inMemory;
        if (free >= wanted) return wanted;
        int capacity = (int) Math.min(store.memoryBytes(), Math.max((long) memory.length * 2, (long) inMemory + wanted));
        capacity = Math.max(capacity, Math.min(store.memoryBytes(), 4096));
        MemoryBudget budget = store.budget();
        if (capacity > memory.length && budget.tryReserveWithin(capacity - memory.length, budget.limit() / 2)) {
            memory = Arrays.copyOf(memory, capacity);
            free = capacity - inMemory;
        }
        if (free < wanted) memoryFull = true; // from here on everything goes to the file, in order
        return free;
    }

    private void toSpool(byte[] data, int offset, int length) {
        try {
            if (spool == null) spool = openSpool(store.spoolDirectory());
            ByteBuffer buffer = ByteBuffer.wrap(data, offset, length);
            while (buffer.hasRemaining()) spool.write(buffer, spooled + (length - buffer.remaining()));
            spooled += length;
            utf8.scan(data, offset, length);
        } catch (IOException | RuntimeException e) {
            fail("cannot keep the output beyond " + kept() + " bytes in a file: " + e.getMessage());
        }
    }

    /**
     * A file that never has a name (O_TMPFILE; ext4, xfs, btrfs and tmpfs have them): nothing in
     * the directory to see, open or swap for whoever shares it — a run on the host's root sees the
     * host's /var/tmp and runs as bwrapd's user, and would otherwise open another run's output in
     * the moment between its creation and unlinking. Used as a FileChannel, reopened through this
     * process's own descriptor (the file cannot be linked anywhere: O_EXCL). Where the file system
     * has no such files, one made with a name and unlinked at once ({@link #openNamedSpool}).
     */
    static FileChannel openSpool(Path directory) throws IOException {
        int fd;
        try {
            fd = Libc.open(directory.toString(), Libc.O_TMPFILE | Libc.O_RDWR | Libc.O_EXCL, 0600);
        } catch (Libc.Error e) {
            if (e.errno != Libc.EOPNOTSUPP && e.errno != Libc.EISDIR) throw new IOException(e.getMessage());
            return openNamedSpool(directory);
        }
        try {
            return FileChannel.open(Path.of("/proc/self/fd/" + fd), StandardOpenOption.READ, StandardOpenOption.WRITE);
        } finally {
            Libc.close(fd);
        }
    }

    /** A file with a name only for a moment (unlinked at once), so nothing is left behind whatever happens. */
    private static FileChannel openNamedSpool(Path directory) throws IOException {
        for (int attempt = 0; ; attempt++) {
            // Any name will do: O_EXCL refuses one that exists, whoever made it.
            String name = "bwrapd-capture-" + Long.toUnsignedString(java.util.concurrent.ThreadLocalRandom.current().nextLong(), 36) + ".spool";
            try {
                return openNamedSpool(directory, name);
            } catch (java.nio.file.FileAlreadyExistsException e) {
                if (attempt == 9) throw e;
            }
        }
    }

    /**
     * Creates {@code directory/name} and opens it in one open(2) (O_CREAT|O_EXCL, never following a
     * link, mode 0600), then unlinks it. The temporary directory may be shared with sandboxes that
     * see it (a mount of the host's /tmp): a file made first and opened again by its name could be
     * a link to any file of bwrapd's user by then, and the command's output would go there.
     */
    static FileChannel openNamedSpool(Path directory, String name) throws IOException {
        Path file = directory.resolve(name);
        FileChannel channel = FileChannel.open(file, java.util.Set.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                        StandardOpenOption.WRITE, java.nio.file.LinkOption.NOFOLLOW_LINKS),
                java.nio.file.attribute.PosixFilePermissions.asFileAttribute(java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
        try {
            Files.delete(file);
        } catch (IOException e) {
            channel.close();
            throw e;
        }
        return channel;
    }

    /** Where large temporary files go (FHS): a disk where /tmp is memory. */
    static final Path VAR_TMP = Path.of("/var/tmp");

    /**
     * Where spool files go: $TMPDIR when it is an absolute path (as for any Unix program), else
     * java.io.tmpdir (/tmp) — unless that is a tmpfs and /var/tmp a writable directory that is not:
     * a spool file on a tmpfs is memory outside the budget, up to captureLimitBytes a stream, and
     * many distributions now mount /tmp so. Nothing stays in /var/tmp: a spool file is unlinked at once.
     */
    public static Path spoolDirectory() {
        return spoolDirectory(System.getenv("TMPDIR"), System.getProperty("java.io.tmpdir"), Capture::onDisk);
    }

    /** The same, from {@code $TMPDIR} and {@code java.io.tmpdir} as given; {@code onDisk} says whether a directory is a writable one not in memory. */
    static Path spoolDirectory(String tmpdirVariable, String javaTmpdir, java.util.function.Predicate<Path> onDisk) {
        if (tmpdirVariable != null && tmpdirVariable.startsWith("/")) return Path.of(tmpdirVariable);
        Path tmp = Path.of(javaTmpdir);
        return !onDisk.test(tmp) && onDisk.test(VAR_TMP) ? VAR_TMP : tmp;
    }

    private static final long TMPFS_MAGIC = 0x01021994L, RAMFS_MAGIC = 0x858458f6L;

    /** A writable directory on a file system that is not memory (tmpfs, ramfs); false when that cannot be told. */
    static boolean onDisk(Path directory) {
        int fd = Libc.openat(Libc.AT_FDCWD, directory.toString(), Libc.O_PATH | Libc.O_DIRECTORY);
        if (fd < 0) return false;
        try {
            long type = Libc.filesystemType(fd);
            return type != TMPFS_MAGIC && type != RAMFS_MAGIC && Files.isWritable(directory);
        } catch (Libc.Error e) {
            return false;
        } finally {
            Libc.close(fd);
        }
    }

    /** The stream could not be read (or kept) further: what was kept stays, marked as incomplete. */
    public synchronized void fail(String why) {
        if (error == null) error = why;
    }

    /** The stream has ended. */
    public synchronized void finish() {
        finished = true;
    }

    /** Every byte the stream produced, kept or not. */
    public synchronized long size() {
        return size;
    }

    /** The bytes kept, which {@link #open} returns. */
    public synchronized long kept() {
        return inMemory + spooled;
    }

    /** Whether bytes are missing: beyond the limit, or after a failure. */
    public synchronized boolean truncated() {
        return kept() < size || error != null;
    }

    /** Why the capture is incomplete beyond its limit (a read or spool failure), or null. */
    public synchronized String error() {
        return error;
    }

    /** Whether the kept bytes are valid UTF-8 (a character cut by the limit makes them not). */
    public synchronized boolean isText() {
        return utf8.complete();
    }

    /** The kept bytes from the first; each call starts again. Valid until {@link #close}. */
    public synchronized InputStream open() {
        InputStream head = new ByteArrayInputStream(memory, 0, inMemory);
        if (spool == null) return head;
        return new SequenceInputStream(head, new SpoolStream(spool, spooled));
    }

    /** Gives back the memory and the spool file; what is appended afterwards is only counted. */
    @Override
    public synchronized void close() {
        closed = true;
        if (memory.length > 0) store.budget().release(memory.length);
        memory = EMPTY;
        inMemory = 0;
        spooled = 0;
        if (spool != null) {
            try {
                spool.close();
            } catch (IOException ignored) {
                // the file has no name: its space is freed with the descriptor anyway
            }
            spool = null;
        }
    }

    /** Reads a spool file from the start by position, so several readers never disturb each other. */
    private static final class SpoolStream extends InputStream {
        private final FileChannel channel;
        private final long end;
        private long position;

        SpoolStream(FileChannel channel, long end) {
            this.channel = channel;
            this.end = end;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (position >= end) return -1;
            int n = channel.read(ByteBuffer.wrap(b, off, (int) Math.min(len, end - position)), position);
            if (n < 0) throw new IOException("the capture's spool file ended early");
            position += n;
            return n;
        }
    }

    /** Incremental UTF-8 validation (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF). */
    static final class Utf8Check {
        private boolean valid = true;
        private int need;
        private int low = 0x80, high = 0xbf;

        void scan(byte[] data, int offset, int length) {
            int end = offset + length;
            for (int i = offset; valid && i < end; i++) {
                int c = data[i] & 0xff;
                if (need == 0) {
                    if (c < 0x80) continue;
                    low = 0x80;
                    high = 0xbf;
                    if (c >= 0xc2 && c <= 0xdf) need = 1;
                    else if (c == 0xe0) { need = 2; low = 0xa0; }
                    else if (c == 0xed) { need = 2; high = 0x9f; }
                    else if (c >= 0xe1 && c <= 0xef) need = 2;
                    else if (c == 0xf0) { need = 3; low = 0x90; }
                    else if (c == 0xf4) { need = 3; high = 0x8f; }
                    else if (c >= 0xf1 && c <= 0xf3) need = 3;
                    else valid = false;
                } else if (c < low || c > high) {
                    valid = false;
                } else {
                    need--;
                    low = 0x80;
                    high = 0xbf;
                }
            }
        }

        /** Valid so far and not inside a character. */
        boolean complete() {
            return valid && need == 0;
        }
    }
}
