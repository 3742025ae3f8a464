package bwrapd

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// RunRequest holds the params of sandbox/run (PROTOCOL.md section 4). Zero values
// and nil pointers are left out, so the server applies its defaults.
type RunRequest struct {
	// Command is the argv; Command[0] without "/" is looked up in the sandbox PATH.
	Command []string `json:"command"`
	// Root is the host directory mounted at "/" (server default "/", always read-only).
	Root string `json:"root,omitempty"`
	// SandboxID names the run for signals. When empty the client assigns a unique
	// one ("go-<pid>-<n>"), so the run can be signalled while it is being waited on.
	SandboxID string `json:"sandboxId,omitempty"`
	// Cwd is an absolute path inside the sandbox (default "/").
	Cwd string `json:"cwd,omitempty"`
	// Env is the command's exact environment. nil leaves the server default
	// (PATH only); a non-nil empty map sends {} (an empty environment).
	Env map[string]string `json:"env,omitempty"`
	// Network shares the host network.
	Network bool `json:"network,omitempty"`
	// ReadOnlyRoot remounts "/" read-only after all mounts.
	ReadOnlyRoot bool `json:"readOnlyRoot,omitempty"`
	// Hostname inside the sandbox (server default "sandbox").
	Hostname string `json:"hostname,omitempty"`
	// UID and GID inside the sandbox (server default 0), when user namespaces are available.
	UID *int `json:"uid,omitempty"`
	GID *int `json:"gid,omitempty"`
	// InheritUID keeps the caller's ids.
	InheritUID bool `json:"inheritUid,omitempty"`
	// Mounts are bind mounts, applied in order.
	Mounts []Mount `json:"mounts,omitempty"`
	// Devices to dev-bind. nil leaves the server default; a non-nil empty slice sends [].
	Devices []string `json:"devices,omitempty"`
	// DevShm puts a tmpfs at /dev/shm.
	DevShm bool `json:"devShm,omitempty"`
	// Linux32 runs the command under the 32-bit personality.
	Linux32 bool `json:"linux32,omitempty"`
	// Stdin: nil is the server default ("null").
	Stdin *Stdin `json:"stdin,omitempty"`
	// Stdout and Stderr: nil is the server default (Capture()).
	Stdout *Output `json:"stdout,omitempty"`
	Stderr *Output `json:"stderr,omitempty"`
	// CaptureLimitBytes per captured stream (server default 1 MiB).
	CaptureLimitBytes *int64 `json:"captureLimitBytes,omitempty"`
	// TimeoutMs: then SIGTERM to the sandbox, SIGKILL after KillGraceMs. nil = no timeout.
	TimeoutMs *int64 `json:"timeoutMs,omitempty"`
	// KillGraceMs (server default 2000).
	KillGraceMs *int64 `json:"killGraceMs,omitempty"`
	// Interactive is reserved by the protocol for terminal sessions.
	Interactive bool `json:"interactive,omitempty"`

	// OnOutput receives the chunks of the outputs set to Stream(), in order, before
	// Run/Wait returns. It runs on a goroutine of its own per run (never concurrently
	// with itself for one run) and may call the Helper. stream is "stdout" or "stderr".
	OnOutput func(stream string, data []byte) `json:"-"`
}

// MarshalJSON writes the exact wire form: it keeps a non-nil empty Env or Devices,
// which omitempty would drop.
func (r RunRequest) MarshalJSON() ([]byte, error) {
	type plain RunRequest
	wire := struct {
		plain
		Env     *map[string]string `json:"env,omitempty"`
		Devices *[]string          `json:"devices,omitempty"`
	}{plain: plain(r)}
	if r.Env != nil {
		wire.Env = &r.Env
	}
	if r.Devices != nil {
		wire.Devices = &r.Devices
	}
	return json.Marshal(wire)
}

// Mount is a bind mount of a host path into the sandbox.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// Ptr returns a pointer to v, for the optional fields of RunRequest.
func Ptr[T any](v T) *T { return &v }

// Millis returns d in whole milliseconds, as a pointer for TimeoutMs and KillGraceMs.
func Millis(d time.Duration) *int64 { ms := d.Milliseconds(); return &ms }

// Stdin is the command's standard input. Build one with StdinNull, StdinText,
// StdinBytes or StdinFile.
type Stdin struct {
	kind int // 0 null, 1 text, 2 bytes, 3 file
	text string
	data []byte
}

// StdinNull connects stdin to /dev/null (the server default).
func StdinNull() *Stdin { return &Stdin{} }

// StdinText feeds s to the command.
func StdinText(s string) *Stdin { return &Stdin{kind: 1, text: s} }

// StdinBytes feeds b to the command (sent base64-encoded).
func StdinBytes(b []byte) *Stdin { return &Stdin{kind: 2, data: b} }

// StdinFile feeds the host file at path to the command.
func StdinFile(path string) *Stdin { return &Stdin{kind: 3, text: path} }

func (s Stdin) MarshalJSON() ([]byte, error) {
	switch s.kind {
	case 1:
		return json.Marshal(map[string]string{"text": s.text})
	case 2:
		return json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(s.data)})
	case 3:
		return json.Marshal(map[string]string{"file": s.text})
	default:
		return []byte(`"null"`), nil
	}
}

// Output says where stdout or stderr goes. Build one with Capture, Discard, Stream,
// ToFile or MergeStdout.
type Output struct {
	mode   string // "capture", "discard", "stream", "stdout", or "" for a file
	path   string
	append bool
}

// Capture returns the output in the Result (the server default), up to CaptureLimitBytes.
func Capture() *Output { return &Output{mode: "capture"} }

// Discard throws the output away.
func Discard() *Output { return &Output{mode: "discard"} }

// Stream sends the output as sandbox/output notifications, delivered to RunRequest.OnOutput.
func Stream() *Output { return &Output{mode: "stream"} }

// ToFile makes the command write straight to the host file at path.
func ToFile(path string, append bool) *Output { return &Output{path: path, append: append} }

// MergeStdout, for Stderr only, merges stderr into stdout.
func MergeStdout() *Output { return &Output{mode: "stdout"} }

func (o Output) MarshalJSON() ([]byte, error) {
	if o.mode == "" {
		return json.Marshal(struct {
			File   string `json:"file"`
			Append bool   `json:"append"`
		}{o.path, o.append})
	}
	return json.Marshal(o.mode)
}

// Status is how a run ended.
type Status string

const (
	StatusExited      Status = "exited"
	StatusSignaled    Status = "signaled"
	StatusTimedOut    Status = "timed-out"
	StatusCancelled   Status = "cancelled"
	StatusSetupFailed Status = "setup-failed"
)

// Usage is the resource usage of the sandboxed command's processes.
type Usage struct {
	UserCPUMs   float64 `json:"userCpuMs"`
	SystemCPUMs float64 `json:"systemCpuMs"`
	MaxRSSKiB   int64   `json:"maxRssKiB"`
}

// Cleanup lists what the server removed from the root after the run.
type Cleanup struct {
	OK      bool             `json:"ok"`
	Removed []string         `json:"removed"`
	Failed  []CleanupFailure `json:"failed"`
}

// CleanupFailure is a path the server could not remove.
type CleanupFailure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Result is the answer to a sandbox/run.
type Result struct {
	SandboxID  string  `json:"sandboxId"`
	Status     Status  `json:"status"`
	ExitCode   *int    `json:"exitCode"`
	Signal     string  `json:"signal"`     // e.g. "SIGKILL" when the command died of a signal
	SetupError string  `json:"setupError"` // bwrap's message when the sandbox could not be set up
	DurationMs float64 `json:"durationMs"`
	Usage      Usage   `json:"usage"`
	// Stdout and Stderr are the captured outputs, decoded from text or base64;
	// nil when the output was not captured.
	Stdout          []byte  `json:"-"`
	Stderr          []byte  `json:"-"`
	StdoutTruncated bool    `json:"-"`
	StderrTruncated bool    `json:"-"`
	Cleanup         Cleanup `json:"cleanup"`
	// Raw is the result exactly as the server sent it (for extensions).
	Raw json.RawMessage `json:"-"`
}

// Success reports whether the command exited with code 0.
func (r *Result) Success() bool {
	return r.Status == StatusExited && r.ExitCode != nil && *r.ExitCode == 0
}

type wireData struct {
	Text      *string `json:"text"`
	Base64    *string `json:"base64"`
	Truncated bool    `json:"truncated"`
}

func (d *wireData) decode() ([]byte, error) {
	switch {
	case d.Text != nil:
		return []byte(*d.Text), nil
	case d.Base64 != nil:
		return base64.StdEncoding.DecodeString(*d.Base64)
	default:
		return []byte{}, nil
	}
}

func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	var wire struct {
		*plain
		Stdout *wireData `json:"stdout"`
		Stderr *wireData `json:"stderr"`
	}
	wire.plain = (*plain)(r)
	if err := json.Unmarshal(b, &wire); err != nil {
		return err
	}
	var err error
	if wire.Stdout != nil {
		if r.Stdout, err = wire.Stdout.decode(); err != nil {
			return fmt.Errorf("bwrapd: result stdout: %w", err)
		}
		r.StdoutTruncated = wire.Stdout.Truncated
	}
	if wire.Stderr != nil {
		if r.Stderr, err = wire.Stderr.decode(); err != nil {
			return fmt.Errorf("bwrapd: result stderr: %w", err)
		}
		r.StderrTruncated = wire.Stderr.Truncated
	}
	r.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// ServerInfo is the result of initialize.
type ServerInfo struct {
	ServerName      string `json:"serverName"`
	ServerVersion   string `json:"serverVersion"`
	ProtocolVersion int    `json:"protocolVersion"`
	Bwrap           struct {
		Path    string `json:"path"`
		Version string `json:"version"`
	} `json:"bwrap"`
	Capabilities Capabilities `json:"capabilities"`
	// Raw is the result exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// Capabilities is what the host really supports. Other capabilities the server
// announces are in ServerInfo.Raw.
type Capabilities struct {
	UserNamespaces bool `json:"userNamespaces"`
	DieWithParent  bool `json:"dieWithParent"`
	JSONStatusFd   bool `json:"jsonStatusFd"`
}

// SandboxInfo is one entry of sandbox/list.
type SandboxInfo struct {
	SandboxID string   `json:"sandboxId"`
	PID       int      `json:"pid"`
	State     string   `json:"state"` // "starting", "running" or "suspended"
	Command   []string `json:"command"`
	// StartedAt as the server sent it: the protocol does not fix its type
	// (an ISO-8601 string or a number); see StartTime.
	StartedAt json.RawMessage `json:"startedAt"`
}

// StartTime interprets StartedAt: an RFC 3339 string, or a number of milliseconds
// since the epoch.
func (s SandboxInfo) StartTime() (time.Time, bool) {
	var str string
	if json.Unmarshal(s.StartedAt, &str) == nil {
		if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
			return t, true
		}
		if ms, err := strconv.ParseFloat(str, 64); err == nil {
			return time.UnixMilli(int64(ms)), true
		}
		return time.Time{}, false
	}
	var ms float64
	if json.Unmarshal(s.StartedAt, &ms) == nil {
		return time.UnixMilli(int64(ms)), true
	}
	return time.Time{}, false
}
