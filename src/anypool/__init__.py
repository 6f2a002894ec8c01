"""anypool: run work concurrently the right way by default.

One API — :func:`map`, :func:`imap`, :func:`imap_unordered`, :func:`amap` and :class:`Pool`
(a real ``concurrent.futures.Executor``) — over serial, thread, process and asyncio backends.
"""

import logging

from ._core._api import amap as amap
from ._core._api import imap as imap
from ._core._api import imap_unordered as imap_unordered
from ._core._api import map as map
from ._core._exceptions import AnypoolError as AnypoolError
from ._core._exceptions import AnypoolInternalError as AnypoolInternalError
from ._core._exceptions import BrokenPoolError as BrokenPoolError
from ._core._exceptions import ClosedPoolError as ClosedPoolError
from ._core._exceptions import InitializerError as InitializerError
from ._core._exceptions import PicklingError as PicklingError
from ._core._exceptions import RemoteError as RemoteError
from ._core._exceptions import RemoteTraceback as RemoteTraceback
from ._core._exceptions import TaskTimeoutError as TaskTimeoutError
from ._core._exceptions import WorkerCrashed as WorkerCrashed
from ._core._pool import Pool as Pool
from ._core._registry import get_all_backends as get_all_backends
from ._core._registry import get_available_backends as get_available_backends
from ._core._registry import get_backend as get_backend
from ._core._registry import register_backend as register_backend
from ._core._result import Result as Result
from ._core._tasks import Retry as Retry
from ._core._tasks import WorkerContext as WorkerContext
from ._core._tasks import current_worker as current_worker
from .checks import AnypoolWarning as AnypoolWarning
from .checks import BlockedEventLoopWarning as BlockedEventLoopWarning
from .checks import CPUBoundInThreadsWarning as CPUBoundInThreadsWarning
from .checks import watch as watch
from .checks import watch_loop as watch_loop

__version__ = "0.1.0"

__all__ = (
    "AnypoolError",
    "AnypoolWarning",
    "BlockedEventLoopWarning",
    "CPUBoundInThreadsWarning",
    "AnypoolInternalError",
    "BrokenPoolError",
    "ClosedPoolError",
    "InitializerError",
    "PicklingError",
    "Pool",
    "RemoteError",
    "RemoteTraceback",
    "Result",
    "Retry",
    "TaskTimeoutError",
    "WorkerContext",
    "WorkerCrashed",
    "amap",
    "current_worker",
    "get_all_backends",
    "get_available_backends",
    "get_backend",
    "imap",
    "imap_unordered",
    "map",
    "register_backend",
    "watch",
    "watch_loop",
)

logging.getLogger("anypool").addHandler(logging.NullHandler())


def _fixup_module_metadata() -> None:
    """Show public names as ``anypool.X`` in reprs, tracebacks and docs."""
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("anypool._"):
            try:
                obj.__module__ = __name__
            except (AttributeError, TypeError):
                pass


_fixup_module_metadata()
del _fixup_module_metadata
