package bwrapd

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"sync"
)

// inputPiece is the most bytes one sandbox/input carries: a long write goes in pieces,
// each answered before the next is sent, so at most one piece waits in the server
// (docs/protocol.md, Flow control).
const inputPiece = 16 * 1024

// inputParams are the params of sandbox/input (bytes always as base64).
type inputParams struct {
	SandboxID string `json:"sandboxId"`
	Base64    string `json:"base64,omitempty"`
	EOF       bool   `json:"eof,omitempty"`
}

// inputResult is the answer to sandbox/input.
type inputResult struct {
	Written int `json:"written"`
}

// Input writes data to the stdin stream or the terminal of a run (sandbox/input), in
// pieces each answered once the command's pipe or terminal has taken it; with eof it
// then closes the stdin stream (not for terminals). It returns how many bytes went in:
// fewer than len(data) when the pipe closed first (the command closed it, or ended).
func (h *Helper) Input(ctx context.Context, sandboxID string, data []byte, eof bool) (int, error) {
	total := 0
	for {
		piece := data
		if len(piece) > inputPiece {
			piece = piece[:inputPiece]
		}
		data = data[len(piece):]
		last := len(data) == 0
		if len(piece) == 0 && !eof {
			return total, nil
		}
		params := inputParams{SandboxID: sandboxID, Base64: base64.StdEncoding.EncodeToString(piece), EOF: last && eof}
		var res inputResult
		if err := h.Call(ctx, "sandbox/input", params, &res); err != nil {
			return total, err
		}
		total += res.Written
		if res.Written < len(piece) || last {
			return total, nil
		}
	}
}

// Resize sets the size of a run's terminal (sandbox/resize); its foreground process
// group gets SIGWINCH. false once the run has ended.
func (h *Helper) Resize(ctx context.Context, sandboxID string, rows, cols int) (bool, error) {
	return h.control(ctx, "sandbox/resize", map[string]any{"sandboxId": sandboxID, "rows": rows, "cols": cols})
}

// writeInput is Write of the io-style handles: the run's end (the pipe closed, or the
// sandbox gone) is io.ErrClosedPipe with what went in before.
func (s *Sandbox) writeInput(p []byte, eof bool) (int, error) {
	n, err := s.h.Input(context.Background(), s.id, p, eof)
	if errors.Is(err, ErrNoSuchSandbox) {
		err = nil // the run is over
	}
	if err == nil && n < len(p) {
		err = io.ErrClosedPipe
	}
	return n, err
}

// Stdin is the command's standard input for a run started with Stdin: StdinStream().
// Write sends bytes (sandbox/input) and returns once the command's pipe has taken them
// (io.ErrClosedPipe, with what went in, once the command closed it or ended); Close
// sends end of file. Writes from several goroutines arrive whole but in any order.
func (s *Sandbox) Stdin() io.WriteCloser { return stdinStream{s} }

type stdinStream struct{ s *Sandbox }

func (w stdinStream) Write(p []byte) (int, error) { return w.s.writeInput(p, false) }

func (w stdinStream) Close() error {
	_, err := w.s.writeInput(nil, true)
	return err
}

// TerminalSession is a run on a pseudo-terminal, returned by OpenTerminal: an
// io.ReadWriteCloser whose Read returns what the command prints (bytes as a terminal
// emulator gets them, io.EOF after the last) and whose Write types into it. The
// embedded Sandbox signals (its foreground job), terminates and waits for the Result,
// whose Stdout and Stderr are nil.
type TerminalSession struct {
	*Sandbox
}

// OpenTerminal starts req.Command on a new pseudo-terminal of the size req.Terminal
// gives (24 x 80 when nil), and returns once it runs, as Start does (ctx governs the
// whole run: cancelling it cancels the run). Stdin, Stdout,
// Stderr and OnOutput must be left unset: the terminal is all three, read with Read.
// What the command prints is kept until it is read, so Wait returns whether or not
// anybody reads it.
func (h *Helper) OpenTerminal(ctx context.Context, req RunRequest) (*TerminalSession, error) {
	if req.Stdin != nil || req.Stdout != nil || req.Stderr != nil || req.OnOutput != nil {
		return nil, errors.New("bwrapd: OpenTerminal: the terminal is the command's stdin, stdout and stderr " +
			"(leave Stdin, Stdout, Stderr and OnOutput unset)")
	}
	if req.Terminal == nil {
		req.Terminal = &Terminal{Rows: 24, Cols: 80}
	}
	sb, err := h.start(ctx, req, newTerminalOutput())
	if err != nil {
		return nil, err
	}
	return &TerminalSession{sb}, nil
}

// Read reads what the command printed, waiting for it; io.EOF once the run has ended
// and everything was read, io.ErrClosedPipe after Close.
func (t *TerminalSession) Read(p []byte) (int, error) { return t.terminal.Read(p) }

// Write types p into the terminal ("\x03" is Ctrl-C, "\x04" ends a line-mode read)
// and returns once the terminal has taken it; io.ErrClosedPipe, with what went in,
// once the run has ended.
func (t *TerminalSession) Write(p []byte) (int, error) { return t.writeInput(p, false) }

// Resize sets the terminal's size; its foreground process group gets SIGWINCH. After
// the run has ended it does nothing.
func (t *TerminalSession) Resize(rows, cols int) error {
	_, err := t.h.Resize(context.Background(), t.id, rows, cols)
	if errors.Is(err, ErrNoSuchSandbox) {
		return nil // the run is over
	}
	return err
}

// Close ends the session: it terminates the whole sandbox at once if it still runs (Wait
// then reports "signaled"), and Read returns io.ErrClosedPipe from then on.
func (t *TerminalSession) Close() error {
	t.terminal.close()
	select {
	case <-t.Done():
		return nil
	default:
	}
	_, err := t.Terminate(context.Background(), 0)
	if errors.Is(err, ErrNoSuchSandbox) {
		return nil // it ended meanwhile
	}
	return err
}

// terminalOutput keeps what a terminal printed until Read takes it: the run's
// delivery goroutine never waits for a reader, so the run's Result never does either.
type terminalOutput struct {
	mu     sync.Mutex
	more   *sync.Cond // signalled when buf grows, the run ends or Close is called
	buf    []byte
	ended  bool // the run is over: io.EOF once buf is read
	closed bool // Close was called: io.ErrClosedPipe, and nothing is kept any more
}

func newTerminalOutput() *terminalOutput {
	o := &terminalOutput{}
	o.more = sync.NewCond(&o.mu)
	return o
}

func (o *terminalOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	if !o.closed {
		o.buf = append(o.buf, p...)
	}
	o.mu.Unlock()
	o.more.Broadcast()
	return len(p), nil
}

func (o *terminalOutput) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.buf) == 0 && !o.ended && !o.closed {
		o.more.Wait()
	}
	switch {
	case o.closed:
		return 0, io.ErrClosedPipe
	case len(o.buf) == 0:
		return 0, io.EOF
	}
	n := copy(p, o.buf)
	o.buf = o.buf[n:]
	if len(o.buf) == 0 {
		o.buf = nil // let the array go
	}
	return n, nil
}

func (o *terminalOutput) end() {
	o.mu.Lock()
	o.ended = true
	o.mu.Unlock()
	o.more.Broadcast()
}

func (o *terminalOutput) close() {
	o.mu.Lock()
	o.closed, o.buf = true, nil
	o.mu.Unlock()
	o.more.Broadcast()
}
