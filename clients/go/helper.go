// Package bwrapd is a client for bwrapd, the helper that runs commands in bubblewrap
// sandboxes and speaks JSON-RPC 2.0 over its stdin and stdout.
//
// Start spawns the helper and initializes it; Run runs one command in a sandbox and
// waits for its Result; Start on a Helper returns a Sandbox handle that can be
// suspended, resumed, signalled or terminated while it runs. A Helper is safe for
// concurrent use by many goroutines.
//
// The protocol is UTF-8 text: every string of a request must be valid UTF-8 (a call
// with another one fails with ErrInvalidUTF8 naming the field, and nothing is sent;
// binary stdin goes with StdinBytes), and a request larger than the helper's
// ServerInfo().Limits.MaxMessageBytes fails with ErrMessageTooLarge.
package bwrapd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Version of this client, sent as clientVersion in initialize.
const Version = "0.1.0"

// Options configure Start.
type Options struct {
	// Path of the helper executable. When empty: the BWRAPD environment variable,
	// else "bwrapd" in a directory of PATH; nothing else (see HelperNotFoundError).
	Path string
	// Args are extra command-line arguments for the helper.
	Args []string
	// Env is the helper's environment; nil means the current process's environment.
	Env []string
	// Stderr receives the helper's stderr (its logs). nil discards it; the last lines
	// are kept either way and reported in HelperExitedError.
	Stderr io.Writer
	// ClientName is sent in initialize (default "bwrapd-go").
	ClientName string
	// CloseTimeout bounds Close: the time for shutdown and for the process to exit
	// before it is killed (default 10s).
	CloseTimeout time.Duration
	// CancelTimeout is how long a run whose context ended waits for the server to
	// answer the $/cancelRequest before the client gives up on it (default 30s).
	CancelTimeout time.Duration
	// OnNotification, when set, receives every server notification (including
	// sandbox/started and sandbox/output) on the reader goroutine: it must not block.
	OnNotification func(method string, params json.RawMessage)
}

// Helper is a running bwrapd process.
type Helper struct {
	opts   Options
	path   string
	cmd    *exec.Cmd
	stdin  *os.File
	stdout *os.File
	info   ServerInfo

	// wsem is the right to write to stdin, one message at a time (a channel, so that a
	// call can stop waiting for it when its context ends).
	wsem chan struct{}

	mu        sync.Mutex
	nextID    int64
	pending   map[int64]*call
	bySandbox map[string]*Sandbox
	dead      error  // set once the reader has ended
	closed    bool   // Close has sent exit: no new calls
	broken    string // why the reader gave up on the helper and killed it

	maxMessage   atomic.Int64 // the helper's maxMessageBytes, once initialize answered
	captureBytes atomic.Int64 // the largest CaptureLimitBytes of a run so far (see lineLimit)

	readerDone chan struct{} // closed when the reader has ended and pending calls have failed
	exited     chan struct{} // closed when the process has been reaped
	exitErr    error         // valid after exited is closed
	stderr     tailBuffer
	stderrDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

type call struct {
	ch  chan response // plain requests
	run *Sandbox      // sandbox/run
}

type response struct {
	result json.RawMessage
	err    error
}

type outMessage struct {
	JSONRPC string `json:"jsonrpc"`
	ID      *int64 `json:"id,omitempty"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
}

type inMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	// Decoded on its own: a malformed error must still answer its call.
	Error json.RawMessage `json:"error"`
}

// Start spawns the helper in a session of its own and sends initialize. ctx bounds
// the start-up only: the helper runs until Close (or until it dies).
func Start(ctx context.Context, opts Options) (*Helper, error) {
	path, err := locate(opts.Path)
	if err != nil {
		return nil, err
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 10 * time.Second
	}
	if opts.CancelTimeout <= 0 {
		opts.CancelTimeout = 30 * time.Second
	}
	if opts.ClientName == "" {
		opts.ClientName = "bwrapd-go"
	}

	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return
	}
	stdinR, stdinW, err := pipe()
	if err != nil {
		return nil, err
	}
	stdoutR, stdoutW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	stderrR, stderrW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}

	cmd := exec.Command(path, opts.Args...)
	cmd.Env = opts.Env
	// *os.File streams are handed to the child as they are, so Wait never waits on
	// copying goroutines (and never on a grandchild that kept a descriptor).
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderrW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("bwrapd: starting helper %s: %w", path, err)
	}
	stdinR.Close()
	stdoutW.Close()
	stderrW.Close()

	h := &Helper{
		opts:       opts,
		path:       path,
		cmd:        cmd,
		stdin:      stdinW,
		stdout:     stdoutR,
		pending:    make(map[int64]*call),
		bySandbox:  make(map[string]*Sandbox),
		wsem:       make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		exited:     make(chan struct{}),
		stderrDone: make(chan struct{}),
	}
	go h.copyStderr(stderrR)
	go h.waitProcess()
	go h.readLoop()

	params := map[string]any{"clientName": opts.ClientName, "clientVersion": Version, "protocolVersion": 1}
	var raw json.RawMessage
	if err := h.Call(ctx, "initialize", params, &raw); err != nil {
		h.kill()
		return nil, fmt.Errorf("bwrapd: initializing helper %s: %w", path, err)
	}
	if err := json.Unmarshal(raw, &h.info); err != nil {
		h.kill()
		return nil, fmt.Errorf("bwrapd: initialize result from %s: %w", path, err)
	}
	h.info.Raw = raw
	h.maxMessage.Store(h.info.Limits.MaxMessageBytes)
	return h, nil
}

// locate finds the helper executable: the explicit path, else $BWRAPD, else "bwrapd" in
// an absolute directory of PATH. Nothing else: a file the user did not choose, such as
// one named bwrapd in the working directory or above it, is never run.
func locate(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p := os.Getenv("BWRAPD"); p != "" {
		return p, nil
	}
	// exec.LookPath refuses a match from a relative PATH entry (exec.ErrDot).
	if p, err := exec.LookPath("bwrapd"); err == nil {
		return p, nil
	}
	return "", &HelperNotFoundError{}
}

// ServerInfo is the helper's answer to initialize.
func (h *Helper) ServerInfo() ServerInfo { return h.info }

// Path is the executable that was started.
func (h *Helper) Path() string { return h.path }

// PID is the helper's process id (also its session and process group id).
func (h *Helper) PID() int { return h.cmd.Process.Pid }

// Done is closed once the helper has gone (exited or closed its stdout) and every
// pending call has failed; Err then tells why.
func (h *Helper) Done() <-chan struct{} { return h.readerDone }

// Err is nil while the helper runs, then the *HelperExitedError that pending calls got.
func (h *Helper) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dead
}

// Call sends any request and decodes its result into result (when non-nil). When
// ctx ends first, Call returns ctx.Err() and the answer is dropped. ctx also bounds
// the wait for the helper to take the request (a helper that stops reading its
// input holds up every write): a request that was partly written by then still
// goes out whole, and may take effect.
func (h *Helper) Call(ctx context.Context, method string, params, result any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{ch: make(chan response, 1)}
	id, err := h.register(c, nil)
	if err != nil {
		return err
	}
	if _, err := h.send(ctx, outMessage{JSONRPC: "2.0", ID: &id, Method: method, Params: params}); err != nil {
		h.takePending(id)
		return err
	}
	select {
	case r := <-c.ch:
		if r.err != nil {
			return r.err
		}
		if result != nil {
			if err := json.Unmarshal(r.result, result); err != nil {
				return fmt.Errorf("bwrapd: decoding %s result: %w", method, err)
			}
		}
		return nil
	case <-ctx.Done():
		h.takePending(id)
		return ctx.Err()
	}
}

// Notify sends a notification (no answer). It returns once the helper has taken it;
// NotifyContext bounds that wait.
func (h *Helper) Notify(method string, params any) error {
	return h.NotifyContext(context.Background(), method, params)
}

// NotifyContext is Notify, giving up with ctx.Err() when ctx ends before the helper
// has taken the notification (one that was partly written by then still goes out
// whole).
func (h *Helper) NotifyContext(ctx context.Context, method string, params any) error {
	_, err := h.send(ctx, outMessage{JSONRPC: "2.0", Method: method, Params: params})
	return err
}

// Discover returns the helper's OpenRPC document (rpc.discover).
func (h *Helper) Discover(ctx context.Context) (json.RawMessage, error) {
	var doc json.RawMessage
	err := h.Call(ctx, "rpc.discover", nil, &doc)
	return doc, err
}

// List returns the running sandboxes (sandbox/list).
func (h *Helper) List(ctx context.Context) ([]SandboxInfo, error) {
	var list []SandboxInfo
	err := h.Call(ctx, "sandbox/list", nil, &list)
	return list, err
}

// Signal sends sig to the process group of the sandbox's command and reports whether
// it was delivered (or kept, for a sandbox still starting). Only SIGSTOP, SIGCONT,
// SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 and SIGQUIT can be sent.
func (h *Helper) Signal(ctx context.Context, sandboxID string, sig syscall.Signal) (bool, error) {
	name, err := signalName(sig)
	if err != nil {
		return false, err
	}
	return h.control(ctx, "sandbox/signal", map[string]any{"sandboxId": sandboxID, "signal": name})
}

// Suspend stops the sandbox's command (SIGSTOP to its process group).
func (h *Helper) Suspend(ctx context.Context, sandboxID string) (bool, error) {
	return h.control(ctx, "sandbox/suspend", map[string]any{"sandboxId": sandboxID})
}

// Resume continues a suspended sandbox (SIGCONT).
func (h *Helper) Resume(ctx context.Context, sandboxID string) (bool, error) {
	return h.control(ctx, "sandbox/resume", map[string]any{"sandboxId": sandboxID})
}

// Terminate ends the whole sandbox. With grace > 0 its processes get SIGTERM first
// and SIGKILL after grace (rounded up to whole milliseconds); otherwise SIGKILL at
// once. The run then ends "signaled".
func (h *Helper) Terminate(ctx context.Context, sandboxID string, grace time.Duration) (bool, error) {
	params := map[string]any{"sandboxId": sandboxID}
	if grace > 0 {
		// Rounded up: a grace under 1 ms must not become 0, which is SIGKILL at once.
		ms := grace.Milliseconds()
		if grace%time.Millisecond != 0 {
			ms++
		}
		params["graceMs"] = ms
	}
	return h.control(ctx, "sandbox/terminate", params)
}

// control sends one of the four control methods; all answer {"delivered": bool}:
// false when the sandbox's command had already ended.
func (h *Helper) control(ctx context.Context, method string, params map[string]any) (bool, error) {
	var res delivered
	err := h.Call(ctx, method, params, &res)
	return res.Delivered, err
}

// Argv validates req like Run but runs nothing, and returns what the server would
// execute for it (sandbox/argv): for reproducing a sandbox by hand.
func (h *Helper) Argv(ctx context.Context, req RunRequest) (*ArgvResult, error) {
	var res ArgvResult
	if err := h.Call(ctx, "sandbox/argv", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Shutdown asks the helper to refuse new sandboxes and terminate the running ones;
// it returns how many were terminated. Close calls it.
func (h *Helper) Shutdown(ctx context.Context) (int, error) {
	var res struct {
		Terminated int `json:"terminated"`
	}
	err := h.Call(ctx, "shutdown", nil, &res)
	return res.Terminated, err
}

// Close shuts the helper down: a shutdown request, the exit notification, end of
// its input, then it waits for the process, which is killed (with its whole session)
// when it has not exited within Options.CloseTimeout. The shutdown terminates the
// sandboxes still running: their Run or Wait returns a Result with Status
// StatusSignaled (no error); only a run the helper had not answered when it went
// away (it was killed after CloseTimeout, or died) fails, with *HelperExitedError.
// Calls made after Close fail with ErrClosed.
func (h *Helper) Close() error {
	h.closeOnce.Do(func() { h.closeErr = h.close() })
	return h.closeErr
}

func (h *Helper) close() error {
	deadline := time.NewTimer(h.opts.CloseTimeout)
	defer deadline.Stop()
	if h.Err() == nil {
		// On a goroutine of its own: a helper that no longer reads its input leaves a
		// write stuck, and Close must keep to CloseTimeout all the same.
		polite := make(chan struct{})
		go func() {
			defer close(polite)
			ctx, cancel := context.WithTimeout(context.Background(), h.opts.CloseTimeout)
			_, _ = h.Shutdown(ctx) // best effort: the helper may not implement it, or be gone
			_ = h.NotifyContext(ctx, "exit", nil)
			cancel()
		}()
		select {
		case <-polite:
		case <-deadline.C:
			h.mu.Lock()
			h.closed = true
			h.mu.Unlock()
			h.kill() // closing stdin fails the stuck writes
			<-polite
			return fmt.Errorf("bwrapd: helper did not read its input within %v; killed", h.opts.CloseTimeout)
		}
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.stdin.Close()

	var err error
	select {
	case <-h.exited:
		if h.exitErr != nil {
			err = fmt.Errorf("bwrapd: helper: %w", h.exitErr)
		}
	case <-deadline.C:
		h.kill()
		err = fmt.Errorf("bwrapd: helper did not exit within %v; killed", h.opts.CloseTimeout)
	}
	<-h.readerDone
	return err
}

// kill ends the helper's whole session at once and waits for it.
func (h *Helper) kill() {
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	_ = h.cmd.Process.Kill()
	h.stdin.Close()
	<-h.exited
	<-h.readerDone
}

func (h *Helper) register(c *call, sb *Sandbox) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dead != nil {
		return 0, h.dead
	}
	if h.closed {
		return 0, ErrClosed
	}
	if sb != nil {
		// Output and starts are routed by sandbox id: two runs of this client with one
		// id at once would get each other's. The server refuses a second one only while
		// the first runs there, not while its output is still being delivered here.
		if _, taken := h.bySandbox[sb.id]; taken {
			return 0, &RPCError{Code: CodeSandboxIDInUse,
				Message: fmt.Sprintf("sandboxId %q is already used by a run of this client that has not ended", sb.id)}
		}
	}
	h.nextID++
	id := h.nextID
	h.pending[id] = c
	if sb != nil {
		sb.requestID = id
		h.bySandbox[sb.id] = sb
		sb.indexed = true
	}
	return id, nil
}

// takePending removes and returns the call waiting for id, if any.
func (h *Helper) takePending(id int64) *call {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.pending[id]
	delete(h.pending, id)
	return c
}

// send writes m. When ctx ends first it returns ctx.Err(), and inFlight says whether
// m had begun to go out: it then goes out whole (or the pipe breaks), never cut.
func (h *Helper) send(ctx context.Context, m outMessage) (inFlight bool, err error) {
	if err := checkMessage(m); err != nil {
		return false, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("bwrapd: encoding %s: %w", m.Method, err)
	}
	// The helper counts the line without its newline.
	if limit := h.maxMessage.Load(); limit > 0 && int64(len(b)) > limit {
		return false, fmt.Errorf("bwrapd: %s: the message is %d bytes, over the helper's limit of %d bytes: %w; "+
			"nothing was sent (give large input as a file, StdinFile, or while the command runs, StdinStream)",
			m.Method, len(b), limit, ErrMessageTooLarge)
	}
	inFlight, err = h.write(ctx, append(b, '\n'))
	if err == nil || inFlight || ctx.Err() != nil {
		return inFlight, err
	}
	// A failed write means the helper is gone or going: report why.
	select {
	case <-h.readerDone:
		return false, h.Err()
	case <-time.After(2 * time.Second):
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return false, ErrClosed
	}
	return false, fmt.Errorf("bwrapd: writing to helper: %w", err)
}

// write writes one whole message to the helper's stdin, one writer at a time. When
// ctx ends first it returns ctx.Err(): before the write began nothing is written
// (inFlight false); after, the message still goes out whole from a goroutine of its
// own (inFlight true), and the next writer waits for it, so that messages never mix.
// A helper that stops reading leaves that write stuck until Close kills it.
func (h *Helper) write(ctx context.Context, b []byte) (inFlight bool, err error) {
	select {
	case h.wsem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	case <-h.readerDone:
		return false, h.Err()
	}
	done := make(chan error, 1)
	go func() {
		_, err := h.stdin.Write(b)
		<-h.wsem
		done <- err
	}()
	select {
	case err = <-done:
		return false, err
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

func (h *Helper) waitProcess() {
	h.exitErr = h.cmd.Wait()
	close(h.exited)
	// The reader normally sees end of output now; if a stray descriptor keeps the pipe
	// open, stop it anyway so pending calls fail promptly.
	select {
	case <-h.readerDone:
	case <-time.After(500 * time.Millisecond):
		h.stdout.Close()
	}
}

func (h *Helper) copyStderr(r *os.File) {
	defer close(h.stderrDone)
	defer r.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			h.stderr.Write(buf[:n])
			if h.opts.Stderr != nil {
				_, _ = h.opts.Stderr.Write(buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// The bound of a line from the helper (see lineLimit).
const (
	lineLimitUnknown    = 64 << 20 // before initialize told maxMessageBytes (then 4 times that)
	lineMargin          = 1 << 20  // room for the framing
	defaultCaptureLimit = 1 << 20  // captureLimitBytes when a run does not give it
)

// lineLimit is the longest line taken from the helper: four times its maxMessageBytes
// (lineLimitUnknown before it is known), plus what two captures of the largest
// CaptureLimitBytes a run asked for can take as JSON text (a byte escaped as \u00XX is
// six), plus lineMargin. A longer line is a broken helper, not an answer.
func (h *Helper) lineLimit() int64 {
	base := int64(lineLimitUnknown)
	if m := h.maxMessage.Load(); m > 0 {
		base = 4 * m
	}
	return base + 12*h.captureBytes.Load() + lineMargin
}

// noteCapture records the CaptureLimitBytes of a run for lineLimit.
func (h *Helper) noteCapture(req RunRequest) {
	n := int64(defaultCaptureLimit)
	if req.CaptureLimitBytes != nil && *req.CaptureLimitBytes > 0 {
		n = *req.CaptureLimitBytes
	}
	for {
		old := h.captureBytes.Load()
		if n <= old || h.captureBytes.CompareAndSwap(old, n) {
			return
		}
	}
}

func (h *Helper) readLoop() {
	r := bufio.NewReaderSize(h.stdout, 64*1024)
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if limit := h.lineLimit(); int64(len(line)) > limit {
				// Not an answer but a broken helper: stop reading, as if it had died.
				h.mu.Lock()
				h.broken = fmt.Sprintf("the helper wrote a line of more than %d bytes, over the client's "+
					"limit of %d bytes (from its maxMessageBytes and the runs' CaptureLimitBytes); it was killed",
					len(line), limit)
				h.mu.Unlock()
				_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
				_ = h.cmd.Process.Kill()
				break
			}
			continue
		}
		if len(bytes.TrimSpace(line)) > 0 {
			h.handleLine(line)
		}
		line = nil
		if err != nil {
			break
		}
	}
	h.stdout.Close()
	h.fail()
}

// fail runs once the helper's output has ended: every pending call gets an error
// carrying the exit status and the last stderr lines.
func (h *Helper) fail() {
	select {
	case <-h.exited:
	case <-time.After(time.Second):
	}
	select {
	case <-h.stderrDone:
	case <-time.After(200 * time.Millisecond):
	}
	e := &HelperExitedError{Stderr: h.stderr.lastLines(20)}
	select {
	case <-h.exited:
		e.ExitErr, e.Reaped = h.exitErr, true
	default:
	}
	h.mu.Lock()
	e.Closed = h.closed
	e.Broken = h.broken
	h.dead = e
	pending := h.pending
	h.pending = make(map[int64]*call)
	h.mu.Unlock()
	for _, c := range pending {
		if c.run != nil {
			c.run.finish(nil, e)
		} else {
			c.ch <- response{err: e}
		}
	}
	close(h.readerDone)
}

func (h *Helper) handleLine(line []byte) {
	line = bytes.TrimSpace(line)
	if line[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(line, &batch) == nil {
			for _, m := range batch {
				h.handleMessage(m)
			}
		}
		return
	}
	h.handleMessage(line)
}

func (h *Helper) handleMessage(raw []byte) {
	var m inMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		h.stderr.Write([]byte(fmt.Sprintf("bwrapd-go: unreadable message from helper: %.200s\n", raw)))
		return
	}
	if m.Method != "" {
		if len(m.ID) > 0 && string(m.ID) != "null" {
			// The protocol has no server-to-client requests: refuse, off the reader goroutine.
			go h.refuse(m.ID, m.Method)
			return
		}
		h.handleNotification(m.Method, m.Params)
		return
	}
	id, ok := parseID(m.ID)
	if !ok {
		return // id null: an error about a message the helper could not read
	}
	c := h.takePending(id)
	if c == nil {
		return // a call that was given up (its context ended)
	}
	var r response
	if len(m.Error) > 0 && string(m.Error) != "null" {
		r.err = decodeRPCError(m.Error)
	} else {
		r.result = m.Result
	}
	if c.run != nil {
		c.run.finish(r.result, r.err)
	} else {
		c.ch <- r
	}
}

// parseID reads the id of an answer: one of ours is a whole number, which JSON may
// also write as 2.0 or 2e0. A string or null is no id of ours.
func parseID(raw json.RawMessage) (int64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '"' || raw[0] == 'n' {
		return 0, false
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	if id, err := n.Int64(); err == nil {
		return id, true
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

// decodeRPCError reads the error member of an answer; one that is not a JSON-RPC
// error object becomes an internal error that says what came.
func decodeRPCError(raw json.RawMessage) *RPCError {
	var e RPCError
	if err := json.Unmarshal(raw, &e); err != nil {
		return &RPCError{Code: CodeInternalError,
			Message: fmt.Sprintf("malformed error in the helper's answer (%v): %.200s", err, raw)}
	}
	return &e
}

func (h *Helper) refuse(id json.RawMessage, method string) {
	b, err := json.Marshal(map[string]any{
		"jsonrpc": "2.0", "id": id,
		"error": &RPCError{Code: CodeMethodNotFound, Message: "client does not serve " + method},
	})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.CancelTimeout)
	defer cancel()
	_, _ = h.write(ctx, append(b, '\n'))
}

func (h *Helper) handleNotification(method string, params json.RawMessage) {
	if h.opts.OnNotification != nil {
		h.opts.OnNotification(method, params)
	}
	switch method {
	case "sandbox/started":
		var p startedParams
		if json.Unmarshal(params, &p) != nil {
			return
		}
		var sb *Sandbox
		var reqID int64
		h.mu.Lock()
		if json.Unmarshal(p.RequestID, &reqID) == nil {
			if c := h.pending[reqID]; c != nil {
				sb = c.run
			}
		}
		if sb == nil {
			sb = h.bySandbox[p.SandboxID]
		}
		h.mu.Unlock()
		if sb != nil {
			sb.markStarted(p.PID)
		}
	case "sandbox/output":
		var p outputParams
		if json.Unmarshal(params, &p) != nil {
			return
		}
		var data []byte
		switch {
		case p.Text != nil:
			data = []byte(*p.Text)
		case p.Base64 != nil:
			d, err := base64.StdEncoding.DecodeString(*p.Base64)
			if err != nil {
				return
			}
			data = d
		}
		h.mu.Lock()
		sb := h.bySandbox[p.SandboxID]
		h.mu.Unlock()
		if sb != nil {
			sb.output(p.Stream, data)
		}
	}
}

func (h *Helper) unindex(sb *Sandbox) {
	h.mu.Lock()
	if sb.indexed && h.bySandbox[sb.id] == sb {
		delete(h.bySandbox, sb.id)
	}
	h.mu.Unlock()
}

var sandboxCounter uint64

func newSandboxID() string {
	return fmt.Sprintf("go-%d-%d", os.Getpid(), atomic.AddUint64(&sandboxCounter, 1))
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 16 * 1024

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
