package bwrapd_test

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

func TestInitialize(t *testing.T) {
	info := helper(t).ServerInfo()
	if info.ServerName != "bwrapd" || info.ProtocolVersion != 1 {
		t.Fatalf("initialize: got serverName %q, protocolVersion %d; raw %s",
			info.ServerName, info.ProtocolVersion, info.Raw)
	}
	if info.ServerVersion == "" || info.Bwrap.Path == "" || info.Bwrap.Version == "" {
		t.Fatalf("initialize: serverVersion, bwrap.path and bwrap.version must be set: %s", info.Raw)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(info.Raw, &raw); err != nil || raw["capabilities"] == nil {
		t.Fatalf("initialize: no capabilities in %s", info.Raw)
	}
	t.Logf("server %s %s, bwrap %s %s, capabilities %+v", info.ServerName, info.ServerVersion,
		info.Bwrap.Path, info.Bwrap.Version, info.Capabilities)
}

func TestDiscover(t *testing.T) {
	doc, err := helper(t).Discover(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct {
			Name string `json:"name"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("rpc.discover: %v in %.300s", err, doc)
	}
	names := map[string]bool{}
	for _, m := range d.Methods {
		names[m.Name] = true
	}
	if d.OpenRPC == "" || !names["sandbox/run"] {
		t.Fatalf("rpc.discover: want an OpenRPC document listing sandbox/run, got openrpc=%q methods=%v", d.OpenRPC, names)
	}
}

func TestRunExitCodes(t *testing.T) {
	for _, code := range []int{0, 1, 3, 255} {
		res := run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "exit " + itoa(code)}})
		wantExit(t, res, code)
		if res.SandboxID == "" || !strings.HasPrefix(res.SandboxID, "go-") {
			t.Errorf("want a client-assigned sandboxId go-<pid>-<n>, got %q", res.SandboxID)
		}
	}
	if res := run(t, bwrapd.RunRequest{Command: []string{"true"}}); !res.Success() {
		t.Fatalf("true: %s", describe(res))
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestCapturedOutput(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "echo out; echo err >&2; printf '\\377\\376'"}})
	wantExit(t, res, 0)
	if string(res.Stdout) != "out\n\xff\xfe" || string(res.Stderr) != "err\n" {
		t.Fatalf("captured: %s", describe(res))
	}
	if res.StdoutTruncated || res.StderrTruncated {
		t.Fatalf("nothing was truncated: %s", res.Raw)
	}
	if res.DurationMs <= 0 || !res.Cleanup.OK {
		t.Fatalf("want durationMs > 0 and cleanup.ok: %s", res.Raw)
	}
}

func TestCaptureLimit(t *testing.T) {
	res := run(t, bwrapd.RunRequest{
		Command:           []string{"echo", "0123456789abcdef"},
		CaptureLimitBytes: bwrapd.Ptr[int64](10),
	})
	wantExit(t, res, 0)
	if string(res.Stdout) != "0123456789" || !res.StdoutTruncated {
		t.Fatalf("want the first 10 bytes and truncated, got %q truncated=%v", res.Stdout, res.StdoutTruncated)
	}
}

func TestStdin(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Command: []string{"cat"}, Stdin: bwrapd.StdinText("hello\n")})
	if wantExit(t, res, 0); string(res.Stdout) != "hello\n" {
		t.Fatalf("stdin text: %s", describe(res))
	}
	bin := []byte{0, 1, 2, 0xff, 0xfe, '\n'}
	res = run(t, bwrapd.RunRequest{Command: []string{"cat"}, Stdin: bwrapd.StdinBytes(bin)})
	if wantExit(t, res, 0); !bytes.Equal(res.Stdout, bin) {
		t.Fatalf("stdin bytes: %s", describe(res))
	}
	file := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(file, []byte("from a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"cat"}, Stdin: bwrapd.StdinFile(file)})
	if wantExit(t, res, 0); string(res.Stdout) != "from a file\n" {
		t.Fatalf("stdin file: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"cat"}, Stdin: bwrapd.StdinNull()})
	if wantExit(t, res, 0); len(res.Stdout) != 0 {
		t.Fatalf("stdin null: %s", describe(res))
	}
}

func TestOutputFileDiscardMerge(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	file := filepath.Join(dir, "out.txt")
	for i := 0; i < 2; i++ {
		res := run(t, bwrapd.RunRequest{
			Command: []string{"sh", "-c", "echo line; echo e >&2"},
			Stdout:  bwrapd.ToFile(file, i > 0),
			Stderr:  bwrapd.Discard(),
		})
		wantExit(t, res, 0)
		if len(res.Stdout) != 0 || len(res.Stderr) != 0 {
			t.Fatalf("file/discard outputs are not captured: %s", describe(res))
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "line\nline\n" {
		t.Fatalf("stdout file (written, then appended): %q, %v", b, err)
	}
	res := run(t, bwrapd.RunRequest{
		Command: []string{"sh", "-c", "echo a; echo b >&2; echo c"},
		Stderr:  bwrapd.MergeStdout(),
	})
	if wantExit(t, res, 0); string(res.Stdout) != "a\nb\nc\n" || len(res.Stderr) != 0 {
		t.Fatalf("stderr merged into stdout: %s", describe(res))
	}
}

func TestStatuses(t *testing.T) {
	t.Run("signaled", func(t *testing.T) {
		res := run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "kill -KILL $$"}})
		if res.Status != bwrapd.StatusSignaled || res.Signal != "SIGKILL" {
			t.Fatalf("want signaled by SIGKILL, got %s", describe(res))
		}
	})
	t.Run("timed-out", func(t *testing.T) {
		start := time.Now()
		res := run(t, bwrapd.RunRequest{Command: []string{"sleep", "30"}, TimeoutMs: bwrapd.Millis(300 * time.Millisecond)})
		if res.Status != bwrapd.StatusTimedOut {
			t.Fatalf("want timed-out, got %s", describe(res))
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("a 300 ms timeout took %v", d)
		}
	})
	t.Run("timed-out after the kill grace", func(t *testing.T) {
		// SIGTERM is ignored (by sh and, inherited, by sleep): SIGKILL comes after killGraceMs.
		res := run(t, bwrapd.RunRequest{
			Command:     []string{"sh", "-c", "trap '' TERM; sleep 30"},
			TimeoutMs:   bwrapd.Millis(200 * time.Millisecond),
			KillGraceMs: bwrapd.Millis(400 * time.Millisecond),
		})
		if res.Status != bwrapd.StatusTimedOut {
			t.Fatalf("want timed-out, got %s", describe(res))
		}
		if res.DurationMs < 550 || res.DurationMs > 15000 { // sleep 30 would run on; slack for a loaded machine
			t.Fatalf("timeout 200 ms + grace 400 ms: want a duration near 600 ms, got %.0f ms", res.DurationMs)
		}
	})
	t.Run("setup-failed", func(t *testing.T) {
		res := run(t, bwrapd.RunRequest{
			Command: []string{"true"},
			// A mount point bwrap cannot make (below a file); a missing source is refused before bwrap runs.
			Mounts: []bwrapd.Mount{{Source: "/tmp", Target: "/etc/passwd/bwrapd-go-test", ReadOnly: true}},
		})
		if res.Status != bwrapd.StatusSetupFailed || res.SetupError == "" {
			t.Fatalf("want setup-failed with bwrap's message, got %s", describe(res))
		}
	})
}

func TestStreaming(t *testing.T) {
	c := newCollector()
	var order []string
	var mu sync.Mutex
	res := run(t, bwrapd.RunRequest{
		Command: []string{"sh", "-c", "echo one; echo two >&2; sleep 0.1; echo three; printf '\\377\\376'"},
		Stdout:  bwrapd.Stream(),
		Stderr:  bwrapd.Stream(),
		OnOutput: func(stream string, data []byte) {
			c.onOutput(stream, data)
			mu.Lock()
			order = append(order, stream)
			mu.Unlock()
		},
	})
	wantExit(t, res, 0)
	// Every chunk was delivered before Run returned.
	if got := c.get("stdout"); got != "one\nthree\n\xff\xfe" {
		t.Fatalf("streamed stdout %q", got)
	}
	if got := c.get("stderr"); got != "two\n" {
		t.Fatalf("streamed stderr %q", got)
	}
	if len(res.Stdout) != 0 || len(res.Stderr) != 0 {
		t.Fatalf("streamed outputs are not in the result: %s", describe(res))
	}
}

func TestConcurrentRuns(t *testing.T) {
	h := helper(t)
	ctx := testCtx(t)
	const n = 16
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			want := "run " + itoa(i) + "\n"
			req := bwrapd.RunRequest{
				Command: []string{"sh", "-c", "sleep 1; echo run $N; exit $N"},
				Root:    rootfs,
				Env:     map[string]string{"PATH": "/bin", "N": itoa(i)},
			}
			c := newCollector()
			if i%2 == 1 {
				req.Stdout, req.OnOutput = bwrapd.Stream(), c.onOutput
			}
			res, err := h.Run(ctx, req)
			switch {
			case err != nil:
				errs <- err.Error()
			case res.Status != bwrapd.StatusExited || res.ExitCode == nil || *res.ExitCode != i:
				errs <- "run " + itoa(i) + ": " + describe(res)
			case i%2 == 0 && string(res.Stdout) != want:
				errs <- "run " + itoa(i) + ": captured " + describe(res)
			case i%2 == 1 && c.get("stdout") != want:
				errs <- "run " + itoa(i) + ": streamed " + c.get("stdout")
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if d := time.Since(start); d > 15*time.Second { // one after another they would take 16 s and more
		t.Errorf("16 concurrent 1-second runs took %v: they did not run concurrently", d)
	}
}

func TestHostRoot(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Root: "/", Command: []string{"/bin/sh", "-c", "echo hi; touch /bwrapd-go-test-must-fail"}})
	if res.Status != bwrapd.StatusExited || string(res.Stdout) != "hi\n" || res.ExitCode == nil || *res.ExitCode == 0 {
		t.Fatalf("host root, read-only: %s", describe(res))
	}
	if _, err := os.Stat("/bwrapd-go-test-must-fail"); err == nil {
		os.Remove("/bwrapd-go-test-must-fail")
		t.Fatal("a sandbox wrote into the host root")
	}
}

func TestEnvCwdHostname(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Command: []string{"/bin/env"}, Env: map[string]string{"FOO": "bar baz"}})
	wantExit(t, res, 0)
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	sort.Strings(lines)
	if want := []string{"FOO=bar baz", "PWD=/"}; !reflect.DeepEqual(lines, want) {
		t.Fatalf("env: want exactly %q, got %q", want, lines)
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"/bin/env"}, Env: map[string]string{}})
	if wantExit(t, res, 0); strings.TrimSpace(string(res.Stdout)) != "PWD=/" {
		t.Fatalf("empty env: got %q", res.Stdout)
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"pwd"}, Cwd: "/work/go-test"})
	if wantExit(t, res, 0); string(res.Stdout) != "/work/go-test\n" {
		t.Fatalf("cwd: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"hostname"}})
	if wantExit(t, res, 0); string(res.Stdout) != "sandbox\n" {
		t.Fatalf("default hostname: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"hostname"}, Hostname: "box1"})
	if wantExit(t, res, 0); string(res.Stdout) != "box1\n" {
		t.Fatalf("hostname: %s", describe(res))
	}
}

func TestIDs(t *testing.T) {
	h := helper(t)
	if !h.ServerInfo().Capabilities.UserNamespaces {
		t.Log("the server reports no user namespaces: uid/gid are not checked")
		return
	}
	res := run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "id -u; id -g"}})
	if wantExit(t, res, 0); string(res.Stdout) != "0\n0\n" {
		t.Fatalf("default ids: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "id -u; id -g"}, UID: bwrapd.Ptr(1234), GID: bwrapd.Ptr(99)})
	if wantExit(t, res, 0); string(res.Stdout) != "1234\n99\n" {
		t.Fatalf("uid 1234 gid 99: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "id -u"}, InheritUID: true})
	if wantExit(t, res, 0); string(res.Stdout) != itoa(os.Getuid())+"\n" {
		t.Fatalf("inheritUid: want %d, got %s", os.Getuid(), describe(res))
	}
}

func TestMountsAndReadOnlyRoot(t *testing.T) {
	data := t.TempDir()
	os.Chmod(data, 0o777)
	if err := os.WriteFile(filepath.Join(data, "in"), []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := run(t, bwrapd.RunRequest{
		Command: []string{"sh", "-c", "cat /mnt/data/in; echo written > /mnt/data/out"},
		Mounts:  []bwrapd.Mount{{Source: data, Target: "/mnt/data"}},
	})
	if wantExit(t, res, 0); string(res.Stdout) != "host data\n" {
		t.Fatalf("read-write mount: %s", describe(res))
	}
	if b, err := os.ReadFile(filepath.Join(data, "out")); err != nil || string(b) != "written\n" {
		t.Fatalf("read-write mount: the host file: %q %v", b, err)
	}
	res = run(t, bwrapd.RunRequest{
		Command: []string{"sh", "-c", "cat /mnt/data/in && echo x > /mnt/data/out2"},
		Mounts:  []bwrapd.Mount{{Source: data, Target: "/mnt/data", ReadOnly: true}},
	})
	if res.Status != bwrapd.StatusExited || string(res.Stdout) != "host data\n" || *res.ExitCode == 0 {
		t.Fatalf("read-only mount must be readable, not writable: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "mkdir -p /scratch/ro-test && echo ok"}, ReadOnlyRoot: true})
	if res.Status != bwrapd.StatusExited || *res.ExitCode == 0 {
		t.Fatalf("readOnlyRoot: writing must fail: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "mkdir -p /scratch/rw-test && echo ok"}})
	if wantExit(t, res, 0); string(res.Stdout) != "ok\n" {
		t.Fatalf("writable root: %s", describe(res))
	}
}

func TestDevicesNetworkPersonality(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "echo x > /dev/null && ls /dev"}})
	wantExit(t, res, 0)
	for _, dev := range []string{"full", "null", "random", "urandom", "zero"} {
		if !regexp.MustCompile(`(?m)^` + dev + `$`).Match(res.Stdout) {
			t.Errorf("default devices: /dev/%s missing in %q", dev, res.Stdout)
		}
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "ls /dev; if test -e /dev/urandom; then echo urandom-present; fi"}, Devices: []string{"/dev/null"}})
	if wantExit(t, res, 0); !bytes.Contains(res.Stdout, []byte("null")) || bytes.Contains(res.Stdout, []byte("urandom-present")) {
		t.Errorf("devices [/dev/null]: %s", describe(res))
	}
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "test -d /dev/shm && echo shm"}, DevShm: true})
	if wantExit(t, res, 0); string(res.Stdout) != "shm\n" {
		t.Errorf("devShm: %s", describe(res))
	}

	ifaces := regexp.MustCompile(`(?m)^\d+: ([^:@]+)`)
	res = run(t, bwrapd.RunRequest{Command: []string{"ip", "-o", "link"}})
	wantExit(t, res, 0)
	if got := ifaces.FindAllSubmatch(res.Stdout, -1); len(got) != 1 || string(got[0][1]) != "lo" {
		t.Errorf("no network: want only lo, got %q", res.Stdout)
	}
	if host, err := net.Interfaces(); err == nil && len(host) > 1 {
		res = run(t, bwrapd.RunRequest{Command: []string{"ip", "-o", "link"}, Network: true})
		if wantExit(t, res, 0); len(ifaces.FindAllSubmatch(res.Stdout, -1)) != len(host) {
			t.Errorf("network: want the host's %d interfaces, got %q", len(host), res.Stdout)
		}
	}

	if runtime.GOARCH == "amd64" {
		res = run(t, bwrapd.RunRequest{Command: []string{"uname", "-m"}, Linux32: true})
		if wantExit(t, res, 0); string(res.Stdout) != "i686\n" {
			t.Errorf("linux32: %s", describe(res))
		}
	}
}

func TestUsage(t *testing.T) {
	res := run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done"}})
	wantExit(t, res, 0)
	// CPU time, not a share of the wall time, which a loaded machine stretches: the loop
	// needs some 100 ms of CPU wherever it runs, bwrap alone a few.
	cpu := res.Usage.UserCPUMs + res.Usage.SystemCPUMs
	if cpu < 50 || res.Usage.MaxRSSKiB <= 0 {
		t.Fatalf("a busy loop of %.0f ms used %.0f ms of CPU (usage %+v): usage must be the sandbox's processes",
			res.DurationMs, cpu, res.Usage)
	}
}

// Limits round-trip: asked for, enforced by the host, reported in LimitExceeded;
// where the host cannot enforce one, the refusal names it.
func TestLimits(t *testing.T) {
	enforced := helper(t).ServerInfo().Capabilities.Limits
	if enforced == nil {
		t.Fatal("the server reports no capabilities.limits")
	}
	res := run(t, bwrapd.RunRequest{Command: []string{"dd", "if=/dev/zero", "of=/tmp/big", "bs=1024", "count=64"},
		Limits: &bwrapd.ResourceLimits{FileSizeBytes: bwrapd.Ptr[int64](10000)}})
	if res.Status != bwrapd.StatusSignaled || res.Signal != "SIGXFSZ" || res.LimitExceeded != bwrapd.LimitFileSize {
		t.Errorf("a write beyond fileSizeBytes (an rlimit, enforced everywhere): limitExceeded %q, %s", res.LimitExceeded, describe(res))
	}
	if res := run(t, bwrapd.RunRequest{Command: []string{"true"}}); res.LimitExceeded != "" {
		t.Errorf("no limits, yet limitExceeded %q", res.LimitExceeded)
	}
	if _, ok := enforced["pids"]; !ok {
		_, err := helper(t).Run(testCtx(t), bwrapd.RunRequest{Command: []string{"true"}, Root: rootfs,
			Limits: &bwrapd.ResourceLimits{Pids: bwrapd.Ptr[int64](8)}})
		if wantCode(t, err, bwrapd.ErrInvalidParams); !strings.Contains(err.Error(), "limits.pids") {
			t.Errorf("the refusal names the limit: %v", err)
		}
		t.Skipf("this host cannot enforce pids for this user (capabilities.limits %v): refused by name, as it must be", enforced)
	}
	// A subshell forks sleeps until the limit refuses one (busybox's shell then gives up).
	res = run(t, bwrapd.RunRequest{Command: []string{"sh", "-c", "(i=0; while [ $i -lt 64 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; echo forked"},
		Limits: &bwrapd.ResourceLimits{Pids: bwrapd.Ptr[int64](8)}})
	if res.LimitExceeded != bwrapd.LimitPids || string(res.Stdout) != "forked\n" {
		t.Errorf("a fork loop under pids 8: limitExceeded %q, %s", res.LimitExceeded, describe(res))
	}
}

func TestCleanup(t *testing.T) {
	root := newRootfs(t)
	before := listDir(t, root)
	res := run(t, bwrapd.RunRequest{Root: root, Command: []string{"true"}, DevShm: true})
	wantExit(t, res, 0)
	if !res.Cleanup.OK || len(res.Cleanup.Failed) != 0 {
		t.Fatalf("cleanup: %s", res.Raw)
	}
	if after := listDir(t, root); !reflect.DeepEqual(before, after) {
		t.Fatalf("the root had %q before the run and %q after it (cleanup.removed %q)", before, after, res.Cleanup.Removed)
	}
}

func listDir(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
