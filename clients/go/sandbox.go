package bwrapd

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Sandbox is a sandbox/run in progress, returned by (*Helper).Start.
type Sandbox struct {
	h         *Helper
	id        string
	requestID int64
	indexed   bool // registered under id in h.bySandbox
	onOutput  func(stream string, data []byte)

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
// A run that ended is not an error: check Result.Status and Result.ExitCode.
// Errors are *RPCError (see the Err* sentinels), *HelperExitedError, or ctx errors.
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
func (h *Helper) Start(ctx context.Context, req RunRequest) (*Sandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.SandboxID == "" {
		req.SandboxID = newSandboxID()
	}
	sb := &Sandbox{
		h:        h,
		id:       req.SandboxID,
		onOutput: req.OnOutput,
		started:  make(chan struct{}),
		done:     make(chan struct{}),
		qsig:     make(chan struct{}, 1),
	}
	id, err := h.register(&call{run: sb}, sb)
	if err != nil {
		return nil, err
	}
	go sb.deliver()
	if err := h.send(outMessage{JSONRPC: "2.0", ID: &id, Method: "sandbox/run", Params: req}); err != nil {
		if h.takePending(id) != nil {
			sb.finish(nil, err)
		}
		<-sb.done
		return nil, sb.err
	}
	go sb.watch(ctx)
	select {
	case <-sb.started:
	case <-sb.done:
		if sb.err != nil {
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
// has been delivered to OnOutput before Wait returns.
func (s *Sandbox) Wait() (*Result, error) {
	<-s.done
	return s.result, s.err
}

// Signal sends sig to the sandboxed command's process group.
func (s *Sandbox) Signal(ctx context.Context, sig string) (bool, error) {
	return s.h.Signal(ctx, s.id, sig)
}

// Suspend stops the sandboxed command (SIGSTOP).
func (s *Sandbox) Suspend(ctx context.Context) error { return s.h.Suspend(ctx, s.id) }

// Resume continues it (SIGCONT).
func (s *Sandbox) Resume(ctx context.Context) error { return s.h.Resume(ctx, s.id) }

// Terminate ends the whole sandbox, with SIGTERM first when grace > 0.
func (s *Sandbox) Terminate(ctx context.Context, grace time.Duration) error {
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
				if s.onOutput != nil {
					s.onOutput(ev.stream, ev.data)
				}
				continue
			}
			s.complete(ev)
			return
		}
	}
}

func (s *Sandbox) complete(ev event) {
	if ev.err == nil {
		var r Result
		if err := json.Unmarshal(ev.result, &r); err != nil {
			s.err = fmt.Errorf("bwrapd: decoding sandbox/run result: %w", err)
		} else {
			s.result = &r
		}
	} else {
		s.err = ev.err
	}
	s.qmu.Lock()
	ctxErr := s.ctxErr
	s.qmu.Unlock()
	if ctxErr != nil && s.err != nil {
		s.err = &cancelledError{ctxErr: ctxErr, cause: s.err}
	}
	s.h.unindex(s)
	close(s.done)
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
	_ = s.h.Notify("$/cancelRequest", map[string]int64{"id": s.requestID})
	t := time.NewTimer(s.h.opts.CancelTimeout)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		if s.h.takePending(s.requestID) != nil {
			s.finish(nil, fmt.Errorf("bwrapd: no answer to $/cancelRequest for sandbox %s within %v",
				s.id, s.h.opts.CancelTimeout))
		}
	}
}
