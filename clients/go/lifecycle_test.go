package bwrapd_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

func TestHelperDeathFailsPendingCalls(t *testing.T) {
	h, _ := ownHelper(t)
	ctx := testCtx(t)
	// A root of its own: a killed helper cleans nothing up.
	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: newRootfs(t), Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Kill(h.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Wait()
	if !errors.Is(err, bwrapd.ErrHelperExited) {
		t.Fatalf("want ErrHelperExited, got %v %s", err, describe(res))
	}
	var exited *bwrapd.HelperExitedError
	if !errors.As(err, &exited) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("want a *HelperExitedError naming the signal, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the pending run failed only after %v", d)
	}
	if _, err := h.List(ctx); !errors.Is(err, bwrapd.ErrHelperExited) {
		t.Fatalf("a call after the helper died: want ErrHelperExited, got %v", err)
	}
	// The sandbox dies with the helper.
	processGone(t, sb.PID())
}

func TestHelperStderrInErrors(t *testing.T) {
	// Not a helper at all: a program that fails the way a broken server would.
	_, err := bwrapd.Start(testCtx(t), bwrapd.Options{
		Path: "/bin/sh",
		Args: []string{"-c", "echo 'bwrapd-go-test: something is wrong' >&2; exit 3"},
	})
	if !errors.Is(err, bwrapd.ErrHelperExited) || !strings.Contains(err.Error(), "bwrapd-go-test: something is wrong") ||
		!strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("want ErrHelperExited with the exit status and the stderr lines, got %v", err)
	}
	_, err = bwrapd.Start(testCtx(t), bwrapd.Options{Path: "/nonexistent/bwrapd"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/bwrapd") {
		t.Fatalf("want an error naming the missing helper, got %v", err)
	}
}

func TestClose(t *testing.T) {
	h, _ := ownHelper(t)
	ctx := testCtx(t)
	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("Close took %v", d)
	}
	// shutdown terminated the run, which was answered before the helper exited.
	res, err := sb.Wait()
	if err != nil || res.Status != bwrapd.StatusSignaled {
		t.Fatalf("a run pending at shutdown: want signaled, got %v %s", err, describe(res))
	}
	processGone(t, sb.PID())
	if _, err := h.List(ctx); !errors.Is(err, bwrapd.ErrClosed) {
		t.Fatalf("a call after Close: want ErrClosed, got %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
}

func TestShutdownRefusesNewSandboxes(t *testing.T) {
	h, _ := ownHelper(t)
	ctx := testCtx(t)
	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := h.Shutdown(ctx)
	if err != nil || n != 1 {
		t.Fatalf("shutdown: want 1 terminated, got %d, %v", n, err)
	}
	if res, err := sb.Wait(); err != nil || res.Status != bwrapd.StatusSignaled {
		t.Fatalf("a run pending at shutdown: want signaled, got %v %s", err, describe(res))
	}
	_, err = h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"true"}})
	wantCode(t, err, bwrapd.ErrShuttingDown)
	if err := h.Close(); err != nil {
		t.Fatalf("Close after shutdown: %v", err)
	}
}

func TestCancelledStartContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bwrapd.Start(ctx, bwrapd.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
