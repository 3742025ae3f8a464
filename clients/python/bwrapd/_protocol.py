"""Wire-level pieces shared by the sync and asyncio clients: the mapping of
pythonic keyword arguments to ``sandbox/run`` params, signal names, framing,
the messages sent and how answers are decoded, and how the helper executable
is found. None of it touches the pipes."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import shutil
import signal as _signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import BwrapdError, HelperDied, SandboxIdInUse, error_from_response
from .types import Mount, OutputFile, RunResult, SandboxInfo, StdinFile

__version__ = "0.1.0"

PROTOCOL_VERSION = 1
CLIENT_NAME = "bwrapd-python"
STDERR_TAIL_LINES = 50

log = logging.getLogger("bwrapd")

OutputCallback = Callable[[str, bytes], Any]
SignalLike = Union[str, int, _signal.Signals]

# ---------------------------------------------------------------- helper path


def default_helper_path() -> str:
    """``$BWRAPD`` if set, else the launcher of the checkout this package lives
    in (``clients/python/bwrapd`` -> ``../../bwrapd`` from ``clients/python``),
    else ``bwrapd`` on ``PATH``."""
    env = os.environ.get("BWRAPD")
    if env:
        return env
    launcher = Path(__file__).resolve().parent.parent.parent.parent / "bwrapd"
    if launcher.is_file():
        return str(launcher)
    found = shutil.which("bwrapd")
    if found:
        return found
    return str(launcher)  # fails with a clear "not found" naming it


_sandbox_counter = itertools.count(1)


def new_sandbox_id() -> str:
    """A client-chosen, process-unique sandbox id: ``py-<pid>-<n>``."""
    return "py-%d-%d" % (os.getpid(), next(_sandbox_counter))


# ---------------------------------------------------------------- framing


def encode_message(message: Mapping[str, Any]) -> bytes:
    """One newline-delimited JSON message (json.dumps never emits a raw
    newline, so one message is one line)."""
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError as exc:
        raise ValueError("argument is not valid Unicode (the protocol is UTF-8): %s" % exc) from None
    except ValueError as exc:
        raise ValueError("argument cannot be sent as JSON: %s" % exc) from None


def decode_output_chunk(params: Mapping[str, Any]) -> bytes:
    if params.get("base64") is not None:
        return base64.b64decode(params["base64"])
    text = params.get("text")
    if text is None:
        return b""
    return str(text).encode("utf-8", "surrogatepass")


class StderrTail:
    """Keeps the last lines the helper wrote to stderr (thread-safe)."""

    def __init__(self, maxlen: int = STDERR_TAIL_LINES) -> None:
        self._lines: Deque[str] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def feed_line(self, raw: bytes) -> None:
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        with self._lock:
            self._lines.append(line)

    def lines(self) -> List[str]:
        with self._lock:
            return list(self._lines)


# ---------------------------------------------------------------- signals


def signal_name(sig: SignalLike) -> str:
    """``15`` / ``signal.SIGTERM`` / ``"TERM"`` / ``"sigterm"`` -> ``"SIGTERM"``."""
    if isinstance(sig, bool):
        raise TypeError("signal must be a name or a number, not bool")
    if isinstance(sig, int):
        try:
            return _signal.Signals(sig).name
        except ValueError:
            raise ValueError("unknown signal number %d" % sig) from None
    if isinstance(sig, str):
        name = sig.strip().upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        return name
    raise TypeError("signal must be a name or a number, not %s" % type(sig).__name__)


# ---------------------------------------------------------------- run params


def _path(name: str, value: Any) -> str:
    if isinstance(value, (str, os.PathLike)):
        result = os.fspath(value)
        if isinstance(result, str):
            return result
    raise TypeError("%s must be a str or os.PathLike[str], not %s" % (name, type(value).__name__))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("%s must be a bool, not %s" % (name, type(value).__name__))
    return value


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if value < 0:
        raise ValueError("%s must not be negative" % name)
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %s" % (name, type(value).__name__))
    return value


def _command(command: Any) -> List[str]:
    if isinstance(command, (str, bytes)):
        raise TypeError(
            "command must be a sequence of strings (argv), not a single string; "
            "use shlex.split(%r) or [\"sh\", \"-c\", ...]" % (command,))
    try:
        argv = [_path("command item", arg) for arg in command]
    except TypeError as exc:
        if "not iterable" in str(exc):
            raise TypeError("command must be a sequence of strings") from None
        raise
    if not argv:
        raise ValueError("command must not be empty")
    return argv


def _env(value: Any) -> Dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError("env must be a mapping of str to str")
    env = {}
    for key, val in value.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise TypeError("env must map str to str, got %r: %r" % (key, val))
        env[key] = val
    return env


def _mount(value: Any) -> Dict[str, Any]:
    if isinstance(value, Mount):
        mount = value
    elif isinstance(value, Mapping):
        unknown = set(value) - {"source", "target", "read_only", "readOnly"}
        if unknown:
            raise TypeError("unknown mount field(s): %s" % ", ".join(sorted(unknown)))
        mount = Mount(value["source"], value["target"],
                      value.get("read_only", value.get("readOnly", False)))
    elif isinstance(value, (tuple, list)) and len(value) in (2, 3):
        mount = Mount(*value)
    else:
        raise TypeError("mounts items must be Mount(source, target, read_only=False), not %r" % (value,))
    return {
        "source": _path("mount source", mount.source),
        "target": _path("mount target", mount.target),
        "readOnly": _bool("mount read_only", mount.read_only),
    }


def _stdin(value: Any) -> Any:
    if value is None or value is subprocess.DEVNULL:
        return "null"
    if isinstance(value, StdinFile):
        return {"file": _path("stdin file", value.path)}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError("stdin must be bytes, str, StdinFile(path) or None, not %s" % type(value).__name__)


_OUTPUT_MODES = ("capture", "discard", "stream")


def _output(name: str, value: Any) -> Any:
    if value is subprocess.PIPE:
        return "capture"
    if value is subprocess.DEVNULL:
        return "discard"
    if name == "stderr" and value is subprocess.STDOUT:
        return "stdout"
    if isinstance(value, OutputFile):
        return {"file": _path(name + " file", value.path), "append": _bool(name + " append", value.append)}
    if isinstance(value, str):
        allowed = _OUTPUT_MODES + (("stdout",) if name == "stderr" else ())
        if value in allowed:
            return value
        raise ValueError("%s must be one of %s or OutputFile(path), not %r"
                         % (name, ", ".join(repr(a) for a in allowed), value))
    raise TypeError("%s must be a mode string or OutputFile(path), not %s" % (name, type(value).__name__))


# snake_case keyword -> (wire name, converter)
_RUN_OPTIONS: Dict[str, Tuple[str, Callable[[Any], Any]]] = {
    "root": ("root", lambda v: _path("root", v)),
    "cwd": ("cwd", lambda v: _path("cwd", v)),
    "env": ("env", _env),
    "network": ("network", lambda v: _bool("network", v)),
    "read_only_root": ("readOnlyRoot", lambda v: _bool("read_only_root", v)),
    "hostname": ("hostname", lambda v: _str("hostname", v)),
    "uid": ("uid", lambda v: _int("uid", v)),
    "gid": ("gid", lambda v: _int("gid", v)),
    "inherit_uid": ("inheritUid", lambda v: _bool("inherit_uid", v)),
    "mounts": ("mounts", lambda v: [_mount(m) for m in _seq("mounts", v)]),
    "devices": ("devices", lambda v: [_path("device", d) for d in _seq("devices", v)]),
    "dev_shm": ("devShm", lambda v: _bool("dev_shm", v)),
    "linux32": ("linux32", lambda v: _bool("linux32", v)),
    "stdin": ("stdin", _stdin),
    "stdout": ("stdout", lambda v: _output("stdout", v)),
    "stderr": ("stderr", lambda v: _output("stderr", v)),
    "capture_limit_bytes": ("captureLimitBytes", lambda v: _int("capture_limit_bytes", v)),
    "timeout_ms": ("timeoutMs", lambda v: _int("timeout_ms", v)),
    "kill_grace_ms": ("killGraceMs", lambda v: _int("kill_grace_ms", v)),
    "interactive": ("interactive", lambda v: _bool("interactive", v)),
}

#: The keyword arguments ``run``/``start`` accept besides ``command``.
RUN_OPTION_NAMES = frozenset(_RUN_OPTIONS) | {"timeout", "sandbox_id", "extra_params"}


def _seq(name: str, value: Any) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError("%s must be a list" % name)
    return value


def timeout_to_ms(timeout: Any) -> int:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds, not %s" % type(timeout).__name__)
    if timeout < 0:
        raise ValueError("timeout must not be negative")
    return max(1, int(round(timeout * 1000))) if timeout > 0 else 0


def build_run_params(
    command: Any,
    sandbox_id: Optional[str],
    timeout: Optional[float],
    options: Mapping[str, Any],
    func: str = "run",
) -> Tuple[List[str], Dict[str, Any]]:
    """Validate ``run``/``start`` arguments and return (argv, wire params).

    Options whose value is ``None`` are left out (the server's default
    applies), except ``stdin=None`` which means no input (``"null"``).
    """
    argv = _command(command)
    params: Dict[str, Any] = {"command": argv}
    extra = None
    for key, value in options.items():
        if key == "extra_params":
            extra = value
            continue
        spec = _RUN_OPTIONS.get(key)
        if spec is None:
            raise TypeError("%s() got an unexpected keyword argument %r" % (func, key))
        if value is None and key != "stdin":
            continue
        wire, convert = spec
        params[wire] = convert(value)
    if timeout is not None:
        if "timeoutMs" in params:
            raise TypeError("%s() got both timeout and timeout_ms" % func)
        params["timeoutMs"] = timeout_to_ms(timeout)
    if sandbox_id is not None:
        params["sandboxId"] = _str("sandbox_id", sandbox_id)
    if extra:
        if not isinstance(extra, Mapping):
            raise TypeError("extra_params must be a mapping")
        params.update(extra)
    return argv, params


def prepare_run(
    command: Any,
    root: Any,
    sandbox_id: Optional[str],
    timeout: Optional[float],
    options: Dict[str, Any],
    func: str,
) -> Tuple[str, List[str], Dict[str, Any]]:
    """``run``/``start`` arguments -> (sandbox id, argv, wire params): a
    fresh sandbox id unless one is given, ``root`` folded into the options."""
    if root is not None:
        options["root"] = root
    sandbox_id = sandbox_id if sandbox_id is not None else new_sandbox_id()
    argv, params = build_run_params(command, sandbox_id, timeout, options, func=func)
    return sandbox_id, argv, params


# ---------------------------------------------------------------- messages


def request_message(request_id: int, method: str, params: Any) -> Dict[str, Any]:
    message: Dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification_message(method: str, params: Any) -> Dict[str, Any]:
    message: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def method_not_found(request_id: Any, method: str) -> Dict[str, Any]:
    """The answer to a request from the server (the client serves none)."""
    return {"jsonrpc": "2.0", "id": request_id,
            "error": {"code": -32601, "message": "method not found: " + method}}


def initialize_params(client_name: str) -> Dict[str, Any]:
    return {"clientName": client_name, "clientVersion": __version__, "protocolVersion": PROTOCOL_VERSION}


def signal_params(sandbox_id: str, sig: SignalLike) -> Dict[str, Any]:
    return {"sandboxId": sandbox_id, "signal": signal_name(sig)}


def terminate_params(sandbox_id: str, grace_ms: Optional[int]) -> Dict[str, Any]:
    params: Dict[str, Any] = {"sandboxId": sandbox_id}
    if grace_ms is not None:
        params["graceMs"] = _int("grace_ms", grace_ms)
    return params


def terminated_count(result: Any) -> int:
    """The ``shutdown`` result: how many sandboxes it terminated."""
    return result.get("terminated", 0) if isinstance(result, dict) else 0


def delivered(result: Any) -> bool:
    """The ``sandbox/signal`` result."""
    return bool(result.get("delivered")) if isinstance(result, dict) else bool(result)


def sandbox_infos(result: Any) -> List[SandboxInfo]:
    """The ``sandbox/list`` result (``{"sandboxes": [...]}`` tolerated too)."""
    if isinstance(result, dict):
        result = result.get("sandboxes", [])
    return [SandboxInfo.from_wire(item) for item in result or []]


def sandbox_id_in_use(sandbox_id: str) -> SandboxIdInUse:
    return SandboxIdInUse(
        "sandboxId %r is already used by a running sandbox of this client" % sandbox_id,
        SandboxIdInUse.code)


def decode_line(line: bytes) -> List[Any]:
    """The messages of one line of the helper's stdout: none for a blank or
    non-JSON line (logged), the items of a batch, else the one message."""
    line = line.strip()
    if not line:
        return []
    try:
        message = json.loads(line)
    except ValueError:
        log.warning("bwrapd helper wrote a line that is not JSON: %r", line[:200])
        return []
    return message if isinstance(message, list) else [message]


def run_outcome(args: List[str], message: Mapping[str, Any]) -> Tuple[Optional[RunResult], Optional[BaseException]]:
    """The response to a ``sandbox/run``: (result, None) or (None, error)."""
    if "error" in message:
        return None, error_from_response(message["error"])
    result = message.get("result")
    if not isinstance(result, dict):
        return None, BwrapdError("malformed sandbox/run result: %r" % (result,))
    return RunResult.from_wire(args, result), None


# ---------------------------------------------------------------- death

WRITE_FAILED = "cannot write to the bwrapd helper (pipe closed)"

Death = Tuple[str, Optional[int], List[str]]


def death(reason: str, closing: bool, returncode: Optional[int], stderr_tail: List[str]) -> Death:
    """What to report once the helper is gone: (reason, exit status, its
    last stderr lines); ``reason`` is reworded after a close or a signal."""
    if closing and reason != WRITE_FAILED:
        reason = "the bwrapd helper was closed"
    elif returncode is not None and returncode < 0:
        reason = "the bwrapd helper died"
    return (reason, returncode, stderr_tail)


def helper_died(dead: Death) -> HelperDied:
    message, returncode, tail = dead
    return HelperDied(message, returncode, tail)


# ---------------------------------------------------------------- sandboxes

END = object()  # the end of a sandbox's output queue


def settle(future: Any, result: Any = None, exc: Optional[BaseException] = None) -> None:
    """Complete a future (concurrent or asyncio) unless it is already done
    (races are expected)."""
    try:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    except Exception:  # InvalidStateError: lost a race, the other side won
        pass


class SandboxBase:
    """What :class:`bwrapd.Sandbox` and :class:`bwrapd.AsyncSandbox` share.
    Subclasses set ``_future``, ``_started`` (an Event) and ``_queue`` (None
    with ``on_output``, else a queue with ``put_nowait``)."""

    _kind = "Sandbox"
    _future: Any
    _started: Any
    _queue: Any

    def __init__(self, sandbox_id: str, args: List[str], check: bool, on_output: Optional[OutputCallback]) -> None:
        self.sandbox_id = sandbox_id
        self.args = args
        self.request_id: Optional[int] = None
        self.pid: Optional[int] = None
        self._check = check
        self._on_output = on_output

    def __repr__(self) -> str:
        state = "done" if self.done() else ("running" if self._started.is_set() else "starting")
        return "<%s %s %s pid=%s %r>" % (self._kind, self.sandbox_id, state, self.pid, self.args)

    # -- events from the helper

    def _mark_started(self, pid: Any) -> None:
        if isinstance(pid, int):
            self.pid = pid
        self._started.set()

    def _deliver(self, stream: str, data: bytes) -> None:
        if self._on_output is not None:
            try:
                self._on_output(stream, data)
            except Exception:
                log.exception("on_output callback of sandbox %s raised", self.sandbox_id)
        elif self._queue is not None:
            self._queue.put_nowait((stream, data))

    def _finish(self, result: Optional[RunResult] = None, exc: Optional[BaseException] = None) -> None:
        settle(self._future, result, exc)
        self._started.set()
        if self._queue is not None:
            self._queue.put_nowait(END)

    # -- state

    def done(self) -> bool:
        """True once the run has ended (or failed)."""
        return bool(self._future.done())

    def _started_pid(self) -> Optional[int]:
        """After ``sandbox/started`` (or the end): the pid, None if the run
        ended without starting, or the run's error if it was refused."""
        if self.pid is None and self._future.done():
            exc = self._future.exception()
            if exc is not None:
                raise exc
        return self.pid

    def _check_result(self, result: RunResult, check: Optional[bool]) -> RunResult:
        if self._check if check is None else check:
            result.check_returncode()
        return result
