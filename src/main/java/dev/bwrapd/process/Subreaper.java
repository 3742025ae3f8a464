package dev.bwrapd.process;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * prctl(PR_SET_CHILD_SUBREAPER) on its own, apart from {@link Libc}: the answer to initialize
 * reports it, and linking Libc's two dozen downcalls takes about 200 ms, which happens meanwhile.
 */
final class Subreaper {
    private Subreaper() {}

    /** The downcall's shape, registered for native images like Libc's (NativeConfigTest checks it). */
    static final Libc.Shape SHAPE = new Libc.Shape("prctl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), 1);

    /** Makes this process a child subreaper; whether that worked. */
    static boolean become() {
        Linker linker = Linker.nativeLinker();
        MethodHandle prctl = linker.downcallHandle(linker.defaultLookup().find("prctl").orElseThrow(), SHAPE.descriptor(),
                Linker.Option.firstVariadicArg(SHAPE.firstVariadicArg()));
        try {
            return (int) prctl.invokeExact(Libc.PR_SET_CHILD_SUBREAPER, 1L) == 0;
        } catch (Throwable t) {
            return false;
        }
    }
}
