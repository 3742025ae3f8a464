"""Data types of the bwrapd client: run options and results.

Every result type has every field the server sends (a test compares them with the
server's OpenRPC document); a field's name on the wire is its name in camelCase,
or the ``wire`` entry of its metadata.
"""

from __future__ import annotations

import base64
import os
import signal as _signal
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union

__all__ = [
    "Mount",
    "StdinFile",
    "OutputFile",
    "Usage",
    "CleanupFailure",
    "Cleanup",
    "RunResult",
    "RunStatus",
    "SignalName",
    "SandboxState",
    "OutputMode",
    "ServerInfo",
    "BwrapInfo",
    "Capabilities",
    "CgroupInfo",
    "Limits",
    "ResourceLimits",
    "LimitName",
    "SandboxInfo",
    "ArgvResult",
    "RunOptions",
    "StrPath",
]

StrPath = Union[str, "os.PathLike[str]"]

#: How a run ended.
RunStatus = Literal["exited", "signaled", "timed-out", "cancelled", "setup-failed"]
#: The signals a sandbox can be sent, by the protocol's names.
SignalName = Literal["SIGSTOP", "SIGCONT", "SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT"]
#: The limit that ended or hampered a run (``RunResult.limit_exceeded``).
LimitName = Literal["memory", "pids", "cpu", "fileSize", "openFiles"]
#: The state of a sandbox in ``sandbox/list``.
SandboxState = Literal["starting", "running", "suspended"]
#: Where ``stdout``/``stderr`` go: a mode, a host file, or a writable file object
#: (the output is then streamed into it).
OutputMode = Union[Literal["capture", "discard", "stream"], "OutputFile", "IO[bytes]", "IO[str]"]


#: The metadata of a dataclass field the client adds (not on the wire).
LOCAL = {"local": True}


@dataclass(frozen=True)
class Mount:
    """A bind mount of host ``source`` at ``target`` inside the sandbox."""

    source: StrPath
    target: StrPath
    read_only: bool = False

    def to_wire(self) -> Dict[str, Any]:
        """The ``mounts`` item for this mount."""
        return {
            "source": os.fspath(self.source),
            "target": os.fspath(self.target),
            "readOnly": bool(self.read_only),
        }


@dataclass(frozen=True)
class StdinFile:
    """Standard input read from a host file (``{"file": path}``)."""

    path: StrPath

    def to_wire(self) -> Dict[str, Any]:
        """The ``stdin`` param for this file."""
        return {"file": os.fspath(self.path)}


@dataclass(frozen=True)
class OutputFile:
    """stdout/stderr written straight to a host file by the command."""

    path: StrPath
    append: bool = False

    def to_wire(self) -> Dict[str, Any]:
        """The ``stdout``/``stderr`` param for this file."""
        return {"file": os.fspath(self.path), "append": bool(self.append)}


@dataclass(frozen=True)
class ResourceLimits:
    """Resource limits of a whole sandbox (the ``limits`` run param; None: not
    limited). Each is enforced by the best mechanism the host has, which
    ``ServerInfo.capabilities.limits`` names; a limit the host cannot enforce
    fails the run with :class:`InvalidParams` naming it."""

    memory_bytes: Optional[int] = None  #: memory of all its processes together
    pids: Optional[int] = None  #: processes and threads at once
    cpu_ms: Optional[int] = None  #: CPU time (the whole sandbox's, or per process: see the mechanism)
    cpus: Optional[float] = None  #: CPU bandwidth (1.5 = one and a half CPUs)
    file_size_bytes: Optional[int] = None  #: largest file written
    open_files: Optional[int] = None  #: open descriptors per process

    def to_wire(self) -> Dict[str, Any]:
        """The ``limits`` param: the limits that are set."""
        from dataclasses import fields

        return {wire_name(f): getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Usage:
    """Resource usage of the sandbox (bwrap, its init and what the init reaped;
    see docs/protocol.md): CPU milliseconds and peak resident set size."""

    user_cpu_ms: float
    system_cpu_ms: float
    max_rss_kib: int = field(metadata={"wire": "maxRssKiB"})

    @classmethod
    def from_wire(cls, data: Any) -> Optional["Usage"]:
        """The ``usage`` of a result (None when absent)."""
        if not isinstance(data, dict):
            return None
        return cls(
            user_cpu_ms=data.get("userCpuMs") or 0,
            system_cpu_ms=data.get("systemCpuMs") or 0,
            max_rss_kib=data.get("maxRssKiB") or 0,
        )


@dataclass(frozen=True)
class CleanupFailure:
    """A path in the root the server could not remove, and why."""

    path: str
    error: str


@dataclass(frozen=True)
class Cleanup:
    """What the server removed from the root after the run. ``deferred``: another
    run was still using the root, and that run's cleanup covers this one
    (``removed`` and ``failed`` are then empty)."""

    ok: bool
    removed: List[str] = field(default_factory=list)
    failed: List[CleanupFailure] = field(default_factory=list)
    deferred: bool = False

    @classmethod
    def from_wire(cls, data: Any) -> Optional["Cleanup"]:
        """The ``cleanup`` of a result (None when absent)."""
        if not isinstance(data, dict):
            return None
        failed = [
            CleanupFailure(str(f.get("path")), str(f.get("error")))
            for f in data.get("failed") or []
            if isinstance(f, dict)
        ]
        return cls(
            ok=bool(data.get("ok")),
            removed=[str(p) for p in data.get("removed") or []],
            failed=failed,
            deferred=bool(data.get("deferred")),
        )


#: The fields of a captured stream (``Captured`` in the OpenRPC document).
CAPTURED_FIELDS = ("text", "base64", "truncated", "error")


def _decode_output(data: Any) -> "tuple[Optional[bytes], bool, Optional[str]]":
    """``{"text"|"base64", "truncated", "error"}`` -> (bytes or None, truncated, error)."""
    if not isinstance(data, dict):
        return None, False, None
    truncated, error = bool(data.get("truncated")), data.get("error")
    if data.get("base64") is not None:
        return base64.b64decode(data["base64"]), truncated, error
    if data.get("text") is not None:
        return data["text"].encode("utf-8", "surrogatepass"), truncated, error
    return b"", truncated, error


def signal_number(name: Optional[str]) -> Optional[int]:
    """``"SIGKILL"`` -> 9 (None when unknown)."""
    if not name:
        return None
    try:
        return int(_signal.Signals[name])
    except KeyError:
        return None


@dataclass
class RunResult:
    """The outcome of one ``sandbox/run``, in the spirit of
    :class:`subprocess.CompletedProcess`.

    ``status`` is one of ``"exited"``, ``"signaled"``, ``"timed-out"``,
    ``"cancelled"``, ``"setup-failed"``. ``stdout``/``stderr`` are bytes when
    captured (str when the run was given ``text=True`` or an ``encoding``),
    ``None`` otherwise (discarded, streamed, or written to a file).
    """

    args: List[str] = field(metadata=LOCAL)
    sandbox_id: str
    status: RunStatus
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    setup_error: Optional[str] = None
    duration_ms: float = 0
    usage: Optional[Usage] = None
    stdout: Union[bytes, str, None] = None
    stderr: Union[bytes, str, None] = None
    stdout_truncated: bool = field(default=False, metadata=LOCAL)
    stderr_truncated: bool = field(default=False, metadata=LOCAL)
    #: why a capture stopped early (the pipe could not be read, or the output
    #: not kept; ``..._truncated`` is then True); None otherwise
    stdout_error: Optional[str] = field(default=None, metadata=LOCAL)
    stderr_error: Optional[str] = field(default=None, metadata=LOCAL)
    cleanup: Optional[Cleanup] = None
    #: the limit that ended or hampered the run ("memory", "pids", "cpu",
    #: "fileSize"), beside the usual status; None when none did
    limit_exceeded: Optional[LimitName] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, metadata=LOCAL)

    @classmethod
    def from_wire(cls, args: List[str], data: Mapping[str, Any],
                  encoding: Optional[str] = None, errors: Optional[str] = None) -> "RunResult":
        """A ``sandbox/run`` result; captured output is decoded with
        ``encoding`` when one is given (``errors`` defaults to ``"replace"``:
        a sandboxed command's bytes are not to be trusted to decode)."""
        stdout, stdout_truncated, stdout_error = _decode_output(data.get("stdout"))
        stderr, stderr_truncated, stderr_error = _decode_output(data.get("stderr"))
        return cls(
            args=list(args),
            sandbox_id=str(data.get("sandboxId")),
            status=data.get("status"),  # type: ignore[arg-type]
            exit_code=data.get("exitCode"),
            signal=data.get("signal"),
            setup_error=data.get("setupError"),
            duration_ms=data.get("durationMs") or 0,
            usage=Usage.from_wire(data.get("usage")),
            stdout=_text(stdout, encoding, errors),
            stderr=_text(stderr, encoding, errors),
            stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated,
            stdout_error=stdout_error,
            stderr_error=stderr_error,
            cleanup=Cleanup.from_wire(data.get("cleanup")),
            limit_exceeded=data.get("limitExceeded"),
            raw=dict(data),
        )

    @property
    def returncode(self) -> Optional[int]:
        """Like ``subprocess``: the exit code, or minus the signal number when
        the command died of a signal; ``None`` when neither is known."""
        if self.status == "exited":
            return self.exit_code
        number = signal_number(self.signal)
        if number is not None:
            return -number
        return self.exit_code

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.status == "exited" and self.exit_code == 0

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return (self.duration_ms or 0) / 1000.0

    @property
    def signal_number(self) -> Optional[int]:
        """The number of the signal that ended the command (None if none did)."""
        return signal_number(self.signal)

    def check_returncode(self) -> None:
        """Raise :class:`SandboxFailed` unless the command exited with 0."""
        if not self.ok:
            from .errors import SandboxFailed

            raise SandboxFailed(self)

    def describe(self) -> str:
        """One line saying how the run ended, with the tail of its stderr."""
        cmd = " ".join(self.args)
        if self.status == "exited":
            text = "sandbox %s: command %r exited with status %s" % (
                self.sandbox_id, cmd, self.exit_code)
        elif self.status == "signaled":
            text = "sandbox %s: command %r died of signal %s" % (
                self.sandbox_id, cmd, self.signal or "?")
        elif self.status == "timed-out":
            text = "sandbox %s: command %r timed out after %.0f ms" % (
                self.sandbox_id, cmd, self.duration_ms or 0)
        elif self.status == "setup-failed":
            text = "sandbox %s: setup failed for %r: %s" % (
                self.sandbox_id, cmd, self.setup_error or "(no message)")
        else:
            text = "sandbox %s: command %r ended with status %s" % (
                self.sandbox_id, cmd, self.status)
        if self.stderr:
            stderr = self.stderr[-500:]
            tail = (stderr if isinstance(stderr, str) else stderr.decode("utf-8", "replace")).rstrip()
            if tail:
                text += "; stderr: " + tail
        return text


def _text(data: Optional[bytes], encoding: Optional[str], errors: Optional[str]) -> Union[bytes, str, None]:
    if data is None or encoding is None:
        return data
    return data.decode(encoding, errors or "replace")


@dataclass(frozen=True)
class BwrapInfo:
    """The bwrap the server runs: ``path`` and ``version`` are None when it
    found none (then every run fails with :class:`BwrapUnavailable`)."""

    path: Optional[str]
    version: Optional[str]


@dataclass(frozen=True)
class Capabilities:
    """What the host really supports, found by running bwrap at start-up."""

    user_namespaces: bool  #: ``uid``/``gid`` apply
    die_with_parent: bool  #: sandboxes die with the helper
    json_status_fd: bool  #: ``sandbox/started``, pids, signals and exact exit codes
    child_subreaper: bool  #: ``usage`` covers the sandboxed command
    linux32: bool  #: ``linux32=True`` works
    framings: str  #: the framings the server reads, comma-separated
    seccomp: Optional[bool] = None  #: system-call filters can be built (``seccomp=``); None: an older server
    #: whether each sandbox gets a cgroup of its own; None: an older server
    cgroup: Optional[CgroupInfo] = None
    #: each limit of ``limits=`` this host enforces, with its mechanism
    #: (``{"pids": "cgroup v1 pids.max", ...}``); a limit missing is refused
    limits: Optional[Dict[str, str]] = None
    #: the sandboxed command may make user namespaces of its own (not as root
    #: on a host with cgroup v1); None: an older server
    nested_user_namespaces: Optional[bool] = None

    @classmethod
    def from_wire(cls, data: Any) -> "Capabilities":
        """The ``capabilities`` of the ``initialize`` result."""
        fields = _fields_from_wire(cls, data)
        fields["cgroup"] = CgroupInfo.from_wire(fields["cgroup"])
        if fields["limits"] is not None:
            fields["limits"] = dict(fields["limits"])
        return cls(**fields)


@dataclass(frozen=True)
class CgroupInfo:
    """Whether each sandbox runs in a cgroup of its own (then ending it kills
    every process, suspend freezes them all, and ``usage`` counts them all):
    ``path`` the cgroup v2 directory they are made in, ``controllers`` the v2
    or v1 controllers they have."""

    available: bool
    path: Optional[str]
    controllers: List[str] = field(default_factory=list)

    @classmethod
    def from_wire(cls, data: Any) -> Optional["CgroupInfo"]:
        """``capabilities.cgroup`` (None when absent)."""
        if not isinstance(data, dict):
            return None
        return cls(bool(data.get("available")), data.get("path"), [str(c) for c in data.get("controllers") or []])


@dataclass(frozen=True)
class Limits:
    """The message limits in force: a larger or deeper message is refused."""

    max_message_bytes: int
    max_nesting_depth: int


def _fields_from_wire(cls: Any, data: Any) -> Dict[str, Any]:
    """The keyword arguments of dataclass ``cls`` from its wire object (missing
    fields are None)."""
    from dataclasses import fields

    data = data if isinstance(data, dict) else {}
    return {f.name: data.get(wire_name(f)) for f in fields(cls)}


def wire_name(f: Any) -> str:
    """The name dataclass field ``f`` has on the wire."""
    if "wire" in f.metadata:
        return str(f.metadata["wire"])
    head, *rest = str(f.name).split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class ServerInfo:
    """The result of ``initialize``."""

    server_name: str
    server_version: str
    protocol_version: int
    bwrap: BwrapInfo
    capabilities: Capabilities
    limits: Limits
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, metadata=LOCAL)

    @classmethod
    def from_wire(cls, data: Any) -> "ServerInfo":
        """The ``initialize`` result."""
        if not isinstance(data, dict):
            data = {}
        return cls(
            server_name=str(data.get("serverName")),
            server_version=str(data.get("serverVersion")),
            protocol_version=data.get("protocolVersion") or 0,
            bwrap=BwrapInfo(**_fields_from_wire(BwrapInfo, data.get("bwrap"))),
            capabilities=Capabilities.from_wire(data.get("capabilities")),
            limits=Limits(**_fields_from_wire(Limits, data.get("limits"))),
            raw=dict(data),
        )

    @property
    def bwrap_path(self) -> Optional[str]:
        """``bwrap.path``."""
        return self.bwrap.path

    @property
    def bwrap_version(self) -> Optional[str]:
        """``bwrap.version``."""
        return self.bwrap.version

    def __getitem__(self, key: str) -> Any:
        """``info["serverName"]``: the raw wire fields."""
        return self.raw[key]


@dataclass(frozen=True)
class SandboxInfo:
    """One entry of ``sandbox/list``: ``pid`` is the init's host pid (0 while
    starting), ``started_at`` when the server received the run (UTC)."""

    sandbox_id: str
    pid: int
    state: SandboxState
    command: List[str]
    started_at: Optional[datetime]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, metadata=LOCAL)

    @classmethod
    def from_wire(cls, data: Any) -> "SandboxInfo":
        """One item of the ``sandbox/list`` result."""
        if not isinstance(data, dict):
            data = {}
        return cls(
            sandbox_id=str(data.get("sandboxId")),
            pid=data.get("pid") or 0,
            state=data.get("state"),
            command=list(data.get("command") or []),
            started_at=parse_time(data.get("startedAt")),
            raw=dict(data),
        )


def parse_time(value: Any) -> Optional[datetime]:
    """An ISO 8601 UTC time as the server writes it (nanoseconds are cut to
    the microseconds datetime holds); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # fromisoformat takes at most 6 fraction digits before Python 3.11
        whole, rest = text.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = whole + "." + rest[:min(digits, 6)].ljust(6, "0") + rest[digits:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class ArgvResult:
    """What ``sandbox/argv`` answers: the program the server would spawn for a
    run, its whole argv and its environment (``NAME=value``)."""

    executable: str
    argv: List[str]
    env: List[str]


MountLike = Union[Mount, Tuple[StrPath, StrPath], Tuple[StrPath, StrPath, bool], Mapping[str, Any]]


class RunOptions(TypedDict, total=False):
    """The keyword options of ``run``/``start`` besides ``root``, ``check``,
    ``timeout``, ``sandbox_id`` and ``on_output``: the ``sandbox/run`` params in
    snake_case (see docs/protocol.md), then how the client hands output back.
    ``None`` leaves a param to the server's default (``stdin=None`` is no
    input). A type checker that knows PEP 692 (mypy >= 1.0 with
    ``--enable-incomplete-feature=Unpack`` before 1.7; pyright) rejects a
    misspelled option; at run time it raises ``TypeError`` before anything is
    sent."""

    cwd: Optional[StrPath]
    env: Optional[Mapping[str, str]]
    network: Optional[bool]
    read_only_root: Optional[bool]
    hostname: Optional[str]
    uid: Optional[int]
    gid: Optional[int]
    inherit_uid: Optional[bool]
    mounts: Optional[Sequence[MountLike]]
    devices: Optional[Sequence[StrPath]]
    dev_shm: Optional[bool]
    linux32: Optional[bool]
    #: bytes or str (written to the command), a host file, None or subprocess.DEVNULL,
    #: or subprocess.PIPE: written while the command runs (``Sandbox.stdin``)
    stdin: Union[bytes, str, StdinFile, int, None]
    #: "capture", "discard", "stream", OutputFile(path), a writable file object
    #: (streamed into it), subprocess.PIPE/DEVNULL
    stdout: Union[OutputMode, int, None]
    #: as stdout, plus "stdout" or subprocess.STDOUT (merged into stdout)
    stderr: Union[OutputMode, Literal["stdout"], int, None]
    capture_limit_bytes: Optional[int]
    timeout_ms: Optional[int]
    kill_grace_ms: Optional[int]
    interactive: Optional[bool]
    #: Linux capabilities ("CAP_NET_RAW", ...) beyond the server's default (a
    #: server that has the parameter)
    capabilities: Optional[Sequence[str]]
    #: "none", "default", or {"deny": [system call, ...], "errno": "EPERM"}: the
    #: system-call filter (a server whose capabilities say seccomp)
    seccomp: Union[Literal["none", "default"], Mapping[str, Any], None]
    #: {"rows": int, "cols": int, "term": str}: run on a new pseudo-terminal (its
    #: output arrives on the "terminal" stream; stdin/stdout/stderr left out)
    terminal: Optional[Mapping[str, Any]]
    #: ResourceLimits(...), or a mapping of its fields (snake_case or the wire's
    #: camelCase): limits of the whole sandbox (see ``capabilities.limits``)
    limits: Union[ResourceLimits, Mapping[str, Any], None]
    #: captured stdout/stderr as str (UTF-8 unless ``encoding``), as subprocess does
    text: bool
    encoding: Optional[str]
    #: how undecodable bytes are decoded (default "replace", unlike subprocess's "strict")
    errors: Optional[str]
    #: raw params merged into the request as they are (for extensions)
    extra_params: Optional[Mapping[str, Any]]
