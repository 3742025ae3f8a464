package bwrapd_test

import (
	"encoding/json"
	"reflect"
	"syscall"
	"testing"
	"time"

	bwrapd "bwrapd.dev/client"
)

// The exact wire form of sandbox/run params (docs/protocol.md).
func TestRunRequestWireForm(t *testing.T) {
	cases := []struct {
		req  bwrapd.RunRequest
		want string
	}{
		{bwrapd.RunRequest{Command: []string{"true"}}, `{"command":["true"]}`},
		{bwrapd.RunRequest{
			Command: []string{"sh", "-c", "x"}, Root: "/r", SandboxID: "id", Cwd: "/w",
			Env: map[string]string{"A": "b"}, Network: true, ReadOnlyRoot: true, Hostname: "h",
			UID: bwrapd.Ptr(0), GID: bwrapd.Ptr(5), InheritUID: true,
			Mounts:  []bwrapd.Mount{{Source: "/s", Target: "/t", ReadOnly: true}, {Source: "/s2", Target: "/t2"}},
			Devices: []string{"/dev/null"}, DevShm: true, Linux32: true,
			Stdin: bwrapd.StdinText("in"), Stdout: bwrapd.Stream(), Stderr: bwrapd.MergeStdout(),
			CaptureLimitBytes: bwrapd.Ptr[int64](0), TimeoutMs: bwrapd.Millis(1500 * time.Millisecond),
			KillGraceMs: bwrapd.Ptr[int64](0), Interactive: true, Capabilities: []string{"CAP_NET_RAW"},
			OnOutput: func(string, []byte) {},
		}, `{"command":["sh","-c","x"],"root":"/r","sandboxId":"id","cwd":"/w","env":{"A":"b"},` +
			`"network":true,"readOnlyRoot":true,"hostname":"h","uid":0,"gid":5,"inheritUid":true,` +
			`"mounts":[{"source":"/s","target":"/t","readOnly":true},{"source":"/s2","target":"/t2"}],` +
			`"devices":["/dev/null"],"devShm":true,"linux32":true,"stdin":{"text":"in"},"stdout":"stream",` +
			`"stderr":"stdout","captureLimitBytes":0,"timeoutMs":1500,"killGraceMs":0,"interactive":true,` +
			`"capabilities":["CAP_NET_RAW"]}`},
		{bwrapd.RunRequest{Command: []string{"x"}, Env: map[string]string{}, Devices: []string{},
			Stdin: bwrapd.StdinBytes([]byte{0xff, 0}), Stdout: bwrapd.ToFile("/o", true), Stderr: bwrapd.Discard()},
			`{"command":["x"],"env":{},"devices":[],"stdin":{"base64":"/wA="},"stdout":{"file":"/o","append":true},"stderr":"discard"}`},
		{bwrapd.RunRequest{Command: []string{"x"}, Stdin: bwrapd.StdinNull(), Stdout: bwrapd.Capture(), Stderr: bwrapd.ToFile("/e", false)},
			`{"command":["x"],"stdin":"null","stdout":"capture","stderr":{"file":"/e","append":false}}`},
		{bwrapd.RunRequest{Command: []string{"x"}, Stdin: bwrapd.StdinFile("/in")}, `{"command":["x"],"stdin":{"file":"/in"}}`},
		{bwrapd.RunRequest{Command: []string{"x"}, Limits: &bwrapd.ResourceLimits{MemoryBytes: bwrapd.Ptr[int64](1 << 26),
			Pids: bwrapd.Ptr[int64](32), CPUMs: bwrapd.Ptr[int64](500), CPUs: bwrapd.Ptr(1.5),
			FileSizeBytes: bwrapd.Ptr[int64](0), OpenFiles: bwrapd.Ptr[int64](64)}},
			`{"command":["x"],"limits":{"memoryBytes":67108864,"pids":32,"cpuMs":500,"cpus":1.5,"fileSizeBytes":0,"openFiles":64}}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.req)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		json.Unmarshal(got, &g)
		if err := json.Unmarshal([]byte(c.want), &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("wire form:\n got %s\nwant %s", got, c.want)
		}
	}
}

func TestResultDecoding(t *testing.T) {
	raw := `{"sandboxId":"sb-1","status":"signaled","exitCode":null,"signal":"SIGKILL","setupError":null,
	  "durationMs":12.5,"usage":{"userCpuMs":1.5,"systemCpuMs":2,"maxRssKiB":1024},
	  "stdout":{"text":"hi\n","base64":null,"truncated":true},"stderr":{"text":null,"base64":"/wA=","truncated":false,"error":"EIO"},
	  "cleanup":{"ok":false,"removed":["/dev/null"],"failed":[{"path":"/proc","error":"EBUSY"}],"deferred":true},
	  "limitExceeded":"memory"}`
	var r bwrapd.Result
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatal(err)
	}
	if r.SandboxID != "sb-1" || r.Status != bwrapd.StatusSignaled || r.ExitCode != nil || r.Signal != "SIGKILL" ||
		r.DurationMs != 12.5 || r.Usage != (bwrapd.Usage{UserCPUMs: 1.5, SystemCPUMs: 2, MaxRSSKiB: 1024}) ||
		string(r.Stdout) != "hi\n" || !r.StdoutTruncated || string(r.Stderr) != "\xff\x00" || r.StderrTruncated || r.StderrError != "EIO" || r.StdoutError != "" ||
		r.Cleanup.OK || !reflect.DeepEqual(r.Cleanup.Removed, []string{"/dev/null"}) ||
		r.Cleanup.Failed[0] != (bwrapd.CleanupFailure{Path: "/proc", Error: "EBUSY"}) || !r.Cleanup.Deferred ||
		r.LimitExceeded != bwrapd.LimitMemory || string(r.Raw) != raw || r.SignalNumber() != syscall.SIGKILL || r.Duration() != 12500*time.Microsecond {
		t.Fatalf("decoded %+v", r)
	}
	var n bwrapd.Result
	if err := json.Unmarshal([]byte(`{"status":"exited","exitCode":0,"stdout":null}`), &n); err != nil ||
		n.Stdout != nil || !n.Success() {
		t.Fatalf("null stdout: %+v %v", n, err)
	}
}

func TestSignalNumbers(t *testing.T) {
	for name, want := range map[string]syscall.Signal{"": 0, "SIGKILL": 9, "SIGSYS": 31, "SIGRTMIN+3": 37,
		"SIG33": 33, "SIGBOGUS": 0, "SIGRTMIN+x": 0} {
		r := bwrapd.Result{Signal: name}
		if got := r.SignalNumber(); got != want {
			t.Errorf("%q: got %d, want %d", name, got, want)
		}
	}
}
