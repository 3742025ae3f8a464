"""Data types of the bwrapd client: run options and results."""

from __future__ import annotations

import base64
import os
import signal as _signal
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

__all__ = [
    "Mount",
    "StdinFile",
    "OutputFile",
    "Usage",
    "CleanupFailure",
    "Cleanup",
    "RunResult",
    "ServerInfo",
    "SandboxInfo",
    "StrPath",
]

StrPath = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Mount:
    """A bind mount of host ``source`` at ``target`` inside the sandbox."""

    source: StrPath
    target: StrPath
    read_only: bool = False

    def to_wire(self) -> Dict[str, Any]:
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
        return {"file": os.fspath(self.path)}


@dataclass(frozen=True)
class OutputFile:
    """stdout/stderr written straight to a host file by the command."""

    path: StrPath
    append: bool = False

    def to_wire(self) -> Dict[str, Any]:
        return {"file": os.fspath(self.path), "append": bool(self.append)}


@dataclass(frozen=True)
class Usage:
    """Resource usage of the sandboxed command's processes."""

    user_cpu_ms: float
    system_cpu_ms: float
    max_rss_kib: int

    @classmethod
    def from_wire(cls, data: Any) -> Optional["Usage"]:
        if not isinstance(data, dict):
            return None
        return cls(
            user_cpu_ms=data.get("userCpuMs") or 0,
            system_cpu_ms=data.get("systemCpuMs") or 0,
            max_rss_kib=data.get("maxRssKiB") or 0,
        )


@dataclass(frozen=True)
class CleanupFailure:
    path: str
    error: str


@dataclass(frozen=True)
class Cleanup:
    """What the server removed from the root after the run."""

    ok: bool
    removed: List[str] = field(default_factory=list)
    failed: List[CleanupFailure] = field(default_factory=list)

    @classmethod
    def from_wire(cls, data: Any) -> Optional["Cleanup"]:
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
        )


def _decode_output(data: Any) -> "tuple[Optional[bytes], bool]":
    """``{"text"|"base64", "truncated"}`` -> (bytes or None, truncated)."""
    if not isinstance(data, dict):
        return None, False
    truncated = bool(data.get("truncated"))
    if data.get("base64") is not None:
        return base64.b64decode(data["base64"]), truncated
    if data.get("text") is not None:
        return data["text"].encode("utf-8", "surrogatepass"), truncated
    return b"", truncated


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
    captured, ``None`` otherwise (discarded, streamed, or written to a file).
    """

    args: List[str]
    sandbox_id: str
    status: str
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    setup_error: Optional[str] = None
    duration_ms: float = 0
    usage: Optional[Usage] = None
    stdout: Optional[bytes] = None
    stderr: Optional[bytes] = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    cleanup: Optional[Cleanup] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, args: List[str], data: Mapping[str, Any]) -> "RunResult":
        stdout, stdout_truncated = _decode_output(data.get("stdout"))
        stderr, stderr_truncated = _decode_output(data.get("stderr"))
        return cls(
            args=list(args),
            sandbox_id=str(data.get("sandboxId")),
            status=str(data.get("status")),
            exit_code=data.get("exitCode"),
            signal=data.get("signal"),
            setup_error=data.get("setupError"),
            duration_ms=data.get("durationMs") or 0,
            usage=Usage.from_wire(data.get("usage")),
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=stdout_truncated,
            stderr_truncated=stderr_truncated,
            cleanup=Cleanup.from_wire(data.get("cleanup")),
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

    def check_returncode(self) -> None:
        """Raise :class:`SandboxFailed` unless the command exited with 0."""
        if not self.ok:
            from .errors import SandboxFailed

            raise SandboxFailed(self)

    def describe(self) -> str:
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
            tail = self.stderr[-500:].decode("utf-8", "replace").rstrip()
            if tail:
                text += "; stderr: " + tail
        return text


@dataclass(frozen=True)
class ServerInfo:
    """The result of ``initialize``."""

    server_name: str
    server_version: str
    protocol_version: int
    bwrap_path: Optional[str]
    bwrap_version: Optional[str]
    capabilities: Dict[str, Any]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, data: Any) -> "ServerInfo":
        if not isinstance(data, dict):
            data = {}
        bwrap = data.get("bwrap") if isinstance(data.get("bwrap"), dict) else {}
        caps = data.get("capabilities") if isinstance(data.get("capabilities"), dict) else {}
        return cls(
            server_name=str(data.get("serverName")),
            server_version=str(data.get("serverVersion")),
            protocol_version=data.get("protocolVersion") or 0,
            bwrap_path=bwrap.get("path"),
            bwrap_version=bwrap.get("version"),
            capabilities=dict(caps),
            raw=dict(data),
        )

    def __getitem__(self, key: str) -> Any:
        """``info["serverName"]``: the raw wire fields."""
        return self.raw[key]


@dataclass(frozen=True)
class SandboxInfo:
    """One entry of ``sandbox/list``."""

    sandbox_id: str
    pid: Optional[int]
    state: str
    command: List[str]
    started_at: Any
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, data: Any) -> "SandboxInfo":
        if not isinstance(data, dict):
            data = {}
        return cls(
            sandbox_id=str(data.get("sandboxId")),
            pid=data.get("pid"),
            state=str(data.get("state")),
            command=list(data.get("command") or []),
            started_at=data.get("startedAt"),
            raw=dict(data),
        )
