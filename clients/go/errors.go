package bwrapd

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// JSON-RPC error codes used by bwrapd (PROTOCOL.md section 2).
const (
	CodeParseError       = -32700
	CodeInvalidRequest   = -32600
	CodeMethodNotFound   = -32601
	CodeInvalidParams    = -32602
	CodeInternalError    = -32603
	CodeRequestCancelled = -32800

	CodeNoSuchSandbox   = -32001 // unknown or already finished sandboxId
	CodeSandboxIDInUse  = -32002 // sandboxId already used by a running sandbox
	CodeCommandNotFound = -32003 // command not found in the sandbox root
	CodeBwrapUnusable   = -32004 // bwrap missing, too old or unusable on this host
	CodePathNotAllowed  = -32005 // relative path, ".." escape, or read-write bind of the host root
	CodeShuttingDown    = -32006 // server is shutting down
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
)

// ErrorCode returns the JSON-RPC error code carried by err, if it wraps an *RPCError.
func ErrorCode(err error) (int, bool) {
	var e *RPCError
	if errors.As(err, &e) {
		return e.Code, true
	}
	return 0, false
}

var (
	// ErrHelperExited matches (errors.Is) the error of every call that failed because
	// the helper process died or closed its output.
	ErrHelperExited = errors.New("bwrapd: helper exited")
	// ErrClosed is returned by calls made after (*Helper).Close.
	ErrClosed = errors.New("bwrapd: helper closed")
)

// HelperExitedError is returned for calls that were pending, or made, after the
// helper process died. Stderr holds the helper's last stderr lines.
type HelperExitedError struct {
	ExitErr error  // from waiting on the process; nil if it exited 0 or has not been reaped yet
	Stderr  string // the last lines the helper wrote to stderr
	Closed  bool   // the client closed the helper itself
	Reaped  bool   // the process has exited (ExitErr nil: with status 0)
}

func (e *HelperExitedError) Error() string {
	var b strings.Builder
	if e.Closed {
		b.WriteString("bwrapd: helper closed")
	} else {
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

// cancelledError is returned when the caller's context ended a run: it wraps the
// context's error (errors.Is(err, context.Canceled/DeadlineExceeded)) and the server's
// answer, normally -32800 (errors.As(err, &rpcErr), errors.Is(err, ErrRequestCancelled)).
type cancelledError struct {
	ctxErr error
	cause  error
}

func (e *cancelledError) Error() string {
	return fmt.Sprintf("%v: %v", e.ctxErr, e.cause)
}

func (e *cancelledError) Unwrap() error { return e.ctxErr }

func (e *cancelledError) Is(target error) bool { return errors.Is(e.cause, target) }

func (e *cancelledError) As(target any) bool { return errors.As(e.cause, target) }
