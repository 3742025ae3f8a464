package bwrapd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// JSON-RPC error codes used by bwrapd (docs/protocol.md).
//
// CodePathNotAllowed covers: a relative path where an absolute one is needed; a
// path inside the sandbox that climbs above "/" with ".."; a mount of the host's
// "/", read-only or not (the host's "/" is never a mount source; as Root it is
// mounted read-only), or a mount whose target is "/"; a device outside /dev/ or
// not a device node; a host path through a process's descriptor or root
// (/proc/PID/fd, /dev/stdin) or on a procfs; a mount point that leads into /proc,
// or whose way in the root cannot be looked at; a stdio file through a symbolic
// link inside the root or a read-write mount; a directory or a terminal as stdin.
const (
	CodeParseError       = -32700
	CodeInvalidRequest   = -32600
	CodeMethodNotFound   = -32601
	CodeInvalidParams    = -32602
	CodeInternalError    = -32603
	CodeRequestCancelled = -32800

	CodeNoSuchSandbox   = -32001 // unknown or already finished sandboxId
	CodeSandboxIDInUse  = -32002 // sandboxId already used by a sandbox not yet answered
	CodeCommandNotFound = -32003 // command not found in the sandbox root
	CodeBwrapUnusable   = -32004 // no bwrap found on this host
	CodePathNotAllowed  = -32005 // a path the helper refuses (see above)
	CodeShuttingDown    = -32006 // server is shutting down
	CodeOutOfMemory     = -32010 // the server's memory budget (--max-memory) cannot hold the message now
)

// RPCError is an error response from the helper.
//
// errors.Is(err, ErrNoSuchSandbox) and the other sentinels below compare codes only,
// so they match any *RPCError with the same code, wherever it is wrapped.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bwrapd: %s (code %d)", e.Message, e.Code)
	if len(e.Data) > 0 && string(e.Data) != "null" {
		fmt.Fprintf(&b, ": %s", e.Data)
	}
	return b.String()
}

// Is reports whether target is an *RPCError with the same code.
func (e *RPCError) Is(target error) bool {
	t, ok := target.(*RPCError)
	return ok && t.Code == e.Code
}

// Sentinel errors for errors.Is; each matches every *RPCError with its code.
var (
	ErrInvalidParams    = &RPCError{Code: CodeInvalidParams, Message: "invalid params"}
	ErrMethodNotFound   = &RPCError{Code: CodeMethodNotFound, Message: "method not found"}
	ErrRequestCancelled = &RPCError{Code: CodeRequestCancelled, Message: "request cancelled"}
	ErrNoSuchSandbox    = &RPCError{Code: CodeNoSuchSandbox, Message: "no such sandbox"}
	ErrSandboxIDInUse   = &RPCError{Code: CodeSandboxIDInUse, Message: "sandbox id in use"}
	ErrCommandNotFound  = &RPCError{Code: CodeCommandNotFound, Message: "command not found"}
	ErrBwrapUnusable    = &RPCError{Code: CodeBwrapUnusable, Message: "bwrap unusable"}
	ErrPathNotAllowed   = &RPCError{Code: CodePathNotAllowed, Message: "path not allowed"}
	ErrShuttingDown     = &RPCError{Code: CodeShuttingDown, Message: "server shutting down"}
	ErrOutOfMemory      = &RPCError{Code: CodeOutOfMemory, Message: "server out of memory budget"}
)

// ErrorCode returns the JSON-RPC error code carried by err, if it wraps an *RPCError.
func ErrorCode(err error) (int, bool) {
	var e *RPCError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

// HelperNotFoundError is returned by Start when no helper was named: Options.Path is
// empty, BWRAPD is not set and no "bwrapd" is on PATH. errors.Is(err, fs.ErrNotExist)
// is true for it.
type HelperNotFoundError struct{}

func (e *HelperNotFoundError) Error() string {
	return "bwrapd: helper not found: set Options.Path or the BWRAPD environment variable " +
		"to the bwrapd executable, or put bwrapd on PATH"
}

// Is makes errors.Is(err, fs.ErrNotExist) true.
func (e *HelperNotFoundError) Is(target error) bool { return target == fs.ErrNotExist }

var (
	// ErrHelperExited matches (errors.Is) the error of every call that failed because
	// the helper process died or closed its output.
	ErrHelperExited = errors.New("bwrapd: helper exited")
	// ErrClosed is returned by calls made after (*Helper).Close.
	ErrClosed = errors.New("bwrapd: helper closed")
	// ErrInvalidUTF8 matches (errors.Is) the error of a call one of whose strings
	// (an argument, a path, an environment variable, StdinText, an id...) is not
	// valid UTF-8. The protocol is UTF-8 text, and encoding/json would have sent
	// such a string with U+FFFD in place of the bad bytes: another path or argument.
	// The error names the field; nothing is sent. Binary input goes with StdinBytes.
	ErrInvalidUTF8 = errors.New("string is not valid UTF-8")
	// ErrMessageTooLarge matches (errors.Is) the error of a call whose request is
	// larger than the helper takes (ServerInfo().Limits.MaxMessageBytes, 16 MiB
	// unless the helper was started with --max-message-bytes). The helper would skip
	// it and answer an error without its id, so the call would never end; it is
	// refused before anything is sent. Give large input as a file (StdinFile) or
	// write it while the command runs (StdinStream).
	ErrMessageTooLarge = errors.New("message over the helper's maxMessageBytes")
)

// HelperExitedError is returned for calls that were pending, or made, after the
// helper process died, or after the client gave up on a broken helper and killed it
// (Broken says why). Stderr holds the helper's last stderr lines.
type HelperExitedError struct {
	ExitErr error  // from waiting on the process; nil if it exited 0 or has not been reaped yet
	Stderr  string // the last lines the helper wrote to stderr
	Closed  bool   // the client closed the helper itself
	Reaped  bool   // the process has exited (ExitErr nil: with status 0)
	// Broken says why the client killed a helper that broke the protocol: it wrote a
	// line longer than the client takes (four times its maxMessageBytes plus the room
	// the runs' captures need). Empty when the helper went by itself.
	Broken string
}

func (e *HelperExitedError) Error() string {
	var b strings.Builder
	switch {
	case e.Broken != "":
		b.WriteString("bwrapd: " + e.Broken)
	case e.Closed:
		b.WriteString("bwrapd: helper closed")
	case !e.Reaped:
		// Its output ended, but the process has not exited (yet): say what happened.
		b.WriteString("bwrapd: helper closed its stdout (still running)")
	default:
		b.WriteString("bwrapd: helper exited")
	}
	if e.ExitErr != nil {
		fmt.Fprintf(&b, " (%v)", e.ExitErr)
	} else if e.Reaped {
		b.WriteString(" (exit status 0)")
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		b.WriteString("; last stderr lines:\n")
		b.WriteString(s)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrHelperExited) true, and errors.Is(err, ErrClosed) true
// when the client closed the helper.
func (e *HelperExitedError) Is(target error) bool {
	return target == ErrHelperExited || (e.Closed && target == ErrClosed)
}

// Unwrap returns the process exit error, if any.
func (e *HelperExitedError) Unwrap() error { return e.ExitErr }

// CancelledError is the error of a run that was cancelled: its context ended, so the
// client sent $/cancelRequest, and the server killed the sandbox and answered -32800.
// errors.Is(err, context.Canceled) (or DeadlineExceeded) and errors.Is(err,
// ErrRequestCancelled) both hold; errors.As(err, &cancelled) gives the run's Result.
type CancelledError struct {
	// Result is what the run would have answered (Status "cancelled"), with its output
	// and cleanup report; nil when the server's answer carried none.
	Result *Result
	// Context is the context's error; nil when the run was cancelled by someone else.
	Context error
	// Err is the server's answer: normally an *RPCError with CodeRequestCancelled.
	Err error
}

func (e *CancelledError) Error() string {
	msg := e.Err.Error()
	if e.Result != nil { // not the whole result, which the server's error data holds
		msg = fmt.Sprintf("bwrapd: sandbox %s cancelled", e.Result.SandboxID)
	}
	if e.Context != nil {
		msg = e.Context.Error() + ": " + msg
	}
	return msg
}

// Unwrap gives the server's answer.
func (e *CancelledError) Unwrap() error { return e.Err }

// Is matches the context's error as well as the server's answer.
func (e *CancelledError) Is(target error) bool {
	return (e.Context != nil && errors.Is(e.Context, target)) || errors.Is(e.Err, target)
}

// As reaches the server's *RPCError.
func (e *CancelledError) As(target any) bool { return errors.As(e.Err, target) }

// ExitError is returned by Run and Wait when RunRequest.Check is set and the command
// did not exit with code 0, as *exec.ExitError is by exec.Cmd.Run. The Result is
// returned too.
type ExitError struct {
	Result *Result
}

func (e *ExitError) Error() string {
	r := e.Result
	switch {
	case r.Status == StatusExited && r.ExitCode != nil:
		return fmt.Sprintf("bwrapd: sandbox %s: exit status %d", r.SandboxID, *r.ExitCode)
	case r.Signal != "":
		return fmt.Sprintf("bwrapd: sandbox %s: %s by %s", r.SandboxID, r.Status, r.Signal)
	case r.SetupError != "":
		return fmt.Sprintf("bwrapd: sandbox %s: %s: %s", r.SandboxID, r.Status, r.SetupError)
	}
	return fmt.Sprintf("bwrapd: sandbox %s: %s", r.SandboxID, r.Status)
}

// ExitCode is the command's exit code, or -1 when it did not exit by itself (as
// exec.ExitError's).
func (e *ExitError) ExitCode() int {
	if e.Result.Status == StatusExited && e.Result.ExitCode != nil {
		return *e.Result.ExitCode
	}
	return -1
}
