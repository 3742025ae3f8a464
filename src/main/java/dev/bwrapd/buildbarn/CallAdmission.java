package dev.bwrapd.buildbarn;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import dev.bwrapd.buildbarn.proto.RunRequest;
import dev.bwrapd.buildbarn.proto.RunnerGrpc;
import io.grpc.BindableService;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Admits each call at its start, over all connections together, before gRPC reads its request:
 * a unary call's handler asks for its request only when started (ServerCalls' startCall), so a
 * call refused here is closed with RESOURCE_EXHAUSTED having buffered at most what HTTP/2's flow
 * control let its client send meanwhile, never a whole request of up to MAX_MESSAGE_BYTES parsed
 * and held. Without this, every connection could hold as many parsed requests as it may open
 * calls, and a client opening many connections spent the heap (docs/buildbarn.md, What the
 * socket takes). A call admitted is counted until gRPC says it ended (completed or cancelled),
 * after its handler returned. Its request comes here as bytes ({@link #admitted}), refused
 * unparsed when it would take more heap parsed than a call is given ({@link #heapOf}): many tiny
 * strings take many times their size.
 */
final class CallAdmission implements ServerInterceptor {
    /**
     * The heap one held call is given: its request parsed, as {@link #heapOf} weighs it (measured:
     * 2.35 MB of heap for a 2.18 MB request of 2150 variables); a heavier request is refused.
     */
    static final long HEAP_PER_CALL = 5L << 19;
    /** The heap the runner takes holding no call (measured: 8 to 17 MiB live), and some room. */
    static final long HEAP_AT_REST = 24L << 20;
    /** The heap a field of a request (a string, mostly) takes beyond its bytes, with room (see heapOf). */
    static final long STRING_HEAP = 56;
    /**
     * The heap a field of a number the request's message does not have takes beyond its bytes:
     * protobuf keeps each in its unknown fields, a map entry, a list and a boxed number of its own
     * (a review measured 5.29 MB kept for 40000 varints of numbers of their own, 159 kB).
     */
    static final long UNKNOWN_FIELD_HEAP = 256;

    private final int concurrency;
    /** Runs held at once, running or waiting for a turn (RunnerService): twice --concurrency. */
    private final Semaphore runs;
    /**
     * Calls of any method held at once: the Runs and a few more, so that CheckReadiness is still
     * answered when Runs take all theirs. bb_worker makes one call at a time per action it may
     * run at once (a CheckReadiness while idle, or a Run): never more than --concurrency.
     */
    private final Semaphore calls;
    /** What {@link #calls} admits, for its refusals. */
    private final int callsHeld;

    /** @param callsHeld calls of any method held at once, from {@link #callsHeld} */
    CallAdmission(int concurrency, int callsHeld) {
        this.concurrency = concurrency;
        this.callsHeld = callsHeld;
        // Runs never take every call's place: CheckReadiness is still answered while they wait (the heap may hold fewer calls).
        this.runs = new Semaphore(Math.min(2 * concurrency, Math.max(1, callsHeld - 1)));
        this.calls = new Semaphore(callsHeld);
    }

    /**
     * The most calls the runner holds at once, over all connections: 2 × --concurrency + 4, or
     * fewer when a heap of {@code maxHeap} bytes could not hold their requests at their largest,
     * so that a client sending such requests is refused rather than the runner's heap spent.
     */
    static int callsHeld(int concurrency, long maxHeap) {
        return (int) Math.max(1, Math.min(2L * concurrency + 4, (maxHeap - HEAP_AT_REST) / HEAP_PER_CALL));
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        boolean run = call.getMethodDescriptor().getFullMethodName().equals(RunnerGrpc.getRunMethod().getFullMethodName());
        if (run && !runs.tryAcquire()) {
            return refused(call, concurrency + " actions run and " + concurrency + " more wait already (--concurrency "
                    + concurrency + "); try again later");
        }
        if (!calls.tryAcquire()) {
            if (run) runs.release();
            return refused(call, callsHeld + " calls are open already (2 × --concurrency " + concurrency
                    + " + 4, or what the heap holds); try again later");
        }
        AtomicBoolean released = new AtomicBoolean();
        Runnable release = () -> {
            if (released.compareAndSet(false, true)) {
                calls.release();
                if (run) runs.release();
            }
        };
        ServerCall.Listener<Q> listener;
        try {
            listener = next.startCall(call, headers);
        } catch (RuntimeException | Error e) { // gRPC closes the call, and tells no listener of it
            release.run();
            throw e;
        }
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
            /** Its request would take more heap parsed than a call is given: closed, nothing more passed on. */
            private boolean refused;

            @Override
            public void onMessage(Q message) {
                if (refused) return;
                long heap = message instanceof byte[] bytes ? heapOf(bytes, run) : 0;
                if (heap > HEAP_PER_CALL) {
                    refused = true;
                    call.close(Status.RESOURCE_EXHAUSTED.withDescription("the request would take about " + heap + " bytes of the"
                            + " runner's heap once parsed (its size, and " + STRING_HEAP + " bytes more for each field in it, twice that"
                            + " for each environment variable), over the " + HEAP_PER_CALL + " a call is given: use fewer, longer strings"),
                            new Metadata());
                    return;
                }
                super.onMessage(message);
            }

            @Override
            public void onHalfClose() {
                if (!refused) super.onHalfClose();
            }

            @Override
            public void onReady() {
                if (!refused) super.onReady();
            }

            @Override
            public void onComplete() {
                try {
                    super.onComplete();
                } finally {
                    release.run();
                }
            }

            @Override
            public void onCancel() {
                try {
                    super.onCancel();
                } finally {
                    release.run();
                }
            }
        };
    }

    /**
     * About the heap a request takes once parsed, read from its bytes without parsing it: each
     * field is an object of its own beyond its bytes (a string: an argument, a path; protobuf
     * keeps unknown fields too), an environment variable two and a map entry (measured, beyond
     * the bytes: 52 bytes a string for 700000 one-byte arguments, a 2.1 MB request taking 38.6 MB
     * parsed; 103 a variable for 200000 variables); a field of a number the Run's message has
     * not, and any field of another method's request (all tiny), {@link #UNKNOWN_FIELD_HEAP}.
     * Bytes that are no message are left to gRPC's own parse, which refuses them.
     */
    static long heapOf(byte[] request, boolean run) {
        long heap = request.length;
        CodedInputStream in = CodedInputStream.newInstance(request);
        try {
            for (int tag = in.readTag(); tag != 0; tag = in.readTag()) {
                int number = WireFormat.getTagFieldNumber(tag);
                boolean variable = run && number == RunRequest.ENVIRONMENT_VARIABLES_FIELD_NUMBER;
                boolean known = run && RunRequest.getDescriptor().findFieldByNumber(number) != null;
                heap += variable ? 2 * STRING_HEAP : known ? STRING_HEAP : UNKNOWN_FIELD_HEAP;
                int type = WireFormat.getTagWireType(tag);
                // A group's fields are read one by one, counted like the others (an unknown field is kept too).
                if (type != WireFormat.WIRETYPE_START_GROUP && type != WireFormat.WIRETYPE_END_GROUP) in.skipField(tag);
            }
        } catch (IOException e) {
            // no message: gRPC's parse says so
        }
        return heap;
    }

    /**
     * The service with its requests handed over as bytes, so that {@code admission} sees them
     * before they are parsed (ServerInterceptors.useMarshalledMessages parses them after it).
     */
    static ServerServiceDefinition admitted(BindableService service, CallAdmission admission) {
        return ServerInterceptors.intercept(ServerInterceptors.useMarshalledMessages(service.bindService(), BYTES), admission);
    }

    /** A message as its bytes (gRPC has checked their number against maxInboundMessageSize). */
    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try (stream) {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw Status.INTERNAL.withDescription("reading a message: " + e).withCause(e).asRuntimeException();
            }
        }
    };

    private static <Q, R> ServerCall.Listener<Q> refused(ServerCall<Q, R> call, String why) {
        call.close(Status.RESOURCE_EXHAUSTED.withDescription(why), new Metadata());
        return new ServerCall.Listener<>() {};
    }
}
