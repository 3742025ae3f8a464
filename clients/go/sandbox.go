package bwrapd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Sandbox is a sandbox/run in progress, returned by (*Helper).Start.
type Sandbox struct {
	h         *Helper
	id        string
	requestID int64
	indexed   bool // registered under id in h.bySandbox
	onOutput  func(stream string, data []byte)
	writers   map[string]io.Writer // streamed outputs that go to an io.Writer
	check     bool                 // RunRequest.Check
	writeErr  error                // the first error of a writer
	terminal  *terminalOutput      // what a terminal printed, for TerminalSession.Read; nil for other runs

	pid         atomic.Int64
	started     chan struct{}
	startedOnce sync.Once
	done        chan struct{}
	result      *Result
	err         error

	qmu      sync.Mutex
	queue    []event
	qsig     chan struct{}
	finished bool  // the final event is queued
	ctxErr   error // the caller's context ended the run
}

type event struct {
	stream string
	data   []byte
	final  bool
	result json.RawMessage
	err    error
}

// Run runs a command in a sandbox and waits for it. Cancelling ctx cancels the run
// ($/cancelRequest): the sandbox is terminated, and Run returns an error that wraps
// both ctx.Err() and the server's answer (normally ErrRequestCancelled).
//
// A run that ended is not an error unless RunRequest.Check is set (then a command that
// did not exit with 0 is an *ExitError): check Result.Status and Result.ExitCode.
// Errors are *RPCError (see the Err* sentinels), *CancelledError, *ExitError,
// *HelperExitedError, or ctx errors.
func (h *Helper) Run(ctx context.Context, req RunRequest) (*Result, error) {
	sb, err := h.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return sb.Wait()
}

// Start starts a command in a sandbox and returns once it runs (or once the run
// ended before that, for instance with setup-failed; then Wait has the result).
// Errors that end the run before it started, such as ErrCommandNotFound, are
// returned by Start. ctx governs the whole run, as for Run: cancelling it cancels
// the run.
//
// On a host whose bwrap has no --json-status-fd (ServerInfo().Capabilities.JSONStatusFd
// false) the server never announces a start: Start returns as soon as the request is
// sent, PID stays 0, and errors come from Wait. The sandbox can be terminated at once.
func (h *Helper) Start(ctx context.Context, req RunRequest) (*Sandbox, error) {
	return h.start(ctx, req, nil)
}

// start is Start, with a terminal's output kept for TerminalSession.Read when terminal is not nil.
func (h *Helper) start(ctx context.Context, req RunRequest, terminal *terminalOutput) (*Sandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.OnOutput != nil && req.Terminal == nil && !streamsToOnOutput(req.Stdout) && !streamsToOnOutput(req.Stderr) {
		// Else OnOutput would silently never be called.
		return nil, errors.New("bwrapd: RunRequest.OnOutput is set but neither Stdout nor Stderr is Stream(): " +
			"it would never be called (nothing was sent)")
	}
	if req.SandboxID == "" {
		req.SandboxID = newSandboxID()
	}
	sb := &Sandbox{
		h:        h,
		id:       req.SandboxID,
		onOutput: req.OnOutput,
		writers:  streamWriters(req, terminal),
		check:    req.Check,
		terminal: terminal,
		started:  make(chan struct{}),
		done:     make(chan struct{}),
		qsig:     make(chan struct{}, 1),
	}
	id, err := h.register(&call{run: sb}, sb)
	if err != nil {
		return nil, err
	}
	h.noteCapture(req)
	go sb.deliver()
	if inFlight, err := h.send(ctx, outMessage{JSONRPC: "2.0", ID: &id, Method: "sandbox/run", Params: req}); err != nil {
		if inFlight {
			// ctx ended while the run was going out: it goes out whole and would run with
			// nobody waiting for it, so cancel it, right behind it.
			go func() {
				cctx, cancel := context.WithTimeout(context.Background(), h.opts.CancelTimeout)
				defer cancel()
				_ = h.NotifyContext(cctx, "$/cancelRequest", map[string]int64{"id": id})
			}()
		}
		if h.takePending(id) != nil {
			sb.finish(nil, err)
		}
		<-sb.done
		return nil, sb.err
	}
	go sb.watch(ctx)
	if !h.info.Capabilities.JSONStatusFd {
		return sb, nil // no sandbox/started will come
	}
	select {
	case <-sb.started:
	case <-sb.done:
		// A run that ended with a result (an *ExitError with Check, a cancelled run) is
		// Wait's to report, with that result; Start fails only when there is none.
		if sb.result == nil && sb.err != nil {
			return nil, sb.err
		}
	}
	return sb, nil
}

// ID is the sandbox id (client-assigned "go-<pid>-<n>" unless the request named one).
func (s *Sandbox) ID() string { return s.id }

// PID is the process id the server announced in sandbox/started; 0 before that.
func (s *Sandbox) PID() int { return int(s.pid.Load()) }

// Started is closed when the server announces that the command runs.
func (s *Sandbox) Started() <-chan struct{} { return s.started }

// Done is closed when the run has ended and its result (or error) is available.
func (s *Sandbox) Done() <-chan struct{} { return s.done }

// Wait waits for the run to end and returns its result. Every streamed output chunk
// has been delivered to its io.Writer or OnOutput before Wait returns. With an
// *ExitError or a *CancelledError the result is returned too; a run whose output
// could not be written to its io.Writer returns that write error with its result.
func (s *Sandbox) Wait() (*Result, error) {
	<-s.done
	return s.result, s.err
}

// Signal sends sig to the sandboxed command's process group (see Helper.Signal).
func (s *Sandbox) Signal(ctx context.Context, sig syscall.Signal) (bool, error) {
	return s.h.Signal(ctx, s.id, sig)
}

// Suspend stops the sandboxed command (SIGSTOP).
func (s *Sandbox) Suspend(ctx context.Context) (bool, error) { return s.h.Suspend(ctx, s.id) }

// Resume continues it (SIGCONT).
func (s *Sandbox) Resume(ctx context.Context) (bool, error) { return s.h.Resume(ctx, s.id) }

// Terminate ends the whole sandbox, with SIGTERM first when grace > 0.
func (s *Sandbox) Terminate(ctx context.Context, grace time.Duration) (bool, error) {
	return s.h.Terminate(ctx, s.id, grace)
}

func (s *Sandbox) markStarted(pid int) {
	s.startedOnce.Do(func() {
		s.pid.Store(int64(pid))
		close(s.started)
	})
}

func (s *Sandbox) push(ev event) {
	s.qmu.Lock()
	if s.finished {
		s.qmu.Unlock()
		return
	}
	if ev.final {
		s.finished = true
	}
	s.queue = append(s.queue, ev)
	s.qmu.Unlock()
	select {
	case s.qsig <- struct{}{}:
	default:
	}
}

func (s *Sandbox) output(stream string, data []byte) {
	s.push(event{stream: stream, data: data})
}

// finish queues the run's answer behind the output chunks received before it.
func (s *Sandbox) finish(result json.RawMessage, err error) {
	s.push(event{final: true, result: result, err: err})
}

// deliver hands output chunks to OnOutput in order, then publishes the result.
func (s *Sandbox) deliver() {
	for {
		<-s.qsig
		s.qmu.Lock()
		evs := s.queue
		s.queue = nil
		s.qmu.Unlock()
		for _, ev := range evs {
			if !ev.final {
				s.write(ev.stream, ev.data)
				continue
			}
			s.complete(ev)
			if s.terminal != nil {
				s.terminal.end()
			}
			return
		}
	}
}

// write hands one chunk to its io.Writer, else to OnOutput.
func (s *Sandbox) write(stream string, data []byte) {
	if w := s.writers[stream]; w != nil {
		if _, err := w.Write(data); err != nil && s.writeErr == nil {
			s.writeErr = fmt.Errorf("bwrapd: sandbox %s: writing %s: %w", s.id, stream, err)
		}
	} else if s.onOutput != nil {
		s.onOutput(stream, data)
	}
}

func (s *Sandbox) complete(ev event) {
	s.qmu.Lock()
	ctxErr := s.ctxErr
	s.qmu.Unlock()
	var rpcErr *RPCError
	switch {
	case ev.err == nil:
		var r Result
		if err := json.Unmarshal(ev.result, &r); err != nil {
			s.err = fmt.Errorf("bwrapd: decoding sandbox/run result: %w", err)
			break
		}
		s.result = &r
		if s.writeErr != nil {
			s.err = s.writeErr
		} else if s.check && !r.Success() {
			s.err = &ExitError{Result: &r}
		}
	case errors.As(ev.err, &rpcErr) && rpcErr.Code == CodeRequestCancelled:
		cancelled := &CancelledError{Context: ctxErr, Err: ev.err}
		var r Result
		if len(rpcErr.Data) > 0 && json.Unmarshal(rpcErr.Data, &r) == nil && r.Status != "" {
			cancelled.Result, s.result = &r, &r
		}
		s.err = cancelled
	case ctxErr != nil:
		s.err = &CancelledError{Context: ctxErr, Err: ev.err}
	default:
		s.err = ev.err
	}
	s.h.unindex(s)
	close(s.done)
}

// streamsToOnOutput says whether the chunks of o go to RunRequest.OnOutput: Stream(),
// not StreamTo (whose chunks go to its io.Writer).
func streamsToOnOutput(o *Output) bool {
	return o != nil && o.mode == "stream" && o.w == nil
}

// streamWriters are the io.Writers of the outputs req streams to one (see StreamTo),
// and the terminal's. Standard error merged into standard output arrives as "stdout".
func streamWriters(req RunRequest, terminal *terminalOutput) map[string]io.Writer {
	writers := map[string]io.Writer{}
	if terminal != nil {
		writers["terminal"] = terminal
	}
	if req.Stdout != nil && req.Stdout.w != nil {
		writers["stdout"] = req.Stdout.w
	}
	if req.Stderr != nil && req.Stderr.w != nil {
		writers["stderr"] = req.Stderr.w
	}
	return writers
}

// watch cancels the run when ctx ends first.
func (s *Sandbox) watch(ctx context.Context) {
	select {
	case <-s.done:
		return
	case <-ctx.Done():
	}
	s.qmu.Lock()
	s.ctxErr = ctx.Err()
	s.qmu.Unlock()
	t := time.NewTimer(s.h.opts.CancelTimeout)
	defer t.Stop()
	// Within CancelTimeout as a whole: the helper may not be taking its input.
	nctx, cancel := context.WithTimeout(context.Background(), s.h.opts.CancelTimeout)
	defer cancel()
	_ = s.h.NotifyContext(nctx, "$/cancelRequest", map[string]int64{"id": s.requestID})
	select {
	case <-s.done:
	case <-t.C:
		if s.h.takePending(s.requestID) != nil {
			s.finish(nil, fmt.Errorf("bwrapd: no answer to $/cancelRequest for sandbox %s within %v",
				s.id, s.h.opts.CancelTimeout))
		}
	}
}
