package dev.bwrapd.jsonrpc;

/** Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF), the one check for both directions. */
public final class Utf8 {
    private Utf8() {}

    /**
     * Where {@code data[from..to)} stops being well-formed UTF-8: {@code to} if it all is. A
     * sequence cut off by {@code to} counts as malformed at its first byte.
     */
    public static int validUpTo(byte[] data, int from, int to) {
        int i = from;
        while (i < to) {
            int b = data[i];
            if (b >= 0) {
                i++;
                continue;
            }
            int length = sequenceLength(data, i, to);
            if (length == 0) return i;
            i += length;
        }
        return to;
    }

    /**
     * Length of {@code data[from..to)} without a trailing sequence that is incomplete but could
     * still become valid with the bytes that follow (kept back for the next chunk of a stream).
     */
    public static int completeLength(byte[] data, int from, int to) {
        for (int back = 1; back <= 3 && to - back >= from; back++) {
            int b = data[to - back] & 0xff;
            if ((b & 0xc0) == 0x80) continue; // continuation byte: look further back
            int needed = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
            return needed > back ? to - back : to;
        }
        return to;
    }

    /** Length of the well-formed multi-byte sequence at {@code data[i]} (ending by {@code to}), or 0. */
    public static int sequenceLength(byte[] data, int i, int to) {
        int b0 = data[i] & 0xff;
        int length;
        int min2 = 0x80, max2 = 0xbf;
        if (b0 >= 0xc2 && b0 <= 0xdf) {
            length = 2;
        } else if (b0 >= 0xe0 && b0 <= 0xef) {
            length = 3;
            if (b0 == 0xe0) min2 = 0xa0; // overlong
            if (b0 == 0xed) max2 = 0x9f; // surrogates
        } else if (b0 >= 0xf0 && b0 <= 0xf4) {
            length = 4;
            if (b0 == 0xf0) min2 = 0x90; // overlong
            if (b0 == 0xf4) max2 = 0x8f; // past U+10FFFF
        } else {
            return 0;
        }
        if (i + length > to) return 0;
        int b1 = data[i + 1] & 0xff;
        if (b1 < min2 || b1 > max2) return 0;
        for (int k = 2; k < length; k++) if ((data[i + k] & 0xc0) != 0x80) return 0;
        return length;
    }
}
