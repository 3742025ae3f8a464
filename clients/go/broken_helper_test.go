package bwrapd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

// A helper that stops reading its input, with a write stuck in the pipe (a run with
// 4 MiB of stdin): Close keeps to CloseTimeout all the same, killing the helper.
func TestCloseKeepsToItsTimeoutWithAWriteStuck(t *testing.T) {
	h := startFake(t, "noread", bwrapd.Options{CloseTimeout: 2 * time.Second})
	runErr := make(chan error, 1)
	go func() {
		_, err := h.Start(context.Background(), bwrapd.RunRequest{Command: []string{"cat"},
			Stdin: bwrapd.StdinBytes(bytes.Repeat([]byte("a"), 4<<20))})
		runErr <- err
	}()
	closed := make(chan error, 1)
	start := time.Now()
	go func() { closed <- h.Close() }()
	select {
	case err := <-closed:
		if err == nil {
			t.Errorf("Close of a helper that had to be killed returned no error")
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("Close took %v with CloseTimeout 2s", d)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Close (CloseTimeout 2s) still blocked after 60s")
	}
	select {
	case err := <-runErr:
		if err == nil {
			t.Errorf("the stuck run did not fail")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run whose write was stuck still blocked after the helper was killed")
	}
}

// An answer the client cannot decode as a whole still answers its call: a malformed
// error becomes an *RPCError with CodeInternalError, and an id written 2.0 is id 2.
func TestMalformedAnswersEndTheirCalls(t *testing.T) {
	for _, mode := range []string{"baderror", "baderror2"} {
		t.Run(mode, func(t *testing.T) {
			h := startFake(t, mode, bwrapd.Options{})
			defer h.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			_, err := h.Run(ctx, bwrapd.RunRequest{Command: []string{"x"}})
			if code, ok := bwrapd.ErrorCode(err); !ok || code != bwrapd.CodeInternalError {
				t.Errorf("Run: want an *RPCError with CodeInternalError, got %v", err)
			}
			_, err = h.List(ctx)
			if code, ok := bwrapd.ErrorCode(err); !ok || code != bwrapd.CodeInternalError {
				t.Errorf("List: want an *RPCError with CodeInternalError, got %v", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the call waited for its context: %v", err)
			}
		})
	}
	t.Run("floatid", func(t *testing.T) {
		h := startFake(t, "floatid", bwrapd.Options{})
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		res, err := h.Run(ctx, bwrapd.RunRequest{Command: []string{"x"}})
		if err != nil || string(res.Stdout) != "ok\n" {
			t.Errorf("Run with the id answered as 2.0: %v %v", err, res)
		}
		if _, err := h.List(ctx); err != nil {
			t.Errorf("List with the id answered as 2.0: %v", err)
		}
	})
}

// A grace under 1 ms is sent as 1 ms, not as 0 (which is SIGKILL at once).
func TestTerminateRoundsAGraceUpToAMillisecond(t *testing.T) {
	h := startFake(t, "plain", bwrapd.Options{})
	defer h.Close()
	for grace, want := range map[time.Duration]string{900 * time.Microsecond: `"graceMs":1`,
		1500 * time.Microsecond: `"graceMs":2`, 2 * time.Second: `"graceMs":2000`} {
		_, err := h.Terminate(testCtx(t), "sb", grace)
		var rpcErr *bwrapd.RPCError
		if !errors.As(err, &rpcErr) || !strings.Contains(string(rpcErr.Data), want) {
			t.Errorf("Terminate(%v) sent %v, want %s", grace, err, want)
		}
	}
}

// OnOutput without an output that is Stream() would never be called: refused.
func TestOnOutputWithoutAStreamIsRefused(t *testing.T) {
	h := startFake(t, "plain", bwrapd.Options{})
	defer h.Close()
	onOutput := func(string, []byte) {}
	for _, req := range []bwrapd.RunRequest{
		{Command: []string{"x"}, OnOutput: onOutput},
		{Command: []string{"x"}, OnOutput: onOutput, Stdout: bwrapd.Capture(), Stderr: bwrapd.Discard()},
		{Command: []string{"x"}, OnOutput: onOutput, Stdout: bwrapd.StreamTo(io.Discard)},
	} {
		if _, err := h.Start(testCtx(t), req); err == nil || !strings.Contains(err.Error(), "OnOutput") {
			t.Errorf("Start with OnOutput and no Stream(): %v", err)
		}
	}
}

// A helper that closes its stdout but stays: the error says so, not "exited".
func TestHelperClosingItsStdoutIsNotReportedAsExited(t *testing.T) {
	h := startFake(t, "closeout", bwrapd.Options{CloseTimeout: 2 * time.Second})
	defer h.Close()
	select {
	case <-h.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("Done not closed 60s after the helper closed its stdout")
	}
	err := h.Err()
	if !errors.Is(err, bwrapd.ErrHelperExited) || !strings.Contains(err.Error(), "closed its stdout") ||
		strings.Contains(err.Error(), "exited") {
		t.Errorf("the helper closed its stdout and stays, but: %v", err)
	}
	if _, err := h.List(testCtx(t)); err == nil || !strings.Contains(err.Error(), "closed its stdout") {
		t.Errorf("List after that: %v", err)
	}
}

// A helper that writes one line without an end: the client stops at a bound (from
// maxMessageBytes, here 1 MiB, and the runs' CaptureLimitBytes), fails the pending
// call with a *HelperExitedError that says so, and kills the helper. An answer as
// large as a run's captures may make is still read.
func TestEndlessLineFailsTheCallsAndKillsTheHelper(t *testing.T) {
	h := startFake(t, "endless", bwrapd.Options{CloseTimeout: 2 * time.Second})
	defer h.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := h.Run(ctx, bwrapd.RunRequest{Command: []string{"x"}, CaptureLimitBytes: bwrapd.Ptr[int64](1024)})
	runtime.ReadMemStats(&after)
	var exited *bwrapd.HelperExitedError
	if !errors.As(err, &exited) || !strings.Contains(err.Error(), "line of more than") {
		t.Fatalf("Run with a helper writing an endless line: want a *HelperExitedError about the line, got %v", err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 48<<20 {
		t.Errorf("the client allocated %d MiB reading an endless line", grown>>20)
	}
	select {
	case <-h.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("Done not closed")
	}
	if _, err := h.List(testCtx(t)); !errors.Is(err, bwrapd.ErrHelperExited) {
		t.Errorf("List after that: %v", err)
	}

	// 8 MiB of stdout is 11 MiB of base64: over four times maxMessageBytes, within the captures' room.
	big := startFake(t, "bigresult", bwrapd.Options{})
	defer big.Close()
	res, err := big.Run(testCtx(t), bwrapd.RunRequest{Command: []string{"x"}, CaptureLimitBytes: bwrapd.Ptr[int64](8 << 20)})
	if err != nil || len(res.Stdout) != 8<<20 {
		t.Errorf("a run answering 8 MiB of captured stdout: %v", err)
	}
}

// A helper that stops reading its input, with a write stuck in the pipe (a run with
// 4 MiB of stdin): other calls still keep to their own contexts, whether they wait
// for the pipe (List, Signal, Start) or their context has already ended.
func TestCallsKeepToTheirContextsWithAWriteStuck(t *testing.T) {
	h := startFake(t, "noread", bwrapd.Options{CloseTimeout: 2 * time.Second})
	defer h.Close()
	go func() {
		_, _ = h.Start(context.Background(), bwrapd.RunRequest{Command: []string{"cat"},
			Stdin: bwrapd.StdinBytes(bytes.Repeat([]byte("a"), 4<<20))})
	}()
	time.Sleep(500 * time.Millisecond) // the big write fills the pipe
	calls := map[string]func(ctx context.Context) error{
		"List": func(ctx context.Context) error { _, err := h.List(ctx); return err },
		"Signal": func(ctx context.Context) error {
			_, err := h.Signal(ctx, "sb", syscall.SIGTERM)
			return err
		},
		"Start": func(ctx context.Context) error {
			_, err := h.Start(ctx, bwrapd.RunRequest{Command: []string{"x"}})
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- call(ctx) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s with its write stuck behind another: want context.DeadlineExceeded, got %v", name, err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("%s took %v with a 1s context", name, d)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s (context of 1s) still blocked after 20s by another call's stuck write", name)
		}
		cancel()
	}
}
