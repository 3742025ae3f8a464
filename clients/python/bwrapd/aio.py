"""The asyncio client: :class:`AsyncHelper` and :class:`AsyncSandbox`.

Built on asyncio subprocess streams: one reader task routes responses by id
to futures and delivers notifications inline (so a run's streamed output is
always delivered before its ``wait()`` returns), a stderr task keeps the
helper's last lines, and a watcher task notices the helper's death.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal as _signal
from typing import (TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar)

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

__all__ = ["AsyncHelper", "AsyncSandbox", "AsyncSandboxInput", "AsyncTerminal"]

log = logging.getLogger("bwrapd")

#: The size of the pieces a long line from the helper is read in (asyncio's
#: StreamReader limit): a line has no limit of its own (a captured output of
#: up to 1 GiB is some 1.4 GiB of base64 on one line).
STREAM_LIMIT = 8 * 1024 * 1024

_T = TypeVar("_T")


async def _read_line(stream: asyncio.StreamReader, limit: Callable[[], int]) -> bytes:
    """The next line (with its newline; without it at the end of input, b""
    at the end), read in pieces of the stream's limit; P.LineTooLong once it
    is over ``limit()`` bytes without its end."""
    pieces = []
    size = 0
    while True:
        try:
            pieces.append(await stream.readuntil(b"\n"))
            break
        except asyncio.LimitOverrunError as exc:  # no newline within the limit yet: take what is there
            pieces.append(await stream.readexactly(exc.consumed))
            size += exc.consumed
            if size > limit():
                raise P.LineTooLong(size, limit()) from None
        except asyncio.IncompleteReadError as exc:  # end of input
            pieces.append(exc.partial)
            break
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


async def _bounded(write: Awaitable[_T], timeout: Optional[float], method: str) -> _T:
    """``write`` (one that sends a message), given up after ``timeout``
    seconds (WaitTimeout): a helper that stops reading holds up every write,
    one at a time. A message that began to go out by then goes out whole: it
    is in the pipe transport's buffer."""
    try:
        return await asyncio.wait_for(write, timeout)
    except asyncio.TimeoutError:
        raise WaitTimeout("could not write %s to the bwrapd helper within %s s (it does not read its input)"
                          % (method, timeout)) from None


def _retrieve(future: "asyncio.Future[Any]") -> None:
    """Mark a failure as seen: a call that nobody awaits any more (timed
    out, or raised before it was sent) must not warn at garbage collection."""
    if not future.cancelled():
        future.exception()


class AsyncSandbox(P.SandboxBase):
    """A ``sandbox/run`` in flight, returned by :meth:`AsyncHelper.start`."""

    _kind = "AsyncSandbox"

    def __init__(
        self,
        helper: "AsyncHelper",
        plan: P.RunPlan,
        check: bool,
        on_output: Optional[P.OutputCallback],
    ) -> None:
        super().__init__(plan, check, on_output)
        self._helper = helper
        self._future: "asyncio.Future[RunResult]" = asyncio.get_running_loop().create_future()
        # A failure nobody waited for is not worth a "never retrieved" warning.
        self._future.add_done_callback(_retrieve)
        self._started = asyncio.Event()
        self._queue: "Optional[asyncio.Queue[Any]]" = None if on_output else asyncio.Queue()
        #: The command's stdin when the run was started with ``stdin=subprocess.PIPE``, else None.
        self.stdin = AsyncSandboxInput(helper, self.sandbox_id) if plan.params.get("stdin") == "stream" else None

    async def wait(self, timeout: Optional[float] = None, check: Optional[bool] = None) -> RunResult:
        """Wait for the result; see :meth:`bwrapd.Sandbox.wait`."""
        try:
            result = await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except asyncio.TimeoutError:
            raise WaitTimeout("sandbox %s still running after %s s" % (self.sandbox_id, timeout)) from None
        return self._check_result(result, check)

    async def wait_started(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for ``sandbox/started``; the pid, or None if it never started."""
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
        except asyncio.TimeoutError:
            raise WaitTimeout("sandbox %s not started after %s s" % (self.sandbox_id, timeout)) from None
        return self._started_pid()

    async def output(self, timeout: Optional[float] = None) -> AsyncIterator[Tuple[str, bytes]]:
        """``async for stream, chunk in sandbox.output():`` until the run ends."""
        if self._queue is None:
            raise RuntimeError("output() is not available when on_output was given")
        q = self._queue
        while True:
            try:
                item = await asyncio.wait_for(q.get(), timeout)
            except asyncio.TimeoutError:
                raise WaitTimeout("no output from sandbox %s within %s s" % (self.sandbox_id, timeout)) from None
            if item is P.END:
                q.put_nowait(P.END)
                return
            yield item

    async def signal(self, sig: P.SignalLike, *, timeout: Optional[float] = None) -> bool:
        """Send a signal to the command's process group; whether it was delivered."""
        return await self._helper.signal(self.sandbox_id, sig, timeout=timeout)

    send_signal = signal

    async def suspend(self, *, timeout: Optional[float] = None) -> bool:
        """SIGSTOP the command's process group; whether it was delivered."""
        return await self._helper.suspend(self.sandbox_id, timeout=timeout)

    async def resume(self, *, timeout: Optional[float] = None) -> bool:
        """SIGCONT the command's process group; whether it was delivered."""
        return await self._helper.resume(self.sandbox_id, timeout=timeout)

    async def terminate(self, grace_ms: Optional[int] = None, *, timeout: Optional[float] = None) -> bool:
        """End the whole sandbox (SIGTERM first when ``grace_ms`` is given)."""
        return await self._helper.terminate(self.sandbox_id, grace_ms, timeout=timeout)

    async def kill(self, *, timeout: Optional[float] = None) -> bool:
        """End the whole sandbox at once."""
        return await self.terminate(timeout=timeout)

    async def cancel(self, *, timeout: Optional[float] = None) -> None:
        """Send ``$/cancelRequest`` for this run."""
        if self.request_id is not None and not self.done():
            await self._helper.notify("$/cancelRequest", {"id": self.request_id}, timeout)

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.done():
            return
        try:
            await self.terminate()
        except NoSuchSandbox:
            pass
        except Error:
            return
        try:
            await asyncio.shield(self._future)
        except Exception:
            pass


class AsyncSandboxInput:
    """The asyncio twin of :class:`bwrapd.SandboxInput`: ``await
    sandbox.stdin.write(data)``, ``await sandbox.stdin.close()``."""

    def __init__(self, helper: "AsyncHelper", sandbox_id: str) -> None:
        self._helper = helper
        self._sandbox_id = sandbox_id
        self.closed = False

    async def write(self, data: P.InputData) -> int:
        """See :meth:`bwrapd.SandboxInput.write`."""
        if self.closed:
            raise ValueError("write to the closed stdin of sandbox %s" % self._sandbox_id)
        try:
            return await self._helper.input(self._sandbox_id, data)
        except NoSuchSandbox:
            return 0  # the run is over

    async def close(self) -> None:
        """See :meth:`bwrapd.SandboxInput.close`."""
        if self.closed:
            return
        self.closed = True
        try:
            await self._helper.input(self._sandbox_id, b"", eof=True)
        except NoSuchSandbox:
            pass


class AsyncTerminal(AsyncSandbox):
    """The asyncio twin of :class:`bwrapd.Terminal`, returned by
    :meth:`AsyncHelper.open_terminal`: ``await write()``, ``await resize()``,
    ``async for chunk in terminal``, ``await wait()``."""

    _kind = "AsyncTerminal"

    async def write(self, data: P.InputData) -> int:
        """See :meth:`bwrapd.Terminal.write`."""
        try:
            return await self._helper.input(self.sandbox_id, data)
        except NoSuchSandbox:
            return 0  # the run is over

    async def resize(self, rows: int, cols: int) -> bool:
        """See :meth:`bwrapd.Terminal.resize`."""
        try:
            return await self._helper.resize(self.sandbox_id, rows, cols)
        except NoSuchSandbox:
            return False  # the run is over

    async def chunks(self, timeout: Optional[float] = None) -> AsyncIterator[bytes]:
        """See :meth:`bwrapd.Terminal.chunks`."""
        async for _, chunk in self.output(timeout):
            yield chunk

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()


class AsyncHelper:
    """The asyncio twin of :class:`bwrapd.Helper`::

        async with AsyncHelper() as helper:
            result = await helper.run(["echo", "hi"])

    or ``helper = await AsyncHelper.create()`` ... ``await helper.close()``.
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
        self._args = list(args)
        self._env = dict(env) if env is not None else None
        self._initialize = initialize
        self._client_name = client_name
        self._init_timeout = init_timeout
        self._on_notification = on_notification
        self._ids = itertools.count(1)
        self._pending: Dict[Any, Tuple["asyncio.Future[Any]", Optional[AsyncSandbox]]] = {}
        self._sandboxes: Dict[str, AsyncSandbox] = {}
        self._dead: Optional[Tuple[str, Optional[int], List[str]]] = None
        self._closing = False
        self._closed = False
        self._owner_pid = os.getpid()
        self._forked_from: Optional[int] = None  # in a fork()ed child: the pid of the process that owns the helper
        self._stderr = P.StderrTail()
        self._capture_bytes = 0  # the largest captureLimitBytes of a run so far (see P.line_limit)
        self._proc: Optional[asyncio.subprocess.Process] = None
        self._write_lock: Optional[asyncio.Lock] = None
        self._tasks: List["asyncio.Task[None]"] = []

    @classmethod
    async def create(cls, path: Optional[StrPath] = None, **kwargs: Any) -> "AsyncHelper":
        """Spawn and initialize a helper."""
        helper = cls(path, **kwargs)
        await helper.open()
        return helper

    async def open(self) -> "AsyncHelper":
        """Spawn the helper (in a session of its own) and initialize it;
        done by ``async with`` and :meth:`create`."""
        if self._proc is not None:
            return self
        self._write_lock = asyncio.Lock()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                self.path, *self._args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                env=self._env,
                limit=STREAM_LIMIT,
            )
        except OSError as exc:
            raise P.spawn_error(self.path, exc) from exc
        P.disown_after_fork(self)
        self._reader = asyncio.ensure_future(self._read_stdout())
        self._stderr_task = asyncio.ensure_future(self._read_stderr())
        self._watcher = asyncio.ensure_future(self._watch())
        self._tasks = [self._reader, self._stderr_task, self._watcher]
        if self._initialize:
            try:
                await self.initialize(self._client_name, timeout=self._init_timeout)
            except BaseException:
                self.kill()
                await self._finish_tasks()
                raise
        return self

    # ------------------------------------------------------------ properties

    @property
    def pid(self) -> int:
        """The helper's process id."""
        assert self._proc is not None, "not opened"
        return self._proc.pid

    @property
    def returncode(self) -> Optional[int]:
        """The helper's exit status, None while it runs."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """True until the helper has exited or closed its output."""
        return self._proc is not None and self._dead is None and self._proc.returncode is None

    def stderr_tail(self) -> List[str]:
        """The helper's last stderr lines (up to 50)."""
        return self._stderr.lines()

    # ------------------------------------------------------------ lifecycle

    async def initialize(self, client_name: str = P.CLIENT_NAME, timeout: Optional[float] = None) -> ServerInfo:
        """Send ``initialize`` (done by :meth:`open`) and keep the answer in
        :attr:`server_info`."""
        result = await self.call(
            "initialize",
            P.initialize_params(client_name),
            timeout=timeout,
        )
        self.server_info = ServerInfo.from_wire(result)
        return self.server_info

    async def shutdown(self, timeout: Optional[float] = None) -> int:
        """Refuse new sandboxes, terminate the running ones; the count."""
        result = await self.call("shutdown", None, timeout=timeout)
        return P.terminated_count(result)

    async def close(self, timeout: float = 10.0) -> Optional[int]:
        """``shutdown``, ``exit``, close stdin, wait (kill after ``timeout``,
        also when ``shutdown`` and ``exit`` could not be sent by then)."""
        if self._closed or self._proc is None:
            return self.returncode
        self._closed = True
        proc = self._proc
        try:
            if self._dead is None:
                try:
                    # Bounded as a whole: a helper that no longer reads its input
                    # leaves a write stuck in drain() with the write lock held.
                    await asyncio.wait_for(self._shutdown_and_exit(timeout), timeout)
                except asyncio.TimeoutError:
                    log.warning("bwrapd helper %d does not read its input; killing it", proc.pid)
                    self.kill()  # the stuck writes then fail (broken pipe)
            self._closing = True
            try:
                assert proc.stdin is not None
                proc.stdin.close()
            except OSError:
                pass
            try:
                await asyncio.wait_for(self._exited(), min(timeout, 5.0))
            except asyncio.TimeoutError:
                log.warning("bwrapd helper %d did not exit; killing it", proc.pid)
                self.kill()
                await self._exited()
            try:
                # How the pipe ended (a broken pipe, after a kill) is no news: taken
                # here, or asyncio logs it as a future exception never retrieved.
                await asyncio.wait_for(proc.stdin.wait_closed(), 1.0)  # type: ignore[union-attr]
            except Exception:
                pass
        finally:
            await self._finish_tasks()
            # Our ends of the pipes, which a process the helper left behind may
            # still hold open: closed now, not by the garbage collector after the
            # event loop has ended (which asyncio reports as an error).
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
        return proc.returncode

    async def _shutdown_and_exit(self, timeout: float) -> None:
        try:
            await self.shutdown(timeout=timeout)
        except (Error, OSError, ValueError):
            pass
        self._closing = True
        try:
            await self.notify("exit")
        except (Error, OSError, ValueError):
            pass

    def kill(self) -> None:
        """SIGKILL the helper (its sandboxes die with it). Nothing in a child
        made by fork(): the helper is its parent's."""
        if self._forked_from is not None:
            return
        if self._proc is not None and self._proc.returncode is None:
            try:
                os.killpg(self._proc.pid, _signal.SIGKILL)
            except OSError:
                try:
                    self._proc.kill()
                except OSError:
                    pass

    async def _finish_tasks(self) -> None:
        if not self._tasks:
            return
        done, pending = await asyncio.wait(self._tasks, timeout=5.0)
        for task in pending:
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("bwrapd task failed: %r", task.exception())

    async def __aenter__(self) -> "AsyncHelper":
        return await self.open()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------ raw calls

    def _dead_error(self) -> HelperDied:
        assert self._dead is not None
        if self._forked_from is not None:
            return HelperForked(self._dead[0])
        return P.helper_died(self._dead)

    def _disown_after_fork(self) -> None:
        """See :meth:`bwrapd.Helper._disown_after_fork`."""
        if self._proc is None:
            return
        self._forked_from = self._owner_pid
        self._closing = self._closed = True
        self._dead = (P.forked_message("AsyncHelper", self._proc.pid, self._forked_from), None, [])
        self._pending.clear()
        self._sandboxes.clear()
        transport = getattr(self._proc, "_transport", None)
        pipes = []
        for fd in (0, 1, 2):
            try:
                pipes.append(transport.get_pipe_transport(fd).get_extra_info("pipe"))  # type: ignore[union-attr]
            except Exception:
                pass
        P.release_pipes(pipes)

    async def _write(self, message: Mapping[str, Any], sent: Optional[List[bool]] = None) -> None:
        data = P.encode_message(message)
        P.check_message_size(data, P.max_message_bytes(self.server_info), str(message.get("method") or "answer"))
        if self._proc is None:
            raise RuntimeError("AsyncHelper is not opened (use 'async with' or await open())")
        assert self._write_lock is not None and self._proc.stdin is not None
        async with self._write_lock:
            if self._dead is not None:
                raise self._dead_error()
            try:
                self._proc.stdin.write(data)
                if sent is not None:
                    # All of it is in the pipe transport's buffer now: it goes
                    # out even if this task is cancelled while it drains.
                    sent.append(True)
                await self._proc.stdin.drain()
                return
            except (OSError, RuntimeError, ValueError, AssertionError):
                pass  # pipe broken or closed: the helper is gone
        try:
            await asyncio.wait_for(asyncio.shield(self._watcher), 5.0)
        except asyncio.TimeoutError:
            pass
        if self._dead is None:
            self._fail_all(P.WRITE_FAILED)
        raise self._dead_error()

    async def _submit(self, method: str, params: Any, sandbox: Optional[AsyncSandbox] = None) -> Tuple[int, "asyncio.Future[Any]"]:
        if self._proc is None:
            raise RuntimeError("AsyncHelper is not opened (use 'async with' or await open())")
        if self._dead is not None:
            raise self._dead_error()
        if sandbox is not None:
            future: "asyncio.Future[Any]" = sandbox._future
        else:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(_retrieve)
        request_id = next(self._ids)
        if sandbox is not None:
            if sandbox.sandbox_id in self._sandboxes:
                raise P.sandbox_id_in_use(sandbox.sandbox_id)
            self._capture_bytes = max(self._capture_bytes, P.capture_bytes(params))
            sandbox.request_id = request_id
            self._sandboxes[sandbox.sandbox_id] = sandbox
        self._pending[request_id] = (future, sandbox)
        message = P.request_message(request_id, method, params)
        sent: List[bool] = []
        try:
            await self._write(message, sent)
        except BaseException:
            if sent and sandbox is not None:
                # Cancelled while the run was going out: it will run, so it
                # stays pending and is cancelled ($/cancelRequest, written
                # behind it); its answer finishes the sandbox.
                self._cancel_now(request_id)
                raise
            self._pending.pop(request_id, None)
            if sandbox is not None and self._sandboxes.get(sandbox.sandbox_id) is sandbox:
                del self._sandboxes[sandbox.sandbox_id]
            raise
        return request_id, future

    def _cancel_now(self, request_id: int) -> None:
        """Queue a ``$/cancelRequest`` without waiting (from a cancelled task)."""
        data = P.encode_message(P.notification_message("$/cancelRequest", {"id": request_id}))
        try:
            assert self._proc is not None and self._proc.stdin is not None
            if self._dead is None:
                self._proc.stdin.write(data)
        except (OSError, RuntimeError, ValueError, AssertionError):
            pass  # the helper is gone: the run failed with it

    async def call(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        """Send a request and return its result (raising its error); see
        :meth:`bwrapd.Helper.call` for ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        request_id, future = await _bounded(self._submit(method, params), timeout, method)
        try:
            return await asyncio.wait_for(future, None if deadline is None else max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            self._pending.pop(request_id, None)
            raise WaitTimeout("no answer to %s within %s s" % (method, timeout)) from None
        except asyncio.CancelledError:
            self._pending.pop(request_id, None)
            raise

    async def notify(self, method: str, params: Any = None, timeout: Optional[float] = None) -> None:
        """Send a notification; see :meth:`bwrapd.Helper.notify`."""
        await _bounded(self._write(P.notification_message(method, params)), timeout, method)

    # ------------------------------------------------------------ sandboxes

    async def start(
        self,
        command: Sequence[StrPath],
        *,
        root: Optional[StrPath] = None,
        timeout: Optional[float] = None,
        sandbox_id: Optional[str] = None,
        on_output: Optional[P.OutputCallback] = None,
        check: bool = False,
        **options: "Unpack[RunOptions]",
    ) -> AsyncSandbox:
        """Send ``sandbox/run`` and return an :class:`AsyncSandbox` at once
        (options as for :meth:`bwrapd.Helper.start`)."""
        plan = P.prepare_run(command, root, sandbox_id, timeout, dict(options), "start")
        P.check_on_output(plan, on_output)
        sandbox = AsyncSandbox(self, plan, check, on_output)
        await self._submit("sandbox/run", plan.params, sandbox)
        return sandbox

    async def run(
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
        """Run ``command`` and return its :class:`RunResult`. If the awaiting
        task is cancelled, the run is cancelled on the server too."""
        sandbox = await self.start(command, root=root, timeout=timeout, sandbox_id=sandbox_id,
                                   on_output=on_output, check=check, **options)
        try:
            return await sandbox.wait()
        except asyncio.CancelledError:
            try:
                await sandbox.cancel()
            except Exception:
                pass
            raise

    async def open_terminal(
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
    ) -> AsyncTerminal:
        """See :meth:`bwrapd.Helper.open_terminal`."""
        run_options = P.terminal_options(rows, cols, term, dict(options))
        plan = P.prepare_run(command, root, sandbox_id, timeout, run_options, "open_terminal")
        P.check_on_output(plan, on_output)
        terminal = AsyncTerminal(self, plan, check, on_output)
        await self._submit("sandbox/run", plan.params, terminal)
        return terminal

    async def input(self, sandbox_id: str, data: P.InputData, eof: bool = False) -> int:
        """See :meth:`bwrapd.Helper.input`."""
        total = 0
        for params, size in P.input_pieces(sandbox_id, data, eof):
            went_in = P.written(await self.call("sandbox/input", params))
            total += went_in
            if went_in < size:
                break
        return total

    async def resize(self, sandbox_id: str, rows: int, cols: int) -> bool:
        """See :meth:`bwrapd.Helper.resize`."""
        return P.delivered(await self.call("sandbox/resize", P.resize_params(sandbox_id, rows, cols)))

    async def signal(self, sandbox_id: str, sig: P.SignalLike, *, timeout: Optional[float] = None) -> bool:
        """See :meth:`bwrapd.Helper.signal`."""
        return P.delivered(await self.call("sandbox/signal", P.signal_params(sandbox_id, sig), timeout))

    async def suspend(self, sandbox_id: str, *, timeout: Optional[float] = None) -> bool:
        """SIGSTOP a sandbox's command; whether it was delivered."""
        return P.delivered(await self.call("sandbox/suspend", {"sandboxId": sandbox_id}, timeout))

    async def resume(self, sandbox_id: str, *, timeout: Optional[float] = None) -> bool:
        """SIGCONT a sandbox's command; whether it was delivered."""
        return P.delivered(await self.call("sandbox/resume", {"sandboxId": sandbox_id}, timeout))

    async def terminate(self, sandbox_id: str, grace_ms: Optional[int] = None, *,
                        timeout: Optional[float] = None) -> bool:
        """See :meth:`bwrapd.Helper.terminate`."""
        return P.delivered(await self.call("sandbox/terminate", P.terminate_params(sandbox_id, grace_ms), timeout))

    async def argv(self, command: Sequence[StrPath], *, root: Optional[StrPath] = None,
                   **options: "Unpack[RunOptions]") -> ArgvResult:
        """See :meth:`bwrapd.Helper.argv`."""
        plan = P.prepare_run(command, root, None, None, dict(options), "argv")
        return P.argv_result(await self.call("sandbox/argv", plan.params))

    async def list(self) -> List[SandboxInfo]:
        """``sandbox/list``: the running sandboxes."""
        return P.sandbox_infos(await self.call("sandbox/list"))

    async def discover(self) -> Dict[str, Any]:
        """``rpc.discover``: the server's OpenRPC document."""
        result: Dict[str, Any] = await self.call("rpc.discover")
        return result

    # ------------------------------------------------------------ tasks

    async def _read_stdout(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                try:
                    line = await _read_line(stdout, self._line_limit)
                except P.LineTooLong as exc:
                    # Not an answer but a broken helper: stop here, as if it had died.
                    log.error("%s", exc)
                    self.kill()
                    self._fail_all(str(exc))
                    break
                except (ValueError, MemoryError) as exc:
                    # A message that cannot be read is an answer lost: rather
                    # than leave its caller waiting for ever, fail every call.
                    log.error("cannot read a message from the bwrapd helper: %r", exc)
                    self.kill()
                    self._fail_all("a message from the bwrapd helper could not be read (%s); the helper was killed"
                                   % (type(exc).__name__,))
                    break
                if not line:
                    break
                for item in P.decode_line(line):
                    try:
                        await self._handle(item)
                    except Exception:
                        log.exception("cannot handle message from bwrapd: %r", item)
        except (OSError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # The event loop is ending (asyncio.run returned) with this helper never
            # closed, or close() gave up on this task: end the helper's input, so
            # that it ends its sandboxes and exits as when its client dies, rather
            # than run on, with them, until this process exits.
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
            except Exception:
                pass
            raise
        finally:
            try:
                await asyncio.wait_for(self._exited(), 2.0)
            except asyncio.TimeoutError:
                pass
            await self._fail_all_after_stderr("the bwrapd helper closed its stdout")

    def _line_limit(self) -> int:
        return P.line_limit(self.server_info, self._capture_bytes)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        stderr = self._proc.stderr
        # In pieces, not by line, as the sync client: a line has no limit, and
        # the tail keeps at most the last STDERR_LINE_BYTES of each one.
        try:
            while True:
                chunk = await stderr.read(64 * 1024)
                if not chunk:
                    break
                self._stderr.feed(chunk)
        except (OSError, ConnectionError):
            pass
        self._stderr.flush()

    async def _watch(self) -> None:
        await self._exited()
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), 1.0)
        except (asyncio.TimeoutError, Exception):
            pass
        await self._fail_all_after_stderr("the bwrapd helper exited")

    async def _exited(self) -> None:
        """Until the helper has exited. Not ``proc.wait()``: before Python 3.12
        it also waits for every pipe of the helper to close, which a process
        the helper left behind may keep open for ever; the exit status is there
        (``returncode``) as soon as the process is reaped."""
        assert self._proc is not None
        while self._proc.returncode is None:
            await asyncio.sleep(0.05)

    async def _fail_all_after_stderr(self, reason: str) -> None:
        # Let the stderr task read the helper's last words first (briefly).
        if self._dead is None:
            try:
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 0.5)
            except (asyncio.TimeoutError, Exception):
                pass
        self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        if self._dead is not None:
            return
        returncode = self._proc.returncode if self._proc is not None else None
        self._dead = P.death(reason, self._closing, returncode, self._stderr.lines())
        pending = list(self._pending.values())
        self._pending.clear()
        self._sandboxes.clear()
        for future, sandbox in pending:
            exc = self._dead_error()
            if sandbox is not None:
                sandbox._finish(exc=exc)
            else:
                P.settle(future, exc=exc)

    async def _handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            log.warning("ignoring non-object message from bwrapd: %r", message)
            return
        method = message.get("method")
        if isinstance(method, str):
            await self._handle_notification(method, message.get("params"), message)
            return
        if "id" not in message:
            log.warning("ignoring message without id or method: %r", message)
            return
        try:
            entry = self._pending.pop(message["id"], None)
        except TypeError:
            entry = None
        if entry is None:
            if "error" in message:
                log.warning("bwrapd error not tied to a request: %r", message.get("error"))
            return
        future, sandbox = entry
        if sandbox is not None:
            if self._sandboxes.get(sandbox.sandbox_id) is sandbox:
                del self._sandboxes[sandbox.sandbox_id]
            P.finish_run(sandbox, message)
        elif "error" in message:
            P.settle(future, exc=error_from_response(message["error"]))
        else:
            P.settle(future, message.get("result"))

    async def _handle_notification(self, method: str, params: Any, message: Dict[str, Any]) -> None:
        if "id" in message:  # a request from the server: we serve none
            try:
                await self._write(P.method_not_found(message["id"], method))
            except Error:
                pass
            return
        if not isinstance(params, dict):
            params = {}
        if method == "sandbox/started":
            sandbox = self._sandboxes.get(params.get("sandboxId"))
            if sandbox is not None:
                sandbox._mark_started(params.get("pid"))
        elif method == "sandbox/output":
            sandbox = self._sandboxes.get(params.get("sandboxId"))
            if sandbox is not None:
                sandbox._deliver(str(params.get("stream")), P.decode_output_chunk(params))
        if self._on_notification is not None:
            try:
                self._on_notification(method, params)
            except Exception:
                log.exception("on_notification callback raised")
