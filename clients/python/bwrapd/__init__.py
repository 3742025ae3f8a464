"""Python client of bwrapd, the JSON-RPC helper that runs commands in
bubblewrap sandboxes.

    from bwrapd import Helper

    with Helper() as helper:               # $BWRAPD, else bwrapd on PATH
        result = helper.run(["echo", "hello"], root="/", check=True, text=True)
        print(result.stdout)
"""

from ._protocol import PROTOCOL_VERSION, RUN_OPTION_NAMES, default_helper_path
from ._version import __version__
from .aio import AsyncHelper, AsyncSandbox, AsyncSandboxInput, AsyncTerminal
from .client import Helper, Sandbox, SandboxInput, Terminal
from . import errors
from .errors import *  # noqa: F401,F403 - exactly the names in errors.__all__
from .types import (
    ArgvResult,
    BwrapInfo,
    Capabilities,
    CgroupInfo,
    Cleanup,
    CleanupFailure,
    LimitName,
    Limits,
    Mount,
    OutputFile,
    OutputMode,
    ResourceLimits,
    RunOptions,
    RunResult,
    RunStatus,
    SandboxInfo,
    SandboxState,
    ServerInfo,
    SignalName,
    StdinFile,
    Usage,
)

__all__ = [
    "__version__",
    "PROTOCOL_VERSION",
    "RUN_OPTION_NAMES",
    "default_helper_path",
    "Helper",
    "Sandbox",
    "AsyncHelper",
    "AsyncSandbox",
    "Terminal",
    "AsyncTerminal",
    "SandboxInput",
    "AsyncSandboxInput",
    "Mount",
    "StdinFile",
    "OutputFile",
    "RunResult",
    "Usage",
    "Cleanup",
    "CleanupFailure",
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
    "RunStatus",
    "SignalName",
    "SandboxState",
    "OutputMode",
]
__all__ += errors.__all__
