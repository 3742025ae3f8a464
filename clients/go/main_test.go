package bwrapd_test

// These tests drive the real helper (the checkout's ./bwrapd launcher, or $BWRAPD)
// and real bubblewrap sandboxes over a busybox root filesystem built by
// tools/make-rootfs.sh. They need no root: as an unprivileged user the helper uses
// user namespaces.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

// rootfs is a busybox root filesystem shared by the tests (they only write below
// directories of their own in it).
var rootfs string

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeHelperEnv); mode != "" {
		fakeHelper(mode) // this process is a broken helper for a test (fake_test.go)
		os.Exit(0)
	}
	dir, err := makeRootfs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot build the test root filesystem:", err)
		os.Exit(1)
	}
	rootfs = dir
	code := m.Run()
	if shared.h != nil {
		if err := shared.h.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing the shared helper:", err)
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// makeRootfs builds a root filesystem in a new directory under the temporary
// directory, readable by everyone.
func makeRootfs() (string, error) {
	script, err := filepath.Abs(filepath.Join("..", "..", "tools", "make-rootfs.sh"))
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "bwrapd-go-rootfs-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	if out, err := exec.Command("/bin/sh", script, dir).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("%s %s: %v\n%s", script, dir, err, out)
	}
	return dir, nil
}

// newRootfs is a root filesystem of the test's own, removed at its end.
func newRootfs(t *testing.T) string {
	t.Helper()
	dir, err := makeRootfs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var shared struct {
	once   sync.Once
	h      *bwrapd.Helper
	err    error
	stderr lockedBuffer
}

// helper returns the helper shared by the tests, started on first use. A helper
// that cannot be started fails the test.
func helper(t *testing.T) *bwrapd.Helper {
	t.Helper()
	shared.once.Do(func() {
		shared.h, shared.err = startHelper(bwrapd.Options{Stderr: &shared.stderr})
	})
	if shared.err != nil {
		t.Fatalf("cannot start the bwrapd helper: %v", shared.err)
	}
	if err := shared.h.Err(); err != nil {
		t.Fatalf("the shared bwrapd helper has died: %v", err)
	}
	return shared.h
}

// startHelper starts a helper of the test's own (the default one unless opts says).
func startHelper(opts bwrapd.Options) (*bwrapd.Helper, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := bwrapd.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("%w\n(the helper is $BWRAPD or the checkout's ./bwrapd launcher, "+
			"which needs the server built: ./mvnw package -DskipTests)", err)
	}
	return h, nil
}

func ownHelper(t *testing.T) (*bwrapd.Helper, *lockedBuffer) {
	t.Helper()
	var stderr lockedBuffer
	h, err := startHelper(bwrapd.Options{Stderr: &stderr})
	if err != nil {
		t.Fatalf("cannot start the bwrapd helper: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h, &stderr
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// run runs a command in the shared root filesystem and fails the test on an error.
func run(t *testing.T, req bwrapd.RunRequest) *bwrapd.Result {
	t.Helper()
	if req.Root == "" {
		req.Root = rootfs
	}
	res, err := helper(t).Run(testCtx(t), req)
	if err != nil {
		t.Fatalf("Run(%q): %v", req.Command, err)
	}
	return res
}

func wantExit(t *testing.T, res *bwrapd.Result, code int) {
	t.Helper()
	if res.Status != bwrapd.StatusExited || res.ExitCode == nil || *res.ExitCode != code {
		t.Fatalf("want status exited with code %d, got %s", code, describe(res))
	}
}

func describe(res *bwrapd.Result) string {
	if res == nil {
		return "no result"
	}
	code := "null"
	if res.ExitCode != nil {
		code = fmt.Sprint(*res.ExitCode)
	}
	return fmt.Sprintf("status=%s exitCode=%s signal=%q setupError=%q stdout=%q stderr=%q",
		res.Status, code, res.Signal, res.SetupError, res.Stdout, res.Stderr)
}

func wantCode(t *testing.T, err error, sentinel *bwrapd.RPCError) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("want error code %d (%s), got %v", sentinel.Code, sentinel.Message, err)
	}
	var rpcErr *bwrapd.RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != sentinel.Code {
		t.Fatalf("errors.As(*RPCError) on %v: got %+v", err, rpcErr)
	}
	if code, ok := bwrapd.ErrorCode(err); !ok || code != sentinel.Code {
		t.Fatalf("ErrorCode(%v) = %d, %v", err, code, ok)
	}
}

// processGone waits until no process has the given id. A zombie counts as alive
// (the server must reap its sandboxes), unless it was reparented to init, whose
// reaping is no business of the server (in a container it may never happen).
func processGone(t *testing.T, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Fatalf("no pid was announced in sandbox/started")
	}
	deadline := time.Now().Add(30 * time.Second) // a condition: a loaded machine (a helper's watchdog scanning /proc) may take seconds
	for {
		err := syscall.Kill(pid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil &&
			regexp.MustCompile(`(?m)^State:\s+Z`).Match(status) && regexp.MustCompile(`(?m)^PPid:\s+1$`).Match(status) {
			return
		}
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			t.Fatalf("process %d of the sandbox still exists 30 s after its run ended: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var sleepArgs atomic.Int32

// uniqueSleepArg is a sleep duration of about seconds that marks this test's process, to be found in /proc.
func uniqueSleepArg(seconds int) string {
	return fmt.Sprintf("%d.%d%03d", seconds, os.Getpid()%100000, sleepArgs.Add(1))
}

// running reports whether a live process has exactly argv (argv[0] compared by its base name).
func running(argv ...string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(args) == len(argv) && filepath.Base(args[0]) == argv[0] && strings.Join(args[1:], "\x00") == strings.Join(argv[1:], "\x00") {
			return true
		}
	}
	return false
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// collector gathers streamed output.
type collector struct {
	mu     sync.Mutex
	out    map[string]*bytes.Buffer
	chunks int
}

func newCollector() *collector {
	return &collector{out: map[string]*bytes.Buffer{"stdout": {}, "stderr": {}}}
}

func (c *collector) onOutput(stream string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out[stream] == nil {
		c.out[stream] = &bytes.Buffer{}
	}
	c.out[stream].Write(data)
	c.chunks++
}

func (c *collector) get(stream string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out[stream].String()
}

func (c *collector) count(stream, s string) int {
	return strings.Count(c.get(stream), s)
}
