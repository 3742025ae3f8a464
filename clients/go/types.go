package bwrapd

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"syscall"
	"time"
)

// RunRequest holds the params of sandbox/run (docs/protocol.md). Zero values
// and nil pointers are left out, so the server applies its defaults.
//
// Every string in it (Command, Env keys and values, Root, Cwd, mount and device
// paths, file paths, StdinText, SandboxID...) must be valid UTF-8: the protocol is
// UTF-8 text, and a request with another string fails with ErrInvalidUTF8, naming
// the field, before anything is sent (encoding/json would otherwise replace the bad
// bytes with U+FFFD, and another path or argument would be used). Give binary
// input with StdinBytes. The whole request must fit the helper's
// ServerInfo().Limits.MaxMessageBytes (ErrMessageTooLarge otherwise).
type RunRequest struct {
	// Command is the argv; Command[0] without "/" is looked up in the sandbox PATH.
	Command []string `json:"command"`
	// Root is the host directory mounted at "/" (server default "/"). The host's own
	// "/" is mounted read-only; any other root is read-write unless ReadOnlyRoot.
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
	// Interactive gives the sandbox a complete /dev (a terminal is asked for with Terminal).
	Interactive bool `json:"interactive,omitempty"`
	// Capabilities are Linux capabilities ("CAP_NET_RAW", ...) the sandbox gets beyond
	// the server's default; nil sends nothing. Needs a server that has the parameter.
	Capabilities []string `json:"capabilities,omitempty"`
	// Seccomp is the system-call filter: SeccompDefault(), SeccompNone() or SeccompDeny(...);
	// nil leaves the server's default. Needs Capabilities.Seccomp.
	Seccomp *Seccomp `json:"seccomp,omitempty"`
	// Terminal runs the command on a new pseudo-terminal (Stdin, Stdout and Stderr must be
	// nil); what it prints arrives on the "terminal" stream. Helper.OpenTerminal sets it and
	// returns a TerminalSession to type into and read from.
	Terminal *Terminal `json:"terminal,omitempty"`
	// Limits are resource limits of the whole sandbox; nil sets none. A limit missing
	// from Capabilities.Limits is refused (an *RPCError, InvalidParams, naming it).
	Limits *ResourceLimits `json:"limits,omitempty"`

	// Check makes a command that did not exit with code 0 an error: Run and Wait then
	// return an *ExitError (with the Result), as exec.Cmd.Run does.
	Check bool `json:"-"`

	// OnOutput receives the chunks of the outputs set to Stream(), in order, before
	// Run/Wait returns. It runs on a goroutine of its own per run (never concurrently
	// with itself for one run) and may call the Helper. stream is "stdout" or "stderr".
	// Chunks it has not taken yet are queued in memory without bound (see StreamTo).
	// Set with no output Stream() (nor a Terminal), Start refuses it.
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

// ResourceLimits are the limits of a whole sandbox, each enforced by the mechanism
// Capabilities.Limits names; nil fields are not limited. Set them with Ptr:
// &ResourceLimits{Pids: Ptr[int64](32)}.
type ResourceLimits struct {
	MemoryBytes   *int64   `json:"memoryBytes,omitempty"`   // memory of all its processes together
	Pids          *int64   `json:"pids,omitempty"`          // processes and threads at once
	CPUMs         *int64   `json:"cpuMs,omitempty"`         // CPU time (the whole sandbox's, or per process: see the mechanism)
	CPUs          *float64 `json:"cpus,omitempty"`          // CPU bandwidth (1.5 = one and a half CPUs)
	FileSizeBytes *int64   `json:"fileSizeBytes,omitempty"` // largest file written
	OpenFiles     *int64   `json:"openFiles,omitempty"`     // open descriptors per process
}

// The limits a Result's LimitExceeded names.
const (
	LimitMemory    = "memory"
	LimitPids      = "pids"
	LimitCPU       = "cpu"
	LimitFileSize  = "fileSize"
	LimitOpenFiles = "openFiles"
)

// Ptr returns a pointer to v, for the optional fields of RunRequest.
func Ptr[T any](v T) *T { return &v }

// Millis returns d in whole milliseconds, as a pointer for TimeoutMs and KillGraceMs.
func Millis(d time.Duration) *int64 { ms := d.Milliseconds(); return &ms }

// Stdin is the command's standard input. Build one with StdinNull, StdinText,
// StdinBytes, StdinFile or StdinStream.
type Stdin struct {
	kind stdinKind
	text string // the text, or the file's path
	data []byte
}

type stdinKind int

const (
	kindNull stdinKind = iota
	kindText
	kindBytes
	kindFile
	kindStream
)

// StdinNull connects stdin to /dev/null (the server default).
func StdinNull() *Stdin { return &Stdin{} }

// StdinText feeds s to the command.
func StdinText(s string) *Stdin { return &Stdin{kind: kindText, text: s} }

// StdinBytes feeds b to the command (sent base64-encoded).
func StdinBytes(b []byte) *Stdin { return &Stdin{kind: kindBytes, data: b} }

// StdinFile feeds the host file at path to the command.
func StdinFile(path string) *Stdin { return &Stdin{kind: kindFile, text: path} }

// StdinStream feeds the command what is written to Sandbox.Stdin() while it runs.
func StdinStream() *Stdin { return &Stdin{kind: kindStream} }

func (s Stdin) MarshalJSON() ([]byte, error) {
	switch s.kind {
	case kindText:
		return json.Marshal(map[string]string{"text": s.text})
	case kindBytes:
		return json.Marshal(map[string]string{"base64": base64.StdEncoding.EncodeToString(s.data)})
	case kindFile:
		return json.Marshal(map[string]string{"file": s.text})
	case kindStream:
		return []byte(`"stream"`), nil
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
	w      io.Writer // StreamTo
}

// Capture returns the output in the Result (the server default), up to CaptureLimitBytes.
func Capture() *Output { return &Output{mode: "capture"} }

// Discard throws the output away.
func Discard() *Output { return &Output{mode: "discard"} }

// Stream sends the output as sandbox/output notifications, delivered to RunRequest.OnOutput.
func Stream() *Output { return &Output{mode: "stream"} }

// StreamTo streams the output as Stream does, and writes each chunk to w, in order,
// from a goroutine of the run's own, before Run/Wait returns (OnOutput does not get
// them). A write error is returned by Wait, with the result.
//
// Chunks w has not taken yet are queued in memory without bound: the client's reader
// never waits for one run's writer (it must route every other answer), so a w slower
// than the command lets them pile up. Use ToFile for large outputs.
func StreamTo(w io.Writer) *Output { return &Output{mode: "stream", w: w} }

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

// Status is how a run ended (RunStatus in the OpenRPC document).
type Status string

const (
	StatusExited      Status = "exited"
	StatusSignaled    Status = "signaled"
	StatusTimedOut    Status = "timed-out"
	StatusCancelled   Status = "cancelled"
	StatusSetupFailed Status = "setup-failed"
)

// Usage is the resource usage of the sandbox (see docs/protocol.md for what it covers).
type Usage struct {
	UserCPUMs   float64 `json:"userCpuMs"`
	SystemCPUMs float64 `json:"systemCpuMs"`
	MaxRSSKiB   int64   `json:"maxRssKiB"`
}

// UserCPU is UserCPUMs as a time.Duration.
func (u Usage) UserCPU() time.Duration { return millis(u.UserCPUMs) }

// SystemCPU is SystemCPUMs as a time.Duration.
func (u Usage) SystemCPU() time.Duration { return millis(u.SystemCPUMs) }

func millis(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// Cleanup lists what the server removed from the root after the run.
type Cleanup struct {
	OK      bool             `json:"ok"`
	Removed []string         `json:"removed"`
	Failed  []CleanupFailure `json:"failed"`
	// Deferred: another run was still using the same root, and that run's result
	// reports the cleanup for both (Removed and Failed are then empty).
	Deferred bool `json:"deferred"`
}

// CleanupFailure is a path the server could not remove.
type CleanupFailure struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Result is the answer to a sandbox/run. Fields the server sends as null are zero
// values here: ExitCode nil, Signal and SetupError "".
type Result struct {
	SandboxID  string  `json:"sandboxId"`
	Status     Status  `json:"status"`
	ExitCode   *int    `json:"exitCode"`   // as bwrap reports it (128+N for signal N); nil when none
	Signal     string  `json:"signal"`     // e.g. "SIGKILL" when a signal ended the command; see SignalNumber
	SetupError string  `json:"setupError"` // bwrap's message when the sandbox could not be set up
	DurationMs float64 `json:"durationMs"` // see Duration
	Usage      Usage   `json:"usage"`
	// Stdout and Stderr are the captured outputs, decoded from text or base64;
	// nil when the output was not captured.
	Stdout          []byte `json:"-" wire:"stdout"`
	Stderr          []byte `json:"-" wire:"stderr"`
	StdoutTruncated bool   `json:"-"`
	StderrTruncated bool   `json:"-"`
	// StdoutError and StderrError say why a capture stopped early (the pipe could not
	// be read, or the output not kept; the ...Truncated flag is then set); "" otherwise.
	StdoutError string  `json:"-"`
	StderrError string  `json:"-"`
	Cleanup     Cleanup `json:"cleanup"`
	// LimitExceeded names the limit that ended or hampered the run (LimitMemory,
	// LimitPids, ...), beside the usual Status; "" when none did.
	LimitExceeded string `json:"limitExceeded"`
	// Raw is the result exactly as the server sent it (for extensions).
	Raw json.RawMessage `json:"-"`
}

// Success reports whether the command exited with code 0.
func (r *Result) Success() bool {
	return r.Status == StatusExited && r.ExitCode != nil && *r.ExitCode == 0
}

// Duration is DurationMs as a time.Duration: from the start of the run's
// preparation to its result, cleanup included.
func (r *Result) Duration() time.Duration { return millis(r.DurationMs) }

// SignalNumber is the signal that ended the command, 0 when none did (or the
// server named one this client does not know).
func (r *Result) SignalNumber() syscall.Signal { return signalNumber(r.Signal) }

// captured is the wire form of a captured stream (Captured in the OpenRPC document).
type captured struct {
	Text      *string `json:"text"`
	Base64    *string `json:"base64"`
	Truncated bool    `json:"truncated"`
	Error     *string `json:"error"`
}

func (d *captured) errorText() string {
	if d.Error == nil {
		return ""
	}
	return *d.Error
}

func (d *captured) decode() ([]byte, error) {
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
		Stdout *captured `json:"stdout"`
		Stderr *captured `json:"stderr"`
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
		r.StdoutTruncated, r.StdoutError = wire.Stdout.Truncated, wire.Stdout.errorText()
	}
	if wire.Stderr != nil {
		if r.Stderr, err = wire.Stderr.decode(); err != nil {
			return fmt.Errorf("bwrapd: result stderr: %w", err)
		}
		r.StderrTruncated, r.StderrError = wire.Stderr.Truncated, wire.Stderr.errorText()
	}
	r.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// ServerInfo is the result of initialize.
type ServerInfo struct {
	ServerName      string       `json:"serverName"`
	ServerVersion   string       `json:"serverVersion"`
	ProtocolVersion int          `json:"protocolVersion"`
	Bwrap           BwrapInfo    `json:"bwrap"`
	Capabilities    Capabilities `json:"capabilities"`
	Limits          Limits       `json:"limits"`
	// Raw is the result exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// BwrapInfo is the bwrap the server runs; both fields are "" when it found none
// (then every run fails with ErrBwrapUnusable).
type BwrapInfo struct {
	Path    string `json:"path"`
	Version string `json:"version"`
}

// Capabilities is what the host really supports, found by running bwrap at start-up.
type Capabilities struct {
	UserNamespaces bool `json:"userNamespaces"` // UID and GID apply
	DieWithParent  bool `json:"dieWithParent"`  // sandboxes die with the helper
	JSONStatusFd   bool `json:"jsonStatusFd"`   // sandbox/started, pids, signals and exact exit codes
	ChildSubreaper bool `json:"childSubreaper"` // Usage covers the sandboxed command
	Linux32        bool `json:"linux32"`        // RunRequest.Linux32 works
	// Framings the server reads, comma-separated ("ndjson,lsp").
	Framings string `json:"framings"`
	Seccomp  bool   `json:"seccomp"` // RunRequest.Seccomp can be built
	// Cgroup says whether each sandbox gets a cgroup of its own; nil from an older server.
	Cgroup *CgroupInfo `json:"cgroup"`
	// Limits maps each limit of RunRequest.Limits this host enforces (by its wire name,
	// "memoryBytes", "pids", ...) to its mechanism; a limit missing is refused.
	Limits map[string]string `json:"limits"`
	// NestedUserNamespaces says the sandboxed command may make user namespaces of its own
	// (false as root on a host with cgroup v1 hierarchies, and from an older server).
	NestedUserNamespaces bool `json:"nestedUserNamespaces"`
}

// CgroupInfo is capabilities.cgroup: with a cgroup, ending a sandbox kills every
// process of it, suspending freezes them all, and Usage counts them all.
type CgroupInfo struct {
	Available   bool     `json:"available"`
	Path        string   `json:"path"`        // the cgroup v2 directory sandboxes' cgroups are made in, or ""
	Controllers []string `json:"controllers"` // v2 or v1 controllers they have
}

// Terminal is the size (and TERM, default "xterm-256color") of a run's pseudo-terminal.
type Terminal struct {
	Rows int    `json:"rows"`
	Cols int    `json:"cols"`
	Term string `json:"term,omitempty"`
}

// Seccomp is a run's system-call filter: a named policy ("none", "default") or a deny list.
type Seccomp struct {
	Policy string   // "none" or "default"; empty with Deny
	Deny   []string // system calls that fail with Errno
	Errno  string   // "EPERM" (the server's default when empty), "ENOSYS", ...
}

// SeccompDefault is the server's default filter; SeccompNone installs nothing.
func SeccompDefault() *Seccomp { return &Seccomp{Policy: "default"} }

// SeccompNone installs no filter.
func SeccompNone() *Seccomp { return &Seccomp{Policy: "none"} }

// SeccompDeny makes exactly the named system calls fail with errno ("" for EPERM).
func SeccompDeny(errno string, calls ...string) *Seccomp { return &Seccomp{Deny: calls, Errno: errno} }

// MarshalJSON writes the policy name, or {"deny": [...], "errno": ...}.
func (s Seccomp) MarshalJSON() ([]byte, error) {
	if s.Policy != "" {
		return json.Marshal(s.Policy)
	}
	deny := struct {
		Deny  []string `json:"deny"`
		Errno string   `json:"errno,omitempty"`
	}{s.Deny, s.Errno}
	if deny.Deny == nil {
		deny.Deny = []string{}
	}
	return json.Marshal(deny)
}

// Limits are the message limits in force; a larger or deeper message is refused.
type Limits struct {
	MaxMessageBytes int64 `json:"maxMessageBytes"`
	MaxNestingDepth int   `json:"maxNestingDepth"`
}

// SandboxState is the state of a sandbox in sandbox/list.
type SandboxState string

const (
	StateStarting  SandboxState = "starting"
	StateRunning   SandboxState = "running"
	StateSuspended SandboxState = "suspended"
)

// SandboxInfo is one entry of sandbox/list.
type SandboxInfo struct {
	SandboxID string       `json:"sandboxId"`
	PID       int          `json:"pid"` // the init's host pid; 0 while starting
	State     SandboxState `json:"state"`
	Command   []string     `json:"command"`
	StartedAt time.Time    `json:"startedAt"` // when the server received the run
}

// ArgvResult is what sandbox/argv answers: the program the server would spawn
// for a RunRequest, its whole argv and its environment ("NAME=value").
type ArgvResult struct {
	Executable string   `json:"executable"`
	Argv       []string `json:"argv"`
	Env        []string `json:"env"`
}

// delivered is the answer of sandbox/signal, suspend, resume and terminate.
type delivered struct {
	Delivered bool `json:"delivered"`
}

// startedParams are the params of the sandbox/started notification.
type startedParams struct {
	SandboxID string          `json:"sandboxId"`
	PID       int             `json:"pid"`
	RequestID json.RawMessage `json:"requestId"`
}

// outputParams are the params of the sandbox/output notification.
type outputParams struct {
	SandboxID string  `json:"sandboxId"`
	Stream    string  `json:"stream"`
	Text      *string `json:"text"`
	Base64    *string `json:"base64"`
}
