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
from . import errors
from .errors import *  # noqa: F401,F403 - exactly the names in errors.__all__
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
]
__all__ += errors.__all__
