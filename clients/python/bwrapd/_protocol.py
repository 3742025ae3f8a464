"""Wire-level pieces shared by the sync and asyncio clients: the mapping of
pythonic keyword arguments to ``sandbox/run`` params, signal names, framing,
the messages sent and how answers are decoded, and how the helper executable
is found. None of it touches the pipes."""

from __future__ import annotations

import base64
import codecs
import dataclasses
import io
import itertools
import json
import logging
import os
import shutil
import signal as _signal
import subprocess
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ._version import __version__
from .errors import (BwrapdError, HelperDied, HelperNotFound, MessageTooLarge, OutputDecodeError, RequestCancelled,
                     SandboxIdInUse, error_from_response)
from .types import ArgvResult, Mount, OutputFile, ResourceLimits, RunResult, SandboxInfo, ServerInfo, StdinFile, wire_name

PROTOCOL_VERSION = 1
CLIENT_NAME = "bwrapd-python"
STDERR_TAIL_LINES = 50

log = logging.getLogger("bwrapd")

OutputCallback = Callable[[str, bytes], Any]
SignalLike = Union[str, int, _signal.Signals]

# ---------------------------------------------------------------- helper path


HOW_TO_NAME_THE_HELPER = (
    "pass its path (Helper(path)), set the BWRAPD environment variable to it, or put bwrapd on PATH")


def default_helper_path() -> str:
    """The helper to run when none is given: ``$BWRAPD`` if set, else
    ``bwrapd`` in an absolute directory of ``PATH``; nothing else, so that a
    file the user did not choose (one in the working directory, say) is never
    run. Raises :class:`HelperNotFound` when there is none."""
    env = os.environ.get("BWRAPD")
    if env:
        return env
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if os.path.isabs(directory):  # a relative entry would mean the working directory
            candidate = os.path.join(directory, "bwrapd")
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    raise HelperNotFound("the bwrapd helper was not found: " + HOW_TO_NAME_THE_HELPER)


def spawn_error(path: str, exc: OSError) -> Exception:
    """What starting the helper at ``path`` failed with, for the caller."""
    if isinstance(exc, FileNotFoundError):
        return HelperNotFound("cannot start the bwrapd helper %r: no such file; %s"
                              % (path, HOW_TO_NAME_THE_HELPER))
    return HelperDied("cannot start the bwrapd helper %r: %s" % (path, exc))


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


def max_message_bytes(server_info: Optional[ServerInfo]) -> Optional[int]:
    """The helper's ``maxMessageBytes`` once ``initialize`` told it, else None."""
    limits = getattr(server_info, "limits", None)
    limit = getattr(limits, "max_message_bytes", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def check_message_size(data: bytes, limit: Optional[int], what: str) -> None:
    """Refuse an encoded message (one line) larger than the helper takes: it
    would skip it and answer -32600 with id null, which no call can be told,
    so the call would wait for ever. The size is that of the line without its
    newline, as the helper counts it."""
    size = len(data) - 1
    if limit is not None and size > limit:
        raise MessageTooLarge(
            "the %s message is %d bytes, over the helper's limit of %d bytes (maxMessageBytes); "
            "nothing was sent. Give large input as a file (stdin=StdinFile(path)) or write it while "
            "the command runs (stdin=subprocess.PIPE, the protocol's \"stream\")" % (what, size, limit),
            size, limit)


# ---------------------------------------------------------------- line limit

#: The longest line taken from the helper before ``initialize`` told its
#: ``maxMessageBytes`` (then four times that), before the room for captures.
LINE_LIMIT_UNKNOWN = 64 << 20
#: Room for the framing around the data of a line.
LINE_MARGIN = 1 << 20
#: captureLimitBytes when a run does not give it (docs/protocol.md).
DEFAULT_CAPTURE_LIMIT = 1 << 20
#: The pieces a line is read in.
LINE_PIECE = 1 << 20


class LineTooLong(Exception):
    """The helper wrote a line longer than :func:`line_limit` allows."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("the bwrapd helper wrote a line of more than %d bytes, over the client's limit of %d "
                         "bytes (from its maxMessageBytes and the runs' captureLimitBytes); the helper was "
                         "killed" % (size, limit))


def capture_bytes(params: Mapping[str, Any]) -> int:
    """The captureLimitBytes of a ``sandbox/run``'s params."""
    value = params.get("captureLimitBytes")
    return value if isinstance(value, int) and value > 0 else DEFAULT_CAPTURE_LIMIT


def line_limit(server_info: Optional[ServerInfo], capture: int) -> int:
    """The longest line taken from the helper: four times its maxMessageBytes
    (LINE_LIMIT_UNKNOWN before it is known), plus what two captures of
    ``capture`` bytes (the largest a run asked for) can take as JSON text (a
    byte escaped as \\u00XX is six), plus LINE_MARGIN. A longer line means a
    broken helper, not an answer: reading it on would grow this process
    without bound."""
    limit = max_message_bytes(server_info)
    return (4 * limit if limit else LINE_LIMIT_UNKNOWN) + 12 * capture + LINE_MARGIN


def read_line(readline: Callable[[int], bytes], limit: Callable[[], int]) -> bytes:
    """The next line from ``readline`` (a binary file's), read in pieces;
    LineTooLong once it is over ``limit()`` bytes without its end."""
    pieces = []
    size = 0
    while True:
        piece = readline(LINE_PIECE)
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
        if piece.endswith(b"\n"):
            break
        if size > limit():
            raise LineTooLong(size, limit())
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def decode_output_chunk(params: Mapping[str, Any]) -> bytes:
    if params.get("base64") is not None:
        return base64.b64decode(params["base64"])
    text = params.get("text")
    if text is None:
        return b""
    return str(text).encode("utf-8", "surrogatepass")


#: The most of one stderr line kept (its end): a helper that writes megabytes
#: without a newline must not make this process hold them.
STDERR_LINE_BYTES = 4096


class StderrTail:
    """Keeps the last lines the helper wrote to stderr (thread-safe)."""

    def __init__(self, maxlen: int = STDERR_TAIL_LINES) -> None:
        self._lines: Deque[str] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._partial = b""  # the end of a line not finished yet (one feeding thread)

    def feed(self, data: bytes) -> None:
        """Bytes as they were read: complete lines are kept, each at most its
        last STDERR_LINE_BYTES bytes, and so is what is pending of the next."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()[-STDERR_LINE_BYTES:]
        for line in lines:
            self.feed_line(line[-STDERR_LINE_BYTES:])

    def flush(self) -> None:
        """The end of stderr: an unfinished last line is kept too."""
        if self._partial:
            self.feed_line(self._partial)
            self._partial = b""

    def feed_line(self, raw: bytes) -> None:
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        with self._lock:
            self._lines.append(line)

    def lines(self) -> List[str]:
        with self._lock:
            return list(self._lines)


#: The helpers (Helper, AsyncHelper) of this process, which a child made by
#: fork() disowns (their ``_disown_after_fork``).
_live_helpers: "weakref.WeakSet[Any]" = weakref.WeakSet()


def disown_after_fork(helper: Any) -> None:
    """Have ``helper._disown_after_fork()`` run in every child this process
    forks from now on, while ``helper`` exists."""
    _live_helpers.add(helper)


def _after_fork_in_child() -> None:
    for helper in list(_live_helpers):
        try:
            helper._disown_after_fork()
        except Exception:  # never break the child's fork()
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_message(kind: str, helper_pid: int, owner_pid: int) -> str:
    """Why a helper inherited through fork() cannot be used in the child."""
    return ("this bwrapd %s (helper pid %d) belongs to process %d; it cannot be used in a child made by "
            "fork() (start a new %s there)" % (kind, helper_pid, owner_pid, kind))


def release_pipes(files: Sequence[Any]) -> None:
    """In a child made by fork(): let go of the inherited ends of the
    parent's pipes to its helper without closing their descriptors (the file
    objects still hold them and will close them one day; a number closed now
    could by then name another file). Each is made to name /dev/null."""
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for f in files:
            try:
                fd = f.fileno() if f is not None else -1
            except (OSError, ValueError):
                continue  # already closed
            if fd >= 0:
                try:
                    os.dup2(null, fd, inheritable=False)
                except OSError:
                    pass
    finally:
        os.close(null)


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
    if value is subprocess.PIPE:
        return "stream"  # written while it runs: Sandbox.stdin
    if isinstance(value, StdinFile):
        return {"file": _path("stdin file", value.path)}
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError("stdin must be bytes, str, StdinFile(path), subprocess.PIPE or None, not %s" % type(value).__name__)


_OUTPUT_MODES = ("capture", "discard", "stream")


def _is_file_object(value: Any) -> bool:
    return callable(getattr(value, "write", None)) and not isinstance(value, (str, OutputFile))


def _output(name: str, value: Any) -> Any:
    if _is_file_object(value):
        return "stream"  # the client writes the chunks into it (see RunPlan.writers)
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
    raise TypeError("%s must be a mode string, OutputFile(path) or a writable file object, not %s"
                    % (name, type(value).__name__))


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
    "capabilities": ("capabilities", lambda v: [_str("capability", c) for c in _seq("capabilities", v)]),
    "seccomp": ("seccomp", lambda v: _seccomp(v)),
    "terminal": ("terminal", lambda v: _terminal(v)),
    "limits": ("limits", lambda v: _limits(v)),
}


def _no_unknown_keys(name: str, value: Mapping[str, Any], known: Sequence[str]) -> None:
    # A misspelt key ("erno", "TERM") would otherwise be dropped without a word.
    unknown = set(value) - set(known)
    if unknown:
        raise TypeError("unknown %s field(s): %s (known: %s)"
                        % (name, ", ".join(sorted(map(str, unknown))), ", ".join(known)))


def _seccomp(value: Any) -> Any:
    if value in ("none", "default"):
        return value
    if isinstance(value, dict) and isinstance(value.get("deny"), (list, tuple)):
        _no_unknown_keys("seccomp", value, ("deny", "errno"))
        policy: Dict[str, Any] = {"deny": [_str("seccomp deny entry", name) for name in value["deny"]]}
        if value.get("errno") is not None:
            policy["errno"] = _str("seccomp errno", value["errno"])
        return policy
    raise TypeError('seccomp must be "none", "default" or {"deny": [...], "errno": ...}')


def _terminal(value: Any) -> Dict[str, Any]:
    if not isinstance(value, dict) or "rows" not in value or "cols" not in value:
        raise TypeError('terminal must be {"rows": int, "cols": int, "term": str}')
    _no_unknown_keys("terminal", value, ("rows", "cols", "term"))
    terminal: Dict[str, Any] = {"rows": _int("terminal rows", value["rows"]), "cols": _int("terminal cols", value["cols"])}
    if value.get("term") is not None:
        terminal["term"] = _str("terminal term", value["term"])
    return terminal

def _limits(value: Any) -> Dict[str, Any]:
    if isinstance(value, ResourceLimits):
        value = value.to_wire()
    if not isinstance(value, dict):
        raise TypeError("limits must be ResourceLimits(...) or a mapping of limit names to numbers")
    names = {wire_name(f): f.name for f in dataclasses.fields(ResourceLimits)}
    limits: Dict[str, Any] = {}
    for name, number in value.items():
        wire = name if name in names else {v: k for k, v in names.items()}.get(name)
        if wire is None:
            raise ValueError("unknown limit %r (one of %s)" % (name, ", ".join(sorted(names))))
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, (int, float)) or (wire != "cpus" and not isinstance(number, int)):
            raise TypeError("limits %s must be %s" % (name, "a number" if wire == "cpus" else "an int"))
        limits[wire] = number
    return limits


#: Keyword arguments that shape what the client hands back rather than the run.
_CLIENT_OPTIONS = frozenset({"text", "encoding", "errors", "extra_params"})

#: The keyword arguments ``run``/``start`` accept besides ``command``.
RUN_OPTION_NAMES = frozenset(_RUN_OPTIONS) | {"timeout", "sandbox_id"} | _CLIENT_OPTIONS


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
        if key in _CLIENT_OPTIONS:
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


class RunPlan:
    """A checked ``run``/``start`` call: the sandbox id, the argv, the wire
    params, how captured output is decoded (``encoding``, ``errors``) and the
    file objects streamed output is written into (by stream name)."""

    __slots__ = ("sandbox_id", "argv", "params", "encoding", "errors", "writers")

    def __init__(self, sandbox_id: str, argv: List[str], params: Dict[str, Any],
                 encoding: Optional[str], errors: Optional[str], writers: Dict[str, Any]) -> None:
        self.sandbox_id = sandbox_id
        self.argv = argv
        self.params = params
        self.encoding = encoding
        self.errors = errors
        self.writers = writers


def prepare_run(
    command: Any,
    root: Any,
    sandbox_id: Optional[str],
    timeout: Optional[float],
    options: Dict[str, Any],
    func: str,
) -> RunPlan:
    """``run``/``start`` arguments -> a :class:`RunPlan`: a fresh sandbox id
    unless one is given, ``root`` folded into the options."""
    if root is not None:
        options["root"] = root
    sandbox_id = sandbox_id if sandbox_id is not None else new_sandbox_id()
    argv, params = build_run_params(command, sandbox_id, timeout, options, func=func)
    encoding = options.get("encoding")
    errors = options.get("errors")
    if encoding is None and (options.get("text") or errors is not None):
        encoding = "utf-8"
    # A misspelt name would only fail when the result is decoded, after the run.
    if encoding is not None:
        codecs.lookup(_str("encoding", encoding))
    if errors is not None:
        codecs.lookup_error(_str("errors", errors))
    writers = {name: options[name] for name in ("stdout", "stderr") if _is_file_object(options.get(name))}
    return RunPlan(sandbox_id, argv, params, encoding, errors, writers)


def check_on_output(plan: RunPlan, on_output: Optional[OutputCallback]) -> None:
    """Refuse an ``on_output`` that would never be called: no output of the
    run is ``"stream"`` (nor a terminal) other than into a file object."""
    if on_output is None or "terminal" in plan.params:
        return
    for name in ("stdout", "stderr"):
        if plan.params.get(name) == "stream" and name not in plan.writers:
            return
    raise ValueError('on_output was given, but neither stdout nor stderr is "stream": it would never be called')


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


#: The most bytes (or characters) one ``sandbox/input`` carries: a long write
#: goes in pieces, each answered before the next is sent, so that one piece at
#: most waits in the server (docs/protocol.md, Flow control).
INPUT_PIECE = 16 * 1024

InputData = Union[bytes, bytearray, memoryview, str]


def input_pieces(sandbox_id: str, data: InputData, eof: bool) -> List[Tuple[Dict[str, Any], int]]:
    """The ``sandbox/input`` params that write ``data`` (str as UTF-8 text,
    bytes as base64), each with its number of bytes; ``eof`` goes with the
    last (alone when there are no bytes)."""
    pieces: List[Tuple[Dict[str, Any], int]] = []
    if isinstance(data, str):
        for i in range(0, len(data), INPUT_PIECE):
            text = data[i:i + INPUT_PIECE]
            pieces.append(({"sandboxId": sandbox_id, "text": text}, len(text.encode("utf-8", "surrogatepass"))))
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        for i in range(0, len(raw), INPUT_PIECE):
            chunk = raw[i:i + INPUT_PIECE]
            pieces.append(({"sandboxId": sandbox_id, "base64": base64.b64encode(chunk).decode("ascii")}, len(chunk)))
    else:
        raise TypeError("input must be bytes or str, not %s" % type(data).__name__)
    if eof:
        if not pieces:
            pieces.append(({"sandboxId": sandbox_id}, 0))
        pieces[-1][0]["eof"] = True
    return pieces


def written(result: Any) -> int:
    """The ``sandbox/input`` result: how many bytes went in."""
    return int(result.get("written", 0)) if isinstance(result, dict) else 0


def _size(name: str, value: Any) -> int:
    if _int(name, value) < 1 or value > 65535:
        raise ValueError("%s must be 1..65535, not %d" % (name, value))
    return int(value)


def resize_params(sandbox_id: str, rows: int, cols: int) -> Dict[str, Any]:
    return {"sandboxId": sandbox_id, "rows": _size("rows", rows), "cols": _size("cols", cols)}


def terminal_options(rows: int, cols: int, term: Optional[str], options: Dict[str, Any]) -> Dict[str, Any]:
    """``open_terminal`` arguments -> the options of a run on a terminal of
    that size (the terminal is its stdin, stdout and stderr)."""
    for name in ("stdin", "stdout", "stderr", "terminal"):
        if name in options:
            raise TypeError("open_terminal() got %s: the terminal is the command's stdin, stdout and stderr" % name)
    options["terminal"] = {"rows": _size("rows", rows), "cols": _size("cols", cols), "term": term}
    return options


def terminated_count(result: Any) -> int:
    """The ``shutdown`` result: how many sandboxes it terminated."""
    return result.get("terminated", 0) if isinstance(result, dict) else 0


def delivered(result: Any) -> bool:
    """The answer of ``sandbox/signal``, ``suspend``, ``resume`` and
    ``terminate``: whether the signal reached the sandbox."""
    return bool(result.get("delivered")) if isinstance(result, dict) else bool(result)


def sandbox_infos(result: Any) -> List[SandboxInfo]:
    """The ``sandbox/list`` result (``{"sandboxes": [...]}`` tolerated too)."""
    if isinstance(result, dict):
        result = result.get("sandboxes", [])
    return [SandboxInfo.from_wire(item) for item in result or []]


def argv_result(result: Any) -> ArgvResult:
    """The ``sandbox/argv`` result."""
    result = result if isinstance(result, dict) else {}
    return ArgvResult(str(result.get("executable")), list(result.get("argv") or []), list(result.get("env") or []))


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


def run_outcome(plan: RunPlan, message: Mapping[str, Any]) -> Tuple[Optional[RunResult], Optional[BaseException]]:
    """The response to a ``sandbox/run``: (result, None) or (None, error). A
    cancelled run's error carries its result (``RequestCancelled.result``)."""
    if "error" in message:
        error = error_from_response(message["error"])
        data = getattr(error, "data", None)
        if isinstance(error, RequestCancelled) and isinstance(data, dict) and "status" in data:
            error.result = decoded_result(plan, data)
        return None, error
    result = message.get("result")
    if not isinstance(result, dict):
        return None, BwrapdError("malformed sandbox/run result: %r" % (result,))
    return decoded_result(plan, result), None


def decoded_result(plan: RunPlan, data: Mapping[str, Any]) -> RunResult:
    """The RunResult of ``data``, its captured output decoded as the plan
    says; output that does not decode raises OutputDecodeError with the
    result (that output left as bytes)."""
    try:
        return RunResult.from_wire(plan.argv, data, plan.encoding, plan.errors)
    except UnicodeDecodeError as error:
        raw = RunResult.from_wire(plan.argv, data)
        stream = "stdout"
        if isinstance(raw.stdout, bytes) and plan.encoding is not None:
            try:
                raw.stdout.decode(plan.encoding, plan.errors or "replace")
            except UnicodeDecodeError:
                pass
            else:
                stream = "stderr"
        raise OutputDecodeError(error, raw, stream) from error


def finish_run(sandbox: "SandboxBase", message: Mapping[str, Any]) -> None:
    """Finish ``sandbox`` with the response to its ``sandbox/run``. Whatever
    decoding it raises ends the run too (its ``wait()`` raises it): the
    command's output not decoding with ``errors="strict"`` (UnicodeError, as
    in ``subprocess``), or a malformed answer (BwrapdError); else the wait
    would never end."""
    try:
        result, exc = run_outcome(sandbox._plan, message)
    except UnicodeError as error:
        result, exc = None, error
    except Exception as error:
        result, exc = None, BwrapdError("malformed sandbox/run answer from the helper: %s: %s"
                                        % (type(error).__name__, error))
        exc.__cause__ = error
    sandbox._finish(result, exc)


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

    def __init__(self, plan: RunPlan, check: bool, on_output: Optional[OutputCallback]) -> None:
        self.sandbox_id = plan.sandbox_id
        self.args = plan.argv
        self._plan = plan
        self._decoders: Dict[str, Any] = {}
        self.request_id: Optional[int] = None
        self.pid: Optional[int] = None
        self._check = check
        self._on_output = on_output
        self._write_error: Optional[BaseException] = None  # the first failure writing into a file object
        self._write_error_stream = ""  # the stream it happened on

    def __repr__(self) -> str:
        state = "done" if self.done() else ("running" if self._started.is_set() else "starting")
        return "<%s %s %s pid=%s %r>" % (self._kind, self.sandbox_id, state, self.pid, self.args)

    # -- events from the helper

    def _mark_started(self, pid: Any) -> None:
        if isinstance(pid, int):
            self.pid = pid
        self._started.set()

    def _deliver(self, stream: str, data: bytes) -> None:
        writer = self._plan.writers.get(stream)
        if writer is not None:
            if self._write_error is not None:
                return  # the output is already incomplete: wait() raises that
            try:
                self._write(writer, stream, data)
            except Exception as exc:
                # Not only logged: a chunk that does not decode (errors="strict")
                # or a failed write means lost output, which wait() must say.
                self._write_error = exc
                self._write_error_stream = stream
        elif self._on_output is not None:
            try:
                self._on_output(stream, data)
            except Exception:
                log.exception("on_output callback of sandbox %s raised", self.sandbox_id)
        elif self._queue is not None:
            self._queue.put_nowait((stream, data))

    def _write(self, writer: Any, stream: str, data: bytes) -> None:
        """Write a chunk into a file object: decoded (by an incremental decoder
        that keeps a character split across chunks) when it is a text file."""
        if isinstance(writer, io.TextIOBase):
            decoder = self._decoders.get(stream)
            if decoder is None:
                encoding = self._plan.encoding or getattr(writer, "encoding", None) or "utf-8"
                decoder = self._decoders[stream] = codecs.getincrementaldecoder(encoding)(self._plan.errors or "replace")
            writer.write(decoder.decode(data))
        else:
            writer.write(data)
        writer.flush()

    def _finish(self, result: Optional[RunResult] = None, exc: Optional[BaseException] = None) -> None:
        for stream, decoder in self._decoders.items():  # what an incomplete last character left
            if self._write_error is not None:
                break
            try:
                tail = decoder.decode(b"", final=True)
                if tail:
                    self._plan.writers[stream].write(tail)
            except Exception as error:
                self._write_error = error
                self._write_error_stream = stream
        if exc is None and self._write_error is not None:
            exc = self._write_error
            if isinstance(exc, UnicodeDecodeError) and result is not None:
                exc = OutputDecodeError(exc, result, self._write_error_stream)
                exc.__cause__ = self._write_error
            result = None
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
