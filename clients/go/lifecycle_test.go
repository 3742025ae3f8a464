package bwrapd_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
	if d := time.Since(start); d > 10*time.Second { // sleep 30 would still run; slack for a loaded machine
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
	if d := time.Since(start); d > 20*time.Second { // sleep 30 would still run; slack for a loaded machine
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

// writeScript writes an executable shell script named name into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// The helper is Options.Path, else $BWRAPD, else bwrapd in an absolute PATH directory:
// never a file named bwrapd that the user did not choose, such as one in the
// working directory (a repository can ship one).
func TestHelperDiscoveryRunsOnlyWhatTheUserChose(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	writeScript(t, dir, "bwrapd", "touch '"+marker+"'; echo 'bwrapd-go-test: found on PATH' >&2; exit 3\n")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(sub); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	t.Setenv("BWRAPD", "")

	for _, path := range []string{"/usr/bin:/bin", ".:..:/usr/bin", ""} {
		t.Setenv("PATH", path)
		_, err := bwrapd.Start(testCtx(t), bwrapd.Options{})
		var notFound *bwrapd.HelperNotFoundError
		if !errors.As(err, &notFound) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "BWRAPD") {
			t.Fatalf("PATH=%q: want a HelperNotFoundError saying how to name the helper, got %v", path, err)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("PATH=%q: the bwrapd in the working directory's parent was run", path)
		}
	}

	t.Setenv("PATH", dir+":/usr/bin:/bin")
	_, err = bwrapd.Start(testCtx(t), bwrapd.Options{})
	if !errors.Is(err, bwrapd.ErrHelperExited) || !strings.Contains(err.Error(), "found on PATH") {
		t.Fatalf("bwrapd in an absolute PATH directory: want it started, got %v", err)
	}
	os.Remove(marker)
	t.Setenv("BWRAPD", "/bin/false")
	_, err = bwrapd.Start(testCtx(t), bwrapd.Options{})
	if !errors.Is(err, bwrapd.ErrHelperExited) || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("BWRAPD comes before PATH: want /bin/false started, got %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("BWRAPD was set, yet the bwrapd on PATH was run")
	}
}

// A bwrap without --json-status-fd: the server never sends sandbox/started, so Start
// must not wait for it, and the sandbox can be terminated while it runs.
func TestStartWithoutJSONStatusFd(t *testing.T) {
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Fatal(err)
	}
	old := writeScript(t, t.TempDir(), "bwrap-without-json-status-fd", `for a; do
  if [ "$a" = --json-status-fd ]; then echo "bwrap: Unknown option --json-status-fd" >&2; exit 1; fi
done
exec `+bwrap+` "$@"
`)
	h, err := startHelper(bwrapd.Options{Args: []string{"--bwrap", old}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.ServerInfo().Capabilities.JSONStatusFd {
		t.Fatalf("the server did not notice the missing --json-status-fd: %s", h.ServerInfo().Raw)
	}
	ctx := testCtx(t)
	start := time.Now()
	sb, err := h.Start(ctx, bwrapd.RunRequest{Root: rootfs, Command: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start waited %v for a sandbox/started that never comes", d)
	}
	time.Sleep(300 * time.Millisecond) // let the sandbox start
	if delivered, err := sb.Terminate(ctx, 0); err != nil || !delivered {
		t.Fatalf("terminate while running: delivered=%v err=%v", delivered, err)
	}
	res, err := sb.Wait()
	if err != nil || res.Status != bwrapd.StatusSignaled || time.Since(start) > 20*time.Second {
		t.Fatalf("want signaled well before sleep 30 ends, got %v %s after %v", err, describe(res), time.Since(start))
	}
}
