package bwrapd_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

func TestContextTimeoutCancelsRun(t *testing.T) {
	h := helper(t)
	// Long enough for the sandbox to start on a loaded machine (with 1 s it could be cancelled before
	// sandbox/started, and no pid for processGone); far before sleep 30 ends.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := sb.Wait()
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("a cancelled run must fail, got %s", describe(res))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want an error wrapping context.DeadlineExceeded, got %v", err)
	}
	wantCode(t, err, bwrapd.ErrRequestCancelled)
	if elapsed > 20*time.Second {
		t.Fatalf("cancelling took %v", elapsed)
	}
	t.Logf("cancelled after %v", elapsed)
	processGone(t, sb.PID())
	t.Logf("process gone after %v", time.Since(start))
	list, err := h.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.SandboxID == sb.ID() {
			t.Fatalf("the cancelled sandbox is still listed: %+v", s)
		}
	}
	_, err = h.Signal(testCtx(t), sb.ID(), syscall.SIGTERM)
	wantCode(t, err, bwrapd.ErrNoSuchSandbox)
}

func TestRunContextCancel(t *testing.T) {
	h := helper(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	start := time.Now()
	res, err := h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sleep", "30"}})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, bwrapd.ErrRequestCancelled) {
		t.Fatalf("want context.Canceled and -32800, got %v (%s)", err, describe(res))
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("cancelling took %v", d)
	}
	// A context that has already ended sends nothing.
	if _, err := h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"true"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

func TestSuspendResume(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	c := newCollector()
	sb, err := h.Start(ctx, bwrapd.RunRequest{
		Root:     rootfs,
		Command:  []string{"sh", "-c", "while :; do echo tick; sleep 0.05; done"},
		Stdout:   bwrapd.Stream(),
		OnOutput: c.onOutput,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Terminate(context.Background(), 0)
	select {
	case <-sb.Started():
	default:
		t.Fatal("Start returned before sandbox/started")
	}
	if sb.PID() <= 0 {
		t.Fatalf("pid %d", sb.PID())
	}
	waitFor(t, 10*time.Second, "3 ticks", func() bool { return c.count("stdout", "tick") >= 3 })

	if delivered, err := sb.Suspend(ctx); err != nil || !delivered {
		t.Fatalf("suspend: delivered=%v err=%v", delivered, err)
	}
	wantState(t, h, sb.ID(), "suspended")
	// The suspend lands a moment after its answer, and ticks already written are still being
	// delivered (longer on a loaded machine): the ticks (one per 50 ms while it runs) must stand
	// still for 700 ms on end, within 30 s.
	n, since := c.count("stdout", "tick"), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Since(since) < 700*time.Millisecond; time.Sleep(20 * time.Millisecond) {
		if m := c.count("stdout", "tick"); m != n {
			n, since = m, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("suspended, yet the ticks went on (%d by now)", n)
		}
	}

	if delivered, err := sb.Resume(ctx); err != nil || !delivered {
		t.Fatalf("resume: delivered=%v err=%v", delivered, err)
	}
	wantState(t, h, sb.ID(), "running")
	waitFor(t, 10*time.Second, "ticks after resume", func() bool { return c.count("stdout", "tick") > n+2 })

	if _, err := sb.Terminate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Wait()
	if err != nil || res.Status != bwrapd.StatusSignaled {
		t.Fatalf("terminated: want signaled, got %v %s", err, describe(res))
	}
}

func wantState(t *testing.T, h *bwrapd.Helper, id string, state bwrapd.SandboxState) {
	t.Helper()
	list, err := h.List(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.SandboxID == id {
			if s.State != state {
				t.Fatalf("sandbox %s: want state %q, got %+v", id, state, s)
			}
			return
		}
	}
	t.Fatalf("sandbox %s is not in sandbox/list: %+v", id, list)
}

func TestTerminate(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	for _, grace := range []time.Duration{0, 60 * time.Second} {
		sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sh", "-c", "sleep 30 & sleep 30"}})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := sb.Terminate(ctx, grace); err != nil {
			t.Fatalf("terminate (grace %v): %v", grace, err)
		}
		res, err := sb.Wait()
		if err != nil || res.Status != bwrapd.StatusSignaled {
			t.Fatalf("terminate (grace %v): want signaled, got %v %s", grace, err, describe(res))
		}
		// well before sleep 30 ends, and the grace (once 3 s, bounded by 2.5 s: a wall-clock race under load)
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("terminate (grace %v) took %v, but sleep dies at once of SIGTERM or SIGKILL", grace, d)
		}
		if grace == 0 && res.Signal != "SIGKILL" {
			t.Errorf("terminate without grace: want SIGKILL, got %s", describe(res))
		}
		processGone(t, sb.PID())
	}
}

func TestSignal(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	c := newCollector()
	sb, err := h.Start(ctx, bwrapd.RunRequest{
		Root:     rootfs,
		Command:  []string{"sh", "-c", "trap 'echo got-usr1; exit 5' USR1; echo ready; while :; do sleep 0.05; done"},
		Stdout:   bwrapd.Stream(),
		OnOutput: c.onOutput,
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "ready", func() bool { return c.count("stdout", "ready") == 1 })
	delivered, err := sb.Signal(ctx, syscall.SIGUSR1)
	if err != nil || !delivered {
		t.Fatalf("signal: delivered=%v err=%v", delivered, err)
	}
	res, err := sb.Wait()
	if err != nil {
		t.Fatal(err)
	}
	wantExit(t, res, 5)
	if c.get("stdout") != "ready\ngot-usr1\n" {
		t.Fatalf("stdout %q", c.get("stdout"))
	}
}

func TestList(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	id := "go-list-test"
	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, SandboxID: id, Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Terminate(context.Background(), 0)
	if sb.ID() != id {
		t.Fatalf("ID() = %q", sb.ID())
	}
	list, err := h.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *bwrapd.SandboxInfo
	for i := range list {
		if list[i].SandboxID == id {
			found = &list[i]
		}
	}
	if found == nil || found.State != "running" || found.PID <= 0 || !reflect.DeepEqual(found.Command, []string{"sleep", "30"}) {
		t.Fatalf("sandbox/list: want %s running sleep 30, got %+v", id, list)
	}
	if age := time.Since(found.StartedAt); age < 0 || age > time.Minute {
		t.Errorf("startedAt %v is not a moment ago", found.StartedAt)
	}
	if _, err := sb.Terminate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)

	_, err := h.Signal(ctx, "go-no-such-sandbox", syscall.SIGTERM)
	wantCode(t, err, bwrapd.ErrNoSuchSandbox)
	_, err = h.Suspend(ctx, "go-no-such-sandbox")
	wantCode(t, err, bwrapd.ErrNoSuchSandbox)
	_, err = h.Resume(ctx, "go-no-such-sandbox")
	wantCode(t, err, bwrapd.ErrNoSuchSandbox)
	_, err = h.Terminate(ctx, "go-no-such-sandbox", 0)
	wantCode(t, err, bwrapd.ErrNoSuchSandbox)
	if _, err := h.Signal(ctx, "go-no-such-sandbox", syscall.SIGSEGV); err == nil || !strings.Contains(err.Error(), "cannot be sent") {
		t.Errorf("a signal the protocol does not accept must fail before it is sent, got %v", err)
	}

	_, err = h.Run(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"go-test-no-such-command"}})
	wantCode(t, err, bwrapd.ErrCommandNotFound)
	_, err = h.Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"/bin/go-test-no-such-command"}})
	wantCode(t, err, bwrapd.ErrCommandNotFound)

	_, err = h.Run(ctx, bwrapd.RunRequest{Root: rootfs})
	wantCode(t, err, bwrapd.ErrInvalidParams)
	err = h.Call(ctx, "sandbox/run", map[string]any{"command": []string{"true"}, "root": rootfs, "noSuchField": 1}, nil)
	wantCode(t, err, bwrapd.ErrInvalidParams)
	if e := err.(*bwrapd.RPCError); !strings.Contains(e.Message, "noSuchField") {
		t.Errorf("-32602 must name the offending field: %q", e.Message)
	}

	_, err = h.Run(ctx, bwrapd.RunRequest{Root: "relative/root", Command: []string{"true"}})
	wantCode(t, err, bwrapd.ErrPathNotAllowed)

	err = h.Call(ctx, "go-test/no-such-method", nil, nil)
	wantCode(t, err, bwrapd.ErrMethodNotFound)

	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, SandboxID: "go-dup", Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Run(ctx, bwrapd.RunRequest{Root: rootfs, SandboxID: "go-dup", Command: []string{"true"}})
	wantCode(t, err, bwrapd.ErrSandboxIDInUse)
	if _, err := sb.Terminate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if res, err := sb.Wait(); err != nil || res.Status != bwrapd.StatusSignaled {
		t.Fatalf("the first go-dup: %v %s", err, describe(res))
	}
	// Once ended, its id can be used again.
	res := run(t, bwrapd.RunRequest{SandboxID: "go-dup", Command: []string{"true"}})
	wantExit(t, res, 0)
}
