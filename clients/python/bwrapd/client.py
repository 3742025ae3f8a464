"""The thread-based client: :class:`Helper` and :class:`Sandbox`.

One helper process, one writer lock, one reader thread that routes responses
by id to futures, one dispatcher thread that delivers streamed output (and the
run responses, so that every ``sandbox/output`` of a run is delivered before
its ``wait()`` returns), and a watcher thread that notices the helper's death
even if some descendant still holds its stdout open.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import signal as _signal
import subprocess
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as _FutureTimeout
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from . import _protocol as P
from .errors import (
    Error,
    HelperDied,
    HelperForked,
    NoSuchSandbox,
    WaitTimeout,
    error_from_response,
)
from .types import ArgvResult, RunResult, SandboxInfo, ServerInfo, StrPath

if TYPE_CHECKING:  # PEP 692 keyword types; nothing of it is needed at run time
    from typing_extensions import Unpack

    from .types import RunOptions

__all__ = ["Helper", "Sandbox", "SandboxInput", "Terminal"]

log = logging.getLogger("bwrapd")


class _Pending:
    __slots__ = ("future", "method", "sandbox")

    def __init__(self, future: "Future[Any]", method: str, sandbox: Optional["Sandbox"]) -> None:
        self.future = future
        self.method = method
        self.sandbox = sandbox


class _Send:
    """One message written from the main thread. A thread of its own writes
    it, so that an exception a signal handler raises in the caller
    (KeyboardInterrupt) cannot cut it in the middle, which would leave half a
    message in the pipe (the helper then refuses the next one too). If the
    caller is interrupted once the thread has begun to write, the message
    still goes out whole and ``on_abandon`` runs once it has; before that, it
    is dropped and never written."""

    __slots__ = ("lock", "finished", "error", "abandoned", "in_flight", "on_abandon", "started", "dropped")

    def __init__(self, on_abandon: Optional[Callable[[], None]] = None) -> None:
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.error: Optional[BaseException] = None
        self.abandoned = False
        self.in_flight = False  # abandoned, but the message was or will be written whole
        self.on_abandon = on_abandon
        self.started = False  # the writing thread has begun to write
        self.dropped = False  # abandoned before that: it writes nothing

    def begin(self) -> bool:
        """Called by the writing thread before it writes: whether to write at all."""
        with self.lock:
            self.started = not self.dropped
            return self.started

    def finish(self, error: Optional[BaseException]) -> None:
        """Called by the writing thread once the write is over."""
        with self.lock:
            self.error = error
            self.finished.set()
            abandoned = self.abandoned
        if abandoned and error is None and self.on_abandon is not None:
            self.on_abandon()

    def abandon(self) -> bool:
        """The caller stops waiting (it was interrupted): whether the message
        was or will be written whole (then ``on_abandon`` runs, or has run).
        Asked again, the same answer, and ``on_abandon`` is not run twice."""
        with self.lock:
            if self.abandoned:
                return self.in_flight
            self.abandoned = True
            if not self.started:
                self.dropped = True  # it will not go out at all
                return False
            if not self.finished.is_set():
                self.in_flight = True
                return True
            went_out = self.in_flight = self.error is None
        if went_out and self.on_abandon is not None:
            threading.Thread(target=self.on_abandon, name="bwrapd-abandon", daemon=True).start()
        return went_out


class Sandbox(P.SandboxBase):
    """A ``sandbox/run`` in flight, returned by :meth:`Helper.start`.

    Use it to signal, suspend, resume or terminate the run, to read its
    streamed output, and to :meth:`wait` for its :class:`RunResult`.
    """

    def __init__(
        self,
        helper: "Helper",
        plan: P.RunPlan,
        check: bool,
        on_output: Optional[P.OutputCallback],
    ) -> None:
        super().__init__(plan, check, on_output)
        self._helper = helper
        self._future: "Future[RunResult]" = Future()
        self._started = threading.Event()
        self._queue: "Optional[queue.SimpleQueue[Any]]" = None if on_output else queue.SimpleQueue()
        #: The command's stdin when the run was started with ``stdin=subprocess.PIPE``, else None.
        self.stdin = SandboxInput(helper, self.sandbox_id) if plan.params.get("stdin") == "stream" else None

    # -- state

    @property
    def returncode(self) -> Optional[int]:
        """Like ``Popen.returncode``: None while running."""
        if not self._future.done() or self._future.exception() is not None:
            return None
        return self._future.result().returncode

    def poll(self) -> Optional[RunResult]:
        """The result if the run has ended, else None (errors are raised)."""
        if not self._future.done():
            return None
        return self.wait()

    def wait(self, timeout: Optional[float] = None, check: Optional[bool] = None) -> RunResult:
        """Wait for the run to end and return its result.

        Raises :class:`WaitTimeout` if ``timeout`` seconds pass first (the
        sandbox keeps running), an :class:`RpcError` subclass if the server
        refused the run, :class:`HelperDied` if the helper died, and
        :class:`SandboxFailed` if ``check`` (default: as given to ``start``)
        and the command did not exit with 0.
        """
        if not self._future.done() and self._helper._in_dispatcher():
            raise RuntimeError("Sandbox.wait() called from an on_output callback would deadlock")
        try:
            result = self._future.result(timeout)
        except _FutureTimeout:
            raise WaitTimeout("sandbox %s still running after %s s" % (self.sandbox_id, timeout)) from None
        return self._check_result(result, check)

    def wait_started(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for the ``sandbox/started`` notification and return the pid.

        Returns None if the run ended without ever starting (setup failure);
        raises the run's error if it was refused or the helper died.
        """
        if not self._started.wait(timeout):
            raise WaitTimeout("sandbox %s not started after %s s" % (self.sandbox_id, timeout))
        return self._started_pid()

    def output(self, timeout: Optional[float] = None) -> Iterator[Tuple[str, bytes]]:
        """Iterate over ``(stream, chunk)`` of the outputs in ``"stream"`` mode,
        in order, until the run ends. ``timeout`` bounds the wait for each
        chunk (:class:`WaitTimeout`). Not available with ``on_output``."""
        if self._queue is None:
            raise RuntimeError("output() is not available when on_output was given")
        q = self._queue
        while True:
            try:
                item = q.get(timeout=timeout)
            except queue.Empty:
                raise WaitTimeout("no output from sandbox %s within %s s" % (self.sandbox_id, timeout)) from None
            if item is P.END:
                q.put(P.END)  # so that a later iteration ends at once too
                return
            yield item

    # -- control

    def signal(self, sig: P.SignalLike, *, timeout: Optional[float] = None) -> bool:
        """Send a signal (name or number) to the command's process group;
        whether it was delivered (see :meth:`Helper.signal`). ``timeout``
        bounds the call, as :meth:`Helper.call`'s (so for every control
        method here and on :class:`Helper`)."""
        return self._helper.signal(self.sandbox_id, sig, timeout=timeout)

    send_signal = signal

    def suspend(self, *, timeout: Optional[float] = None) -> bool:
        """SIGSTOP the command's process group; whether it was delivered."""
        return self._helper.suspend(self.sandbox_id, timeout=timeout)

    def resume(self, *, timeout: Optional[float] = None) -> bool:
        """SIGCONT the command's process group; whether it was delivered."""
        return self._helper.resume(self.sandbox_id, timeout=timeout)

    def terminate(self, grace_ms: Optional[int] = None, *, timeout: Optional[float] = None) -> bool:
        """End the whole sandbox (SIGTERM first when ``grace_ms`` is given);
        :meth:`wait` then returns status ``"signaled"``."""
        return self._helper.terminate(self.sandbox_id, grace_ms, timeout=timeout)

    def kill(self, *, timeout: Optional[float] = None) -> bool:
        """End the whole sandbox at once."""
        return self.terminate(timeout=timeout)

    def cancel(self, *, timeout: Optional[float] = None) -> None:
        """Send ``$/cancelRequest`` for this run (it then fails with
        :class:`RequestCancelled`)."""
        if self.request_id is not None and not self.done():
            self._helper.notify("$/cancelRequest", {"id": self.request_id}, timeout)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        """Leaving the block terminates the run if it is still going, and waits for it."""
        if self.done():
            return
        try:
            self.terminate()
        except NoSuchSandbox:
            pass
        except Error:
            return
        try:
            self._future.result()
        except BaseException:
            pass


class SandboxInput:
    """The standard input of a run started with ``stdin=subprocess.PIPE``
    (``"stream"``): what is written goes to the command's pipe through
    ``sandbox/input``; :meth:`close` ends it (``eof``)."""

    def __init__(self, helper: "Helper", sandbox_id: str) -> None:
        self._helper = helper
        self._sandbox_id = sandbox_id
        self.closed = False

    def write(self, data: P.InputData) -> int:
        """Send ``data`` (str as UTF-8) and wait until the command has taken
        it; the number of bytes that went in, fewer when the command closed
        its stdin or ended first."""
        if self.closed:
            raise ValueError("write to the closed stdin of sandbox %s" % self._sandbox_id)
        try:
            return self._helper.input(self._sandbox_id, data)
        except NoSuchSandbox:
            return 0  # the run is over

    def close(self) -> None:
        """Close the pipe: the command reads end of file. Again: nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            self._helper.input(self._sandbox_id, b"", eof=True)
        except NoSuchSandbox:
            pass  # the run is over: nothing left to close

    def __enter__(self) -> "SandboxInput":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Terminal(Sandbox):
    """A run on a pseudo-terminal, returned by :meth:`Helper.open_terminal`:
    :meth:`write` types into it, iterating over it yields what the command
    prints (bytes, as a terminal emulator gets them), :meth:`resize` changes
    its size, and :meth:`wait` returns the :class:`RunResult` (its ``stdout``
    and ``stderr`` are None). ``signal``, ``suspend``, ``resume`` and a
    grace-period ``terminate`` reach the terminal's foreground job."""

    _kind = "Terminal"

    def write(self, data: P.InputData) -> int:
        """Type ``data`` (``"\\x03"`` is Ctrl-C, ``"\\x04"`` ends a line-mode
        read); the number of bytes that went in (fewer once the run ended)."""
        try:
            return self._helper.input(self.sandbox_id, data)
        except NoSuchSandbox:
            return 0  # the run is over

    def resize(self, rows: int, cols: int) -> bool:
        """Set the terminal's size (the foreground job gets SIGWINCH); False
        once the run has ended."""
        try:
            return self._helper.resize(self.sandbox_id, rows, cols)
        except NoSuchSandbox:
            return False  # the run is over

    def chunks(self, timeout: Optional[float] = None) -> Iterator[bytes]:
        """What the command prints, chunk by chunk, until the run ends;
        ``timeout`` bounds the wait for each chunk (:class:`WaitTimeout`)."""
        for _, chunk in self.output(timeout):
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()


class Helper:
    """A running ``bwrapd`` helper process.

    ``Helper(path=None)`` spawns it (``path``, else ``$BWRAPD``, else
    ``bwrapd`` on ``PATH``; :class:`HelperNotFound` when there is none) in a
    session of its own, sends ``initialize`` and keeps the result in
    :attr:`server_info`. Use it as a context manager, or call :meth:`close`.
    Every method is thread-safe.
    """

    def __init__(
        self,
        path: Optional[StrPath] = None,
        *,
        args: Sequence[str] = (),
        env: Optional[Mapping[str, str]] = None,
        initialize: bool = True,
        client_name: str = P.CLIENT_NAME,
        init_timeout: Optional[float] = 120.0,
        on_notification: Optional[Callable[[str, Any], Any]] = None,
    ) -> None:
        self.path = os.fspath(path) if path is not None else P.default_helper_path()
        self.server_info: Optional[ServerInfo] = None
        self._on_notification = on_notification
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: Dict[Any, _Pending] = {}
        self._sandboxes: Dict[str, Sandbox] = {}
        self._dead: Optional[Tuple[str, Optional[int], List[str]]] = None
        self._closing = False
        self._closed = False
        self._owner_pid = os.getpid()
        self._forked_from: Optional[int] = None  # in a fork()ed child: the pid of the process that owns the helper
        self._stderr = P.StderrTail()
        self._capture_bytes = 0  # the largest captureLimitBytes of a run so far (see P.line_limit)
        self._dispatch: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        try:
            self._proc = subprocess.Popen(
                [self.path, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=dict(env) if env is not None else None,
            )
        except OSError as exc:
            raise P.spawn_error(self.path, exc) from exc
        pid = self._proc.pid
        P.disown_after_fork(self)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name="bwrapd-stderr-%d" % pid, daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="bwrapd-dispatch-%d" % pid, daemon=True)
        self._reader = threading.Thread(target=self._read_stdout, name="bwrapd-reader-%d" % pid, daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="bwrapd-watch-%d" % pid, daemon=True)
        # Started in this order: each one only ever joins threads started before it.
        for thread in (self._stderr_thread, self._dispatcher, self._reader, self._watcher):
            thread.start()
        if initialize:
            try:
                self.initialize(client_name=client_name, timeout=init_timeout)
            except BaseException:
                self._closed = True
                self._closing = True
                self.kill()
                self._close_stdin()
                try:
                    self._proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    pass
                self._join_threads()
                raise

    # ------------------------------------------------------------ properties

    @property
    def pid(self) -> int:
        """The helper process id."""
        return self._proc.pid

    @property
    def returncode(self) -> Optional[int]:
        """The helper's exit status, None while it runs (and in a child made
        by fork(), which cannot tell)."""
        if self._forked_from is not None:
            return None
        return self._proc.poll()

    @property
    def alive(self) -> bool:
        """True until the helper has exited or closed its output."""
        return self._dead is None and self._proc.poll() is None

    def stderr_tail(self) -> List[str]:
        """The helper's last stderr lines (up to 50)."""
        return self._stderr.lines()

    def __repr__(self) -> str:
        return "<Helper pid=%d %s>" % (self._proc.pid, "alive" if self.alive else "dead")

    # ------------------------------------------------------------ lifecycle

    def initialize(self, client_name: str = P.CLIENT_NAME, timeout: Optional[float] = None) -> ServerInfo:
        """Send ``initialize`` (done by the constructor) and keep the answer
        in :attr:`server_info`."""
        result = self.call(
            "initialize",
            P.initialize_params(client_name),
            timeout=timeout,
        )
        self.server_info = ServerInfo.from_wire(result)
        return self.server_info

    def shutdown(self, timeout: Optional[float] = None) -> int:
        """Refuse new sandboxes, terminate the running ones; the count."""
        result = self.call("shutdown", None, timeout=timeout)
        return P.terminated_count(result)

    def close(self, timeout: float = 10.0) -> Optional[int]:
        """``shutdown``, ``exit``, close stdin and wait; the helper is killed
        if it has not exited ``timeout`` seconds after that, or if it has not
        taken ``shutdown`` and ``exit`` within ``timeout`` (it no longer reads
        its input). Returns its exit status. Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return self._proc.returncode
            self._closed = True
        deadline = time.monotonic() + timeout
        try:
            if self._dead is None:
                # From a thread of its own: a helper that no longer reads its
                # input leaves a write stuck (another call's holds the write
                # lock), and that must not hold close() past its timeout.
                polite = threading.Thread(target=self._shutdown_and_exit, args=(timeout,),
                                          name="bwrapd-close-%d" % self._proc.pid, daemon=True)
                polite.start()
                polite.join(timeout)
                if polite.is_alive():
                    log.warning("bwrapd helper %d does not read its input; killing it", self._proc.pid)
                    self.kill()  # the stuck writes then fail (broken pipe)
            self._closing = True
            # (a moment at least: after a kill the stuck write fails at once)
            if not self._close_stdin(max(1.0, deadline - time.monotonic())):
                self.kill()
            try:
                self._proc.wait(timeout=max(0.1, min(deadline - time.monotonic(), 5.0)))
            except subprocess.TimeoutExpired:
                log.warning("bwrapd helper %d did not exit; killing it", self._proc.pid)
                self.kill()
                self._proc.wait()
        finally:
            self._join_threads()
        return self._proc.returncode

    def _shutdown_and_exit(self, timeout: float) -> None:
        try:
            self.shutdown(timeout=timeout)
        except (Error, OSError, ValueError):
            pass
        self._closing = True
        try:
            self.notify("exit")
        except (Error, OSError, ValueError):
            pass

    def kill(self) -> None:
        """SIGKILL the helper (its sandboxes die with it). Nothing in a child
        made by fork(): the helper is its parent's."""
        if self._forked_from is not None:
            return
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, _signal.SIGKILL)
            except OSError:
                try:
                    self._proc.kill()
                except OSError:
                    pass

    def _close_stdin(self, timeout: float = -1) -> bool:
        """Close the helper's stdin; False when a write stuck longer than
        ``timeout`` seconds kept it (closing a file another thread writes to
        would wait for that write too)."""
        if not self._write_lock.acquire(timeout=timeout):
            return False
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        finally:
            self._write_lock.release()
        return True

    def _join_threads(self) -> None:
        _join(self._watcher, 5.0)
        _join(self._reader, 2.0)
        self._dispatch.put(None)
        _join(self._dispatcher, 5.0)
        _join(self._stderr_thread, 1.0)
        # Close our ends of the pipes once nothing reads them any more.
        for thread, stream in ((self._reader, self._proc.stdout), (self._stderr_thread, self._proc.stderr)):
            if stream is not None and not thread.is_alive():
                try:
                    stream.close()
                except OSError:
                    pass

    def __enter__(self) -> "Helper":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ raw calls

    def _dead_error(self) -> HelperDied:
        assert self._dead is not None
        if self._forked_from is not None:
            return HelperForked(self._dead[0])
        return P.helper_died(self._dead)

    def _disown_after_fork(self) -> None:
        """In the child of a fork(): this helper is the parent's. Every call
        raises HelperForked; the child's copies of the helper's pipes are
        released (their descriptors now name /dev/null), so that the child
        neither reads the parent's answers nor keeps the helper's stdin open
        once the parent closes it. Runs in the child only, single-threaded."""
        self._forked_from = self._owner_pid
        self._lock = threading.Lock()  # another thread of the parent may have held them at fork()
        self._write_lock = threading.Lock()
        self._closing = self._closed = True
        self._dead = (P.forked_message("Helper", self._proc.pid, self._forked_from), None, [])
        self._pending.clear()
        self._sandboxes.clear()
        P.release_pipes([self._proc.stdin, self._proc.stdout, self._proc.stderr])

    def _write(self, message: Mapping[str, Any], send: Optional[_Send] = None,
               timeout: Optional[float] = None) -> None:
        """Write one message. With a ``timeout``, or in the main thread, from a
        thread of its own, which the caller stops waiting for after ``timeout``
        seconds (WaitTimeout) or when interrupted: a helper that stops reading
        holds up every write, one at a time, and a message cut in the middle
        would break the next one. One still waiting for its turn is then
        dropped; one that began to go out goes out whole (see _Send)."""
        data = P.encode_message(message)
        method = str(message.get("method") or "answer")
        P.check_message_size(data, P.max_message_bytes(self.server_info), method)
        if timeout is None and threading.current_thread() is not threading.main_thread():
            self._write_data(data)  # signal handlers run only in the main thread
            return
        send = send if send is not None else _Send()
        thread = threading.Thread(target=self._write_in_thread, args=(data, send),
                                  name="bwrapd-write-%d" % self._proc.pid, daemon=True)
        thread.start()
        try:
            finished = send.finished.wait(timeout)
        except BaseException:
            send.abandon()
            raise
        if not finished:
            send.abandon()
            raise WaitTimeout("could not write %s to the bwrapd helper within %s s (it does not read its input)"
                              % (method, timeout))
        if send.error is not None:
            raise send.error

    def _write_in_thread(self, data: bytes, send: _Send) -> None:
        try:
            if self._write_data(data, send):
                send.finish(None)
            else:  # abandoned before a byte went out: nothing written, nothing to cancel
                send.finish(InterruptedError("abandoned before it was written"))
        except BaseException as exc:
            send.finish(exc)

    def _write_data(self, data: bytes, send: Optional[_Send] = None) -> bool:
        """Write ``data`` once it is this writer's turn; False when ``send``
        was abandoned before that (nothing written)."""
        with self._write_lock:
            if send is not None and not send.begin():
                return False
            if self._dead is not None:
                raise self._dead_error()
            try:
                stdin = self._proc.stdin
                assert stdin is not None
                stdin.write(data)
                stdin.flush()
                return True
            except (OSError, ValueError):
                pass  # broken pipe or closed: the helper is gone
        # Let the reader/watcher record how it died, then report that.
        _join(self._watcher, 5.0)
        if self._dead is None:
            self._fail_all(P.WRITE_FAILED)
        raise self._dead_error()

    def _submit(self, method: str, params: Any, sandbox: Optional[Sandbox] = None,
                timeout: Optional[float] = None) -> Tuple[int, "Future[Any]"]:
        future: "Future[Any]" = sandbox._future if sandbox is not None else Future()
        with self._lock:
            if self._dead is not None:
                raise self._dead_error()
            request_id = next(self._ids)
            if sandbox is not None:
                if sandbox.sandbox_id in self._sandboxes:
                    raise P.sandbox_id_in_use(sandbox.sandbox_id)
                self._capture_bytes = max(self._capture_bytes, P.capture_bytes(params))
                sandbox.request_id = request_id
                self._sandboxes[sandbox.sandbox_id] = sandbox
            self._pending[request_id] = _Pending(future, method, sandbox)
        message = P.request_message(request_id, method, params)
        # Interrupted (KeyboardInterrupt) while a run goes out, the run is not
        # forgotten: it stays pending, and once the whole message is written
        # it is cancelled ($/cancelRequest), so its sandbox ends and its answer
        # finishes the Sandbox (RequestCancelled).
        send = _Send(lambda: self._cancel_quietly(request_id)) if sandbox is not None else _Send()
        try:
            self._write(message, send, timeout)
        except BaseException:
            # The interrupt may come after the write's end, out of _write's wait (a signal
            # delivered to the writing thread runs its handler only when the main thread
            # next looks): whether the run went out is still the write's to say.
            if sandbox is None or not send.abandon():
                with self._lock:
                    self._pending.pop(request_id, None)
                    if sandbox is not None and self._sandboxes.get(sandbox.sandbox_id) is sandbox:
                        del self._sandboxes[sandbox.sandbox_id]
            raise
        return request_id, future

    def _cancel_quietly(self, request_id: int) -> None:
        try:
            self.notify("$/cancelRequest", {"id": request_id})
        except (Error, OSError, ValueError):
            pass  # the helper is gone: the run failed with it

    def call(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        """Send a request and return its result (raising its error).
        ``timeout`` bounds the whole call, the wait for the helper to take the
        request included (WaitTimeout); a request that began to go out by then
        still goes out whole, and may take effect."""
        # Fine from an on_output callback too: the reader thread, not the
        # dispatcher, completes plain calls.
        deadline = None if timeout is None else time.monotonic() + timeout
        request_id, future = self._submit(method, params, timeout=timeout)
        try:
            return future.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except _FutureTimeout:
            with self._lock:
                self._pending.pop(request_id, None)
            raise WaitTimeout("no answer to %s within %s s" % (method, timeout)) from None

    def notify(self, method: str, params: Any = None, timeout: Optional[float] = None) -> None:
        """Send a notification; ``timeout`` bounds the wait for the helper to
        take it (WaitTimeout)."""
        self._write(P.notification_message(method, params), timeout=timeout)

    # ------------------------------------------------------------ sandboxes

    def start(
        self,
        command: Sequence[StrPath],
        *,
        root: Optional[StrPath] = None,
        timeout: Optional[float] = None,
        sandbox_id: Optional[str] = None,
        on_output: Optional[P.OutputCallback] = None,
        check: bool = False,
        **options: "Unpack[RunOptions]",
    ) -> Sandbox:
        """Send ``sandbox/run`` without waiting; returns a :class:`Sandbox`.

        Options (:class:`RunOptions`) are the snake_case names of the sandbox/run params
        (``read_only_root``, ``mounts=[Mount(...)]``, ``stdout="stream"``...).
        ``timeout`` is in seconds (``timeoutMs``). ``on_output(stream, data)``
        is called, in order, from the helper's dispatcher thread for
        ``"stream"`` outputs; without it, use :meth:`Sandbox.output`.
        """
        plan = P.prepare_run(command, root, sandbox_id, timeout, dict(options), "start")
        P.check_on_output(plan, on_output)
        sandbox = Sandbox(self, plan, check, on_output)
        self._submit("sandbox/run", plan.params, sandbox)
        return sandbox

    def run(
        self,
        command: Sequence[StrPath],
        *,
        root: Optional[StrPath] = None,
        check: bool = False,
        timeout: Optional[float] = None,
        sandbox_id: Optional[str] = None,
        on_output: Optional[P.OutputCallback] = None,
        **options: "Unpack[RunOptions]",
    ) -> RunResult:
        """Run ``command`` in a sandbox and wait for its :class:`RunResult`
        (see :meth:`start` for the options). With ``check=True`` a run that
        does not exit with 0 raises :class:`SandboxFailed`. A
        KeyboardInterrupt while waiting cancels the run."""
        plan = P.prepare_run(command, root, sandbox_id, timeout, dict(options), "run")
        P.check_on_output(plan, on_output)
        sandbox = Sandbox(self, plan, check, on_output)
        self._submit("sandbox/run", plan.params, sandbox)
        try:
            return sandbox.wait()
        except KeyboardInterrupt:
            try:
                sandbox.cancel()
            except Exception:
                pass
            raise

    def open_terminal(
        self,
        command: Sequence[StrPath],
        *,
        rows: int = 24,
        cols: int = 80,
        term: Optional[str] = None,
        root: Optional[StrPath] = None,
        timeout: Optional[float] = None,
        sandbox_id: Optional[str] = None,
        on_output: Optional[P.OutputCallback] = None,
        check: bool = False,
        **options: "Unpack[RunOptions]",
    ) -> Terminal:
        """Start ``command`` on a new pseudo-terminal of ``rows`` x ``cols``
        (``TERM`` is ``term``, default ``xterm-256color``) and return its
        :class:`Terminal` at once. Options as for :meth:`start`, except
        ``stdin``, ``stdout`` and ``stderr`` (the terminal is all three);
        ``on_output(stream, data)`` takes the place of iterating."""
        run_options = P.terminal_options(rows, cols, term, dict(options))
        plan = P.prepare_run(command, root, sandbox_id, timeout, run_options, "open_terminal")
        P.check_on_output(plan, on_output)
        terminal = Terminal(self, plan, check, on_output)
        self._submit("sandbox/run", plan.params, terminal)
        return terminal

    def input(self, sandbox_id: str, data: P.InputData, eof: bool = False) -> int:
        """``sandbox/input``: write ``data`` (str as UTF-8) to a run's stdin
        stream or terminal, in pieces each answered before the next; with
        ``eof`` close the stdin stream after it. The number of bytes that went
        in: fewer when the pipe closed (the command ended) first."""
        total = 0
        for params, size in P.input_pieces(sandbox_id, data, eof):
            went_in = P.written(self.call("sandbox/input", params))
            total += went_in
            if went_in < size:
                break
        return total

    def resize(self, sandbox_id: str, rows: int, cols: int) -> bool:
        """``sandbox/resize``: set a terminal run's size; False once it ended."""
        return P.delivered(self.call("sandbox/resize", P.resize_params(sandbox_id, rows, cols)))

    def signal(self, sandbox_id: str, sig: P.SignalLike, *, timeout: Optional[float] = None) -> bool:
        """Send ``sig`` (``"SIGTERM"``, ``signal.SIGINT``, 2...) to the process
        group of a sandbox's command. True when it was delivered (or kept for a
        sandbox still starting), False when the command had already ended."""
        return P.delivered(self.call("sandbox/signal", P.signal_params(sandbox_id, sig), timeout))

    def suspend(self, sandbox_id: str, *, timeout: Optional[float] = None) -> bool:
        """SIGSTOP a sandbox's command; whether it was delivered."""
        return P.delivered(self.call("sandbox/suspend", {"sandboxId": sandbox_id}, timeout))

    def resume(self, sandbox_id: str, *, timeout: Optional[float] = None) -> bool:
        """SIGCONT a sandbox's command; whether it was delivered."""
        return P.delivered(self.call("sandbox/resume", {"sandboxId": sandbox_id}, timeout))

    def terminate(self, sandbox_id: str, grace_ms: Optional[int] = None, *,
                  timeout: Optional[float] = None) -> bool:
        """End a whole sandbox: SIGKILL at once, or SIGTERM and SIGKILL
        ``grace_ms`` later. Whether the sandbox was still there to end."""
        return P.delivered(self.call("sandbox/terminate", P.terminate_params(sandbox_id, grace_ms), timeout))

    def argv(self, command: Sequence[StrPath], *, root: Optional[StrPath] = None,
             **options: "Unpack[RunOptions]") -> ArgvResult:
        """``sandbox/argv``: what a run with these arguments would execute
        (checked like a run, but nothing runs)."""
        plan = P.prepare_run(command, root, None, None, dict(options), "argv")
        return P.argv_result(self.call("sandbox/argv", plan.params))

    def list(self) -> List[SandboxInfo]:
        """``sandbox/list``: the running sandboxes."""
        return P.sandbox_infos(self.call("sandbox/list"))

    def discover(self) -> Dict[str, Any]:
        """``rpc.discover``: the server's OpenRPC document."""
        result: Dict[str, Any] = self.call("rpc.discover")
        return result

    # ------------------------------------------------------------ threads

    def _in_dispatcher(self) -> bool:
        return threading.current_thread() is self._dispatcher

    def _read_stdout(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        try:
            while True:
                line = P.read_line(stdout.readline, self._line_limit)
                if not line:
                    break
                for item in P.decode_line(line):
                    try:
                        self._handle(item)
                    except Exception:
                        log.exception("cannot handle message from bwrapd: %r", item)
        except P.LineTooLong as exc:
            # Not an answer but a broken helper: stop here, as if it had died.
            log.error("%s", exc)
            self._fail_all(str(exc))
            self.kill()
        except (OSError, ValueError):
            pass
        finally:
            self._after_eof()

    def _line_limit(self) -> int:
        return P.line_limit(self.server_info, self._capture_bytes)

    def _after_eof(self) -> None:
        # stdout is closed: the helper is gone or going. Give it a moment to
        # exit so that its exit status and last stderr lines can be reported.
        try:
            self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
        self._fail_all("the bwrapd helper closed its stdout")

    def _watch(self) -> None:
        self._proc.wait()
        # Normally the reader sees end of file right away; if a descendant
        # still holds the pipe, do not let the callers hang on it.
        _join(self._reader, 1.0)
        self._fail_all("the bwrapd helper exited")

    def _read_stderr(self) -> None:
        stderr = self._proc.stderr
        assert stderr is not None
        # In pieces, not by line: a line has no limit, and a helper that floods
        # stderr without a newline must not grow this process without bound.
        read: Callable[[int], bytes] = getattr(stderr, "read1", stderr.read)
        try:
            while True:
                chunk = read(64 * 1024)
                if not chunk:
                    break
                self._stderr.feed(chunk)
        except (OSError, ValueError):
            pass
        self._stderr.flush()

    def _fail_all(self, reason: str) -> None:
        _join(self._stderr_thread, 0.5)
        returncode = self._proc.poll()
        with self._lock:
            if self._dead is not None:
                return
            self._dead = P.death(reason, self._closing, returncode, self._stderr.lines())
            pending = list(self._pending.values())
            self._pending.clear()
            self._sandboxes.clear()
        for item in pending:
            exc = self._dead_error()
            if item.sandbox is not None:
                item.sandbox._finish(exc=exc)
            else:
                P.settle(item.future, exc=exc)
        self._dispatch.put(None)

    def _handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            log.warning("ignoring non-object message from bwrapd: %r", message)
            return
        method = message.get("method")
        if isinstance(method, str):
            self._handle_notification(method, message.get("params"), message)
            return
        if "id" not in message:
            log.warning("ignoring message without id or method: %r", message)
            return
        with self._lock:
            pending = self._pending.pop(message["id"], None) if _hashable(message["id"]) else None
        if pending is None:
            if "error" in message:
                log.warning("bwrapd error not tied to a request: %r", message.get("error"))
            return
        if pending.sandbox is not None:
            self._dispatch.put(("finish", pending.sandbox, message))
        elif "error" in message:
            P.settle(pending.future, exc=error_from_response(message["error"]))
        else:
            P.settle(pending.future, message.get("result"))

    def _handle_notification(self, method: str, params: Any, message: Dict[str, Any]) -> None:
        if "id" in message:  # a request from the server: we serve none
            try:
                self._write(P.method_not_found(message["id"], method))
            except Error:
                pass
            return
        if not isinstance(params, dict):
            params = {}
        if method == "sandbox/started":
            with self._lock:
                sandbox = self._sandboxes.get(params.get("sandboxId"))
            if sandbox is not None:
                sandbox._mark_started(params.get("pid"))
        elif method == "sandbox/output":
            with self._lock:
                sandbox = self._sandboxes.get(params.get("sandboxId"))
            if sandbox is not None:
                self._dispatch.put(("output", sandbox, params))
        if self._on_notification is not None:
            self._dispatch.put(("notify", method, params))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._dispatch.get()
            if item is None:
                if self._dead is not None or self._closed:
                    return
                continue
            try:
                kind = item[0]
                if kind == "output":
                    _, sandbox, params = item
                    sandbox._deliver(str(params.get("stream")), P.decode_output_chunk(params))
                elif kind == "finish":
                    _, sandbox, message = item
                    self._finish_run(sandbox, message)
                elif kind == "notify" and self._on_notification is not None:
                    self._on_notification(item[1], item[2])
            except Exception:
                log.exception("bwrapd dispatcher: error handling %r", item[0])

    def _finish_run(self, sandbox: Sandbox, message: Dict[str, Any]) -> None:
        with self._lock:
            if self._sandboxes.get(sandbox.sandbox_id) is sandbox:
                del self._sandboxes[sandbox.sandbox_id]
        P.finish_run(sandbox, message)


def _join(thread: threading.Thread, timeout: float) -> None:
    if thread is not threading.current_thread() and thread.ident is not None:
        thread.join(timeout)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
        return True
    except TypeError:
        return False
