"""Python client of bwrapd, the JSON-RPC helper that runs commands in
bubblewrap sandboxes.

    from bwrapd import Helper

    with Helper() as helper:
        result = helper.run(["echo", "hello"], root="/", check=True)
        print(result.stdout.decode())
"""

from ._protocol import PROTOCOL_VERSION, RUN_OPTION_NAMES, __version__, default_helper_path
from .aio import AsyncHelper, AsyncSandbox
from .client import Helper, Sandbox
from .errors import (
    BwrapdError,
    BwrapUnavailable,
    CommandNotFound,
    Error,
    HelperDied,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    NoSuchSandbox,
    ParseError,
    PathNotAllowed,
    RequestCancelled,
    RpcError,
    SandboxFailed,
    SandboxIdInUse,
    ShuttingDown,
    WaitTimeout,
    error_from_response,
)
from .types import (
    Cleanup,
    CleanupFailure,
    Mount,
    OutputFile,
    RunResult,
    SandboxInfo,
    ServerInfo,
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
    "Mount",
    "StdinFile",
    "OutputFile",
    "RunResult",
    "Usage",
    "Cleanup",
    "CleanupFailure",
    "ServerInfo",
    "SandboxInfo",
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
    "HelperDied",
    "SandboxFailed",
    "WaitTimeout",
    "error_from_response",
]
