package dev.bwrapd.sandbox;

import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetEncoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * A request's stdin string as the bytes it stands for, produced as they are read: a 15 MiB
 * {@code stdin.text} is written to the command's pipe without a second, encoded copy in memory.
 */
final class StringStreams {
    private StringStreams() {}

    /** The string in UTF-8 (an unpaired surrogate, which JSON allows, becomes '?', as String.getBytes does). */
    static InputStream utf8(String text) {
        return new InputStream() {
            private final CharBuffer chars = CharBuffer.wrap(text);
            private final CharsetEncoder encoder = StandardCharsets.UTF_8.newEncoder()
                    .onMalformedInput(CodingErrorAction.REPLACE).onUnmappableCharacter(CodingErrorAction.REPLACE);
            /** Encoded bytes not yet read: the encoder needs room for a whole character. */
            private final ByteBuffer pending = ByteBuffer.allocate(8192).flip();
            private boolean flushed;

            @Override
            public int read() {
                byte[] one = new byte[1];
                return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) {
                if (len == 0) return 0;
                if (!pending.hasRemaining()) {
                    if (flushed) return -1;
                    pending.clear();
                    encoder.encode(chars, pending, true);
                    if (!chars.hasRemaining() && encoder.flush(pending).isUnderflow()) flushed = true;
                    pending.flip();
                    if (!pending.hasRemaining()) return flushed ? -1 : 0;
                }
                int n = Math.min(len, pending.remaining());
                pending.get(b, off, n);
                return n;
            }
        };
    }

    /** The bytes a base64 string encodes; reading fails (IOException) where the string is not base64. */
    static InputStream base64(String encoded) {
        return Base64.getDecoder().wrap(new InputStream() {
            private int position;

            @Override
            public int read() {
                return position < encoded.length() ? ascii(encoded.charAt(position++)) : -1;
            }

            @Override
            public int read(byte[] b, int off, int len) {
                if (position >= encoded.length()) return -1;
                int n = Math.min(len, encoded.length() - position);
                for (int i = 0; i < n; i++) b[off + i] = (byte) ascii(encoded.charAt(position++));
                return n;
            }

            /** A non-ASCII character is no base64 digit: it becomes one that the decoder refuses. */
            private static int ascii(char c) {
                return c < 0x80 ? c : '!';
            }
        });
    }
}
