package bwrapd_test

// What the client offers in the manner of os/exec: Check and *ExitError, output
// streamed to an io.Writer, a typed cancelled result, signals as syscall.Signal and
// time values as time types.

import (
	"bytes"
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

func TestCheckMakesAFailedCommandAnExitError(t *testing.T) {
	h := helper(t)
	res, err := h.Run(testCtx(t), bwrapd.RunRequest{Root: rootfs, Command: []string{"sh", "-c", "exit 3"}, Check: true})
	var exitErr *bwrapd.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 3 || exitErr.Result != res || res == nil {
		t.Fatalf("want an *ExitError with exit code 3 and the result, got %v %s", err, describe(res))
	}
	res, err = h.Run(testCtx(t), bwrapd.RunRequest{Root: rootfs, Command: []string{"sh", "-c", "kill -USR2 $$"}, Check: true})
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != -1 || res.SignalNumber() != syscall.SIGUSR2 {
		t.Fatalf("a command killed by SIGUSR2: want ExitCode -1 and SignalNumber SIGUSR2, got %v %s", err, describe(res))
	}
	if _, err := h.Run(testCtx(t), bwrapd.RunRequest{Root: rootfs, Command: []string{"true"}, Check: true}); err != nil {
		t.Fatalf("exit 0 with Check: %v", err)
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "exit 3"}})
	wantExit(t, res, 3) // without Check, an exit code is not an error
}

func TestStreamToWriters(t *testing.T) {
	var stdout, stderr bytes.Buffer
	res := run(t, bwrapd.RunRequest{
		Command: []string{"sh", "-c", "echo one; echo two >&2; sleep 0.1; echo three"},
		Stdout:  bwrapd.StreamTo(&stdout),
		Stderr:  bwrapd.StreamTo(&stderr),
	})
	wantExit(t, res, 0)
	if stdout.String() != "one\nthree\n" || stderr.String() != "two\n" || res.Stdout != nil {
		t.Fatalf("stdout %q, stderr %q, captured %q", stdout.String(), stderr.String(), res.Stdout)
	}
	var merged bytes.Buffer
	res = run(t, bwrapd.RunRequest{
		Command: []string{"sh", "-c", "echo out; echo err >&2"},
		Stdout:  bwrapd.StreamTo(&merged),
		Stderr:  bwrapd.MergeStdout(),
	})
	wantExit(t, res, 0)
	if merged.String() != "out\nerr\n" {
		t.Fatalf("merged %q", merged.String())
	}
	// A writer that fails: the run still ends, and Wait reports the write error.
	res, err := helper(t).Run(testCtx(t), bwrapd.RunRequest{Root: rootfs, Command: []string{"echo", "x"},
		Stdout: bwrapd.StreamTo(failingWriter{})})
	if !errors.Is(err, errWriteFailed) || res == nil || !res.Success() {
		t.Fatalf("want the write error with the result, got %v %s", err, describe(res))
	}
}

var errWriteFailed = errors.New("write failed")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errWriteFailed }

func TestCancelledErrorCarriesTheResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	arg := uniqueSleepArg(30)
	sb, err := helper(t).Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sh", "-c", "echo before; exec sleep " + arg}})
	if err != nil {
		t.Fatal(err)
	}
	// the echo has run once the sleep does (a fixed 500 ms could end first on a loaded machine)
	waitFor(t, 30*time.Second, "the sleep after the echo", func() bool { return running("sleep", arg) })
	cancel()
	res, err := sb.Wait()
	var cancelled *bwrapd.CancelledError
	if !errors.As(err, &cancelled) || !errors.Is(err, context.Canceled) || !errors.Is(err, bwrapd.ErrRequestCancelled) {
		t.Fatalf("want a *CancelledError, got %v", err)
	}
	r := cancelled.Result
	if r == nil || r != res || r.Status != bwrapd.StatusCancelled || r.SignalNumber() != syscall.SIGKILL ||
		string(r.Stdout) != "before\n" || !r.Cleanup.OK {
		t.Fatalf("the cancelled result: %s", describe(r))
	}
	if len(err.Error()) > 200 {
		t.Fatalf("the error message holds the whole result: %s", err)
	}
}

func TestTimesAreTimeTypes(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Command: []string{"sleep", "0.2"}})
	wantExit(t, res, 0)
	if res.Duration() < 200*time.Millisecond || res.Duration() > time.Minute {
		t.Fatalf("Duration %v for sleep 0.2 (durationMs %v)", res.Duration(), res.DurationMs)
	}
	if res.Usage.UserCPU() < 0 || res.Usage.SystemCPU() < 0 {
		t.Fatalf("usage %+v", res.Usage)
	}
}
