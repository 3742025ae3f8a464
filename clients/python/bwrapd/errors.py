"""Exceptions raised by the bwrapd client.

Every error response of the server becomes an :class:`RpcError`; the codes of
docs/protocol.md (Errors) each have their own subclass of :class:`BwrapdError`, so
callers can write ``except CommandNotFound:``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple, Type, Union

if TYPE_CHECKING:  # pragma: no cover
    from .types import RunResult

__all__ = [
    "Error",
    "RpcError",
    "BwrapdError",
    "ParseError",
    "InvalidRequest",
    "MethodNotFound",
    "InvalidParams",
    "InternalError",
    "RequestCancelled",
    "NoSuchSandbox",
    "SandboxIdInUse",
    "CommandNotFound",
    "BwrapUnavailable",
    "PathNotAllowed",
    "ShuttingDown",
    "OutOfMemoryBudget",
    "HelperDied",
    "HelperForked",
    "HelperNotFound",
    "MessageTooLarge",
    "OutputDecodeError",
    "SandboxFailed",
    "WaitTimeout",
    "error_from_response",
]


class Error(Exception):
    """Root of every exception the client raises on purpose (bad arguments
    raise the usual ``TypeError`` / ``ValueError`` instead)."""


class RpcError(Error):
    """An error response of the server: ``code``, ``message`` and ``data``
    exactly as they came on the wire."""

    code: Optional[int] = None

    def __init__(self, message: str, code: Optional[int] = None, data: Any = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.data = data
        text = message if self.code is None else "%s (code %d)" % (message, self.code)
        if data is not None:
            text += ": %s" % (data,)
        super().__init__(text)

    def __reduce__(self) -> Tuple[Any, ...]:  # keep the exception picklable with its fields
        return (type(self), (self.message, self.code, self.data))


class BwrapdError(RpcError):
    """Base of the errors the bwrapd server answers with. An error code the
    client does not know becomes a plain ``BwrapdError``."""


class ParseError(BwrapdError):
    """-32700: the server could not read a message (not JSON, not UTF-8)."""

    code = -32700


class InvalidRequest(BwrapdError):
    """-32600: not a JSON-RPC request, or over the server's size or depth limits."""

    code = -32600


class MethodNotFound(BwrapdError):
    """-32601: the server has no such method."""

    code = -32601


class InvalidParams(BwrapdError):
    """-32602: the message names the offending field (unknown fields too)."""

    code = -32602


class InternalError(BwrapdError):
    """-32603: a failure inside the server that no parameter explains."""

    code = -32603


class RequestCancelled(BwrapdError):
    """-32800: the run was cancelled with ``$/cancelRequest``. ``result`` is
    the :class:`RunResult` it would have had (status ``"cancelled"``, with
    its output and cleanup), when the server sent one."""

    code = -32800
    result: "Optional[RunResult]" = None

    def __str__(self) -> str:  # the result is in .result, not in the message
        return "%s (code %d)" % (self.message, self.code)


class NoSuchSandbox(BwrapdError):
    """-32001: unknown or already finished ``sandboxId``."""

    code = -32001


class SandboxIdInUse(BwrapdError):
    """-32002: the ``sandboxId`` is used by a sandbox not yet answered."""

    code = -32002


class CommandNotFound(BwrapdError):
    """-32003: ``command[0]`` is not in the sandbox root."""

    code = -32003


class BwrapUnavailable(BwrapdError):
    """-32004: no bwrap was found on this host."""

    code = -32004


class PathNotAllowed(BwrapdError):
    """-32005: a path the helper refuses.

    A relative path where an absolute one is needed; a path inside the
    sandbox that climbs above ``/`` with ``..``; a mount of the host's ``/``
    (read-only or not: the host's ``/`` is never a mount source; as ``root``
    it is mounted read-only) or a mount whose target is ``/``; a device
    outside ``/dev/`` or not a device node; a host path through a process's
    descriptor or root (``/proc/PID/fd``, ``/dev/stdin``) or on a procfs; a
    mount point that leads into ``/proc``, or whose way in the root cannot be
    looked at; a stdio file through a symbolic link inside the root or a
    read-write mount; a directory or a terminal as stdin."""

    code = -32005


class ShuttingDown(BwrapdError):
    """-32006: the server is shutting down and takes no new sandboxes."""

    code = -32006


class OutOfMemoryBudget(BwrapdError):
    """-32010: the server's memory budget (``--max-memory``) cannot hold the
    message now; nothing was started, a retry later may succeed."""

    code = -32010


_BY_CODE: Dict[Optional[int], Type[BwrapdError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        RequestCancelled,
        NoSuchSandbox,
        SandboxIdInUse,
        CommandNotFound,
        BwrapUnavailable,
        PathNotAllowed,
        ShuttingDown,
        OutOfMemoryBudget,
    )
}


def error_from_response(error: Any) -> BwrapdError:
    """The exception for the ``error`` member of a JSON-RPC response."""
    if not isinstance(error, dict):
        return BwrapdError("malformed error response: %r" % (error,))
    code = error.get("code")
    message = error.get("message")
    if not isinstance(message, str):
        message = "error %r" % (code,)
    data = error.get("data")
    cls = _BY_CODE.get(code) if isinstance(code, int) else None
    if cls is None:
        return BwrapdError(message, code if isinstance(code, int) else None, data)
    return cls(message, code, data)


class HelperDied(Error, ConnectionError):
    """The helper process ended (or its pipes broke). Every pending call fails
    with this at once; the message ends with the helper's last stderr lines."""

    def __init__(
        self,
        message: str,
        returncode: Optional[int] = None,
        stderr_tail: Sequence[str] = (),
    ) -> None:
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail)
        text = message
        if returncode is not None:
            if returncode < 0:
                text += " (killed by signal %d)" % (-returncode,)
            else:
                text += " (exit status %d)" % (returncode,)
        if self.stderr_tail:
            text += "; last stderr lines:\n  " + "\n  ".join(self.stderr_tail)
        else:
            text += "; it wrote nothing to stderr"
        super().__init__(text)
        self.message = message

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.message, self.returncode, self.stderr_tail))


class HelperForked(HelperDied):
    """The helper belongs to the process that started it: in a child made by
    ``fork()`` every call on it raises this (the child shares its pipes and
    request ids with the parent, so answers would go to the wrong process).
    Start a new helper in the child."""

    def __init__(self, message: str, returncode: Optional[int] = None,
                 stderr_tail: Sequence[str] = ()) -> None:
        Error.__init__(self, message)
        self.message = message
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail)


class MessageTooLarge(Error, ValueError):
    """A request that would exceed the helper's ``maxMessageBytes``
    (``server_info.limits.max_message_bytes``) is refused before anything is
    sent: the helper would skip it and answer an error without its id. Give
    large input as a file (``StdinFile(path)``) or write it while the command
    runs (``stdin=subprocess.PIPE``, the protocol's ``"stream"``)."""

    def __init__(self, message: str, size: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.size = size
        self.limit = limit

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.message, self.size, self.limit))


class SandboxFailed(Error):
    """Raised with ``check=True`` when a run did not exit with status 0, like
    :class:`subprocess.CalledProcessError`. ``result`` is the full result."""

    def __init__(self, result: "RunResult") -> None:
        self.result = result
        super().__init__(result.describe())

    @property
    def returncode(self) -> Optional[int]:
        """The result's ``returncode``."""
        return self.result.returncode

    @property
    def stdout(self) -> Union[bytes, str, None]:
        """The result's captured ``stdout``."""
        return self.result.stdout

    @property
    def stderr(self) -> Union[bytes, str, None]:
        """The result's captured ``stderr``."""
        return self.result.stderr

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.result,))


class OutputDecodeError(Error, UnicodeDecodeError):
    """A run's output did not decode with the caller's ``encoding`` and
    ``errors`` (``errors="strict"``): the :class:`UnicodeDecodeError` that
    ``subprocess`` would raise, which also carries the run's outcome.
    ``result`` is its :class:`RunResult` (exit status, cleanup...); a
    captured output that did not decode is left as bytes there. ``stream`` is
    the output that did not decode (``"stdout"``, ``"stderr"``, ``"terminal"``)."""

    def __init__(self, error: UnicodeDecodeError, result: "RunResult", stream: str) -> None:
        UnicodeDecodeError.__init__(self, error.encoding, error.object, error.start, error.end, error.reason)
        self.result = result
        self.stream = stream

    def __str__(self) -> str:
        return "sandbox %s: %s does not decode: %s" % (
            self.result.sandbox_id, self.stream, UnicodeDecodeError.__str__(self))

    def __reduce__(self) -> Tuple[Any, ...]:
        plain = UnicodeDecodeError(self.encoding, self.object, self.start, self.end, self.reason)
        return (type(self), (plain, self.result, self.stream))


class HelperNotFound(Error, FileNotFoundError):
    """No helper to run: none was given, ``BWRAPD`` is not set and ``bwrapd``
    is not on ``PATH``, or the given path does not exist. The message says
    how to point the client at it."""


class WaitTimeout(Error, TimeoutError):
    """A client-side wait (``Sandbox.wait(timeout=...)``, ``wait_started``)
    ran out of time. The sandbox itself keeps running."""
