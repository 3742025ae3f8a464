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
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
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
 * strings take many times their size. And it must arrive whole within {@link #REQUEST_MS} of the
 * call's start, or the call is closed and its place given back: a client that opened calls and
 * never sent kept every place, and bb_worker's calls out, for as long as it liked.
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

    /**
     * How long an admitted call may take to send its request whole, from its start. bb_worker
     * sends it at once, over a local socket: 2.25 MiB at most, tens of milliseconds (a 2.2 MB
     * request: 20 ms median from Python's client); ten seconds leave hundreds of times that to a
     * loaded machine (a client starved of CPU, a collection's pause), and give a place held by a
     * client that stalled back within seconds.
     */
    static final long REQUEST_MS = 10_000;

    private final int concurrency;
    /** Where each admitted call's {@link #REQUEST_MS} is counted. */
    private final ScheduledExecutorService clock;
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

    /**
     * @param callsHeld calls of any method held at once, from {@link #callsHeld}
     * @param clock where the time each call's request takes to arrive is counted (cancelled timers removed: see {@link #clock()})
     */
    CallAdmission(int concurrency, int callsHeld, ScheduledExecutorService clock) {
        this.concurrency = concurrency;
        this.clock = clock;
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

    /** A clock for {@link #CallAdmission}: one daemon thread, a timer cancelled gone at once rather than kept till its time. */
    static ScheduledExecutorService clock() {
        java.util.concurrent.ScheduledThreadPoolExecutor clock = new java.util.concurrent.ScheduledThreadPoolExecutor(1,
                dev.bwrapd.process.Libc.freeingAtEnd(Thread.ofPlatform().daemon().name("grpc-request-clock").factory()));
        clock.setRemoveOnCancelPolicy(true);
        return clock;
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
        try {
            return new Admitted<>(next.startCall(call, headers), call, run, release).counted();
        } catch (RuntimeException | Error e) { // gRPC closes the call, and tells no listener of it
            release.run();
            throw e;
        }
    }

    /** Where an admitted call's request is: awaited, handed to the handler (with its half-close), or the call closed here. */
    private enum Request { AWAITED, HANDED, CLOSED_HERE }

    /**
     * An admitted call's listener: its request weighed as it arrives, and awaited whole (message
     * and half-close) for {@link #REQUEST_MS} at most from the call's start; after that the call
     * is closed DEADLINE_EXCEEDED, and its place is given back once gRPC has ended it. Only the
     * time a client takes to send is bounded: a Run handed its request runs as long as its action.
     * The handler is told nothing of a call closed here, and the clock closes none handed to it,
     * so the call is closed once.
     */
    private final class Admitted<Q, R> extends ForwardingServerCallListener.SimpleForwardingServerCallListener<Q> {
        private final ServerCall<Q, R> call;
        private final boolean run;
        private final Runnable release;
        private Request request = Request.AWAITED;
        /** Its message was passed on already: a unary call takes one. */
        private boolean message;
        private ScheduledFuture<?> tooLate;

        Admitted(ServerCall.Listener<Q> listener, ServerCall<Q, R> call, boolean run, Runnable release) {
            super(listener);
            this.call = call;
            this.run = run;
            this.release = release;
        }

        /** Starts counting its {@link #REQUEST_MS} (not in the constructor: the clock must see the listener whole). */
        synchronized Admitted<Q, R> counted() {
            tooLate = clock.schedule(this::tooLate, REQUEST_MS, TimeUnit.MILLISECONDS);
            return this;
        }

        private synchronized void stopCounting() {
            tooLate.cancel(false);
        }

        /** On the clock's thread (gRPC calls the listener's methods one at a time, but not this one): hence synchronized. */
        private synchronized void tooLate() {
            if (request != Request.AWAITED) return;
            closeHere(Status.DEADLINE_EXCEEDED.withDescription("the call's request did not arrive whole within " + REQUEST_MS / 1000
                    + " s of its start (its message and the end of the client's side): the runner gave its place to another call"));
        }

        private void closeHere(Status status) {
            request = Request.CLOSED_HERE;
            tooLate.cancel(false);
            call.close(status, new Metadata());
        }

        @Override
        public synchronized void onMessage(Q message) {
            if (request != Request.AWAITED) return;
            if (this.message) { // as gRPC's unary handler closes it, but here, where the clock might close it too
                closeHere(Status.INTERNAL.withDescription("Too many requests"));
                return;
            }
            long heap = message instanceof byte[] bytes ? heapOf(bytes, run) : 0;
            if (heap > HEAP_PER_CALL) {
                closeHere(Status.RESOURCE_EXHAUSTED.withDescription("the request would take about " + heap + " bytes of the"
                        + " runner's heap once parsed (its size, and " + STRING_HEAP + " bytes more for each field in it, twice that"
                        + " for each environment variable), over the " + HEAP_PER_CALL + " a call is given: use fewer, longer strings"));
                return;
            }
            this.message = true;
            super.onMessage(message);
        }

        @Override
        public void onHalfClose() {
            synchronized (this) {
                if (request != Request.AWAITED) return;
                request = Request.HANDED;
                tooLate.cancel(false);
            }
            super.onHalfClose(); // the handler runs, outside the lock: a Run as long as its action
        }

        @Override
        public void onReady() {
            boolean closedHere;
            synchronized (this) {
                closedHere = request == Request.CLOSED_HERE;
            }
            if (!closedHere) super.onReady();
        }

        @Override
        public void onComplete() {
            stopCounting();
            try {
                super.onComplete();
            } finally {
                release.run();
            }
        }

        @Override
        public void onCancel() {
            stopCounting();
            try {
                super.onCancel();
            } finally {
                release.run();
            }
        }
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
