"""anypool: run work concurrently the right way by default.

One API — :func:`map`, :func:`imap`, :func:`imap_unordered`, :func:`amap`, :class:`Pool`
(a real ``concurrent.futures.Executor``) and :class:`Pipeline` (stages, each on its own pool)
— over serial, thread, process, asyncio and auto backends.

Public names are imported on first use (PEP 562), so ``import anypool`` is cheap and worker
processes, which import only what they run, start fast.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._backends._shared import Shared as Shared
    from ._backends._warm import shutdown_warm_workers as shutdown_warm_workers
    from ._core._abc import PoolStats as PoolStats
    from ._core._api import amap as amap
    from ._core._api import imap as imap
    from ._core._api import imap_unordered as imap_unordered
    from ._core._api import map as map
    from ._core._exceptions import AnypoolError as AnypoolError
    from ._core._exceptions import AnypoolInternalError as AnypoolInternalError
    from ._core._exceptions import BrokenPoolError as BrokenPoolError
    from ._core._exceptions import ClosedPoolError as ClosedPoolError
    from ._core._exceptions import InitializerError as InitializerError
    from ._core._exceptions import MemoryLimitExceeded as MemoryLimitExceeded
    from ._core._exceptions import PicklingError as PicklingError
    from ._core._exceptions import RemoteError as RemoteError
    from ._core._exceptions import RemoteTraceback as RemoteTraceback
    from ._core._exceptions import TaskTimeoutError as TaskTimeoutError
    from ._core._exceptions import WorkerCrashed as WorkerCrashed
    from ._core._options import ApiKwargs as ApiKwargs
    from ._core._options import MapKwargs as MapKwargs
    from ._core._pipeline import Pipeline as Pipeline
    from ._core._pool import Pool as Pool
    from ._core._rate import RateLimiter as RateLimiter
    from ._core._registry import get_all_backends as get_all_backends
    from ._core._registry import get_available_backends as get_available_backends
    from ._core._registry import get_backend as get_backend
    from ._core._registry import register_backend as register_backend
    from ._core._result import Result as Result
    from ._core._sync import Counter as Counter
    from ._core._tasks import Retry as Retry
    from ._core._tasks import WorkerContext as WorkerContext
    from ._core._tasks import current_worker as current_worker
    from ._core._tracing import TaskRecord as TaskRecord
    from ._core._tracing import Trace as Trace
    from ._core._tracing import WorkerEvent as WorkerEvent
    from ._core._tracing import trace as trace
    from .checks import AnypoolWarning as AnypoolWarning
    from .checks import BlockedEventLoopWarning as BlockedEventLoopWarning
    from .checks import CPUBoundInThreadsWarning as CPUBoundInThreadsWarning
    from .checks import watch as watch
    from .checks import watch_loop as watch_loop

__version__ = "0.2.0.dev0"

__all__ = (
    "ApiKwargs",
    "MapKwargs",
    "AnypoolError",
    "AnypoolWarning",
    "BlockedEventLoopWarning",
    "CPUBoundInThreadsWarning",
    "AnypoolInternalError",
    "BrokenPoolError",
    "ClosedPoolError",
    "Counter",
    "InitializerError",
    "PicklingError",
    "MemoryLimitExceeded",
    "Pipeline",
    "Pool",
    "PoolStats",
    "RateLimiter",
    "RemoteError",
    "RemoteTraceback",
    "Result",
    "Retry",
    "Shared",
    "TaskRecord",
    "TaskTimeoutError",
    "Trace",
    "WorkerContext",
    "WorkerCrashed",
    "WorkerEvent",
    "amap",
    "current_worker",
    "get_all_backends",
    "get_available_backends",
    "get_backend",
    "imap",
    "imap_unordered",
    "map",
    "shutdown_warm_workers",
    "register_backend",
    "trace",
    "watch",
    "watch_loop",
)

#: public name -> the private module that defines it
_LAZY: dict[str, str] = {
    "amap": "anypool._core._api",
    "imap": "anypool._core._api",
    "imap_unordered": "anypool._core._api",
    "map": "anypool._core._api",
    "shutdown_warm_workers": "anypool._backends._warm",
    "AnypoolError": "anypool._core._exceptions",
    "AnypoolInternalError": "anypool._core._exceptions",
    "BrokenPoolError": "anypool._core._exceptions",
    "ClosedPoolError": "anypool._core._exceptions",
    "InitializerError": "anypool._core._exceptions",
    "MemoryLimitExceeded": "anypool._core._exceptions",
    "PicklingError": "anypool._core._exceptions",
    "RemoteError": "anypool._core._exceptions",
    "RemoteTraceback": "anypool._core._exceptions",
    "TaskTimeoutError": "anypool._core._exceptions",
    "WorkerCrashed": "anypool._core._exceptions",
    "Pipeline": "anypool._core._pipeline",
    "Pool": "anypool._core._pool",
    "PoolStats": "anypool._core._abc",
    "RateLimiter": "anypool._core._rate",
    "Counter": "anypool._core._sync",
    "Shared": "anypool._backends._shared",
    "MapKwargs": "anypool._core._options",
    "ApiKwargs": "anypool._core._options",
    "get_all_backends": "anypool._core._registry",
    "get_available_backends": "anypool._core._registry",
    "get_backend": "anypool._core._registry",
    "register_backend": "anypool._core._registry",
    "Result": "anypool._core._result",
    "Retry": "anypool._core._tasks",
    "WorkerContext": "anypool._core._tasks",
    "current_worker": "anypool._core._tasks",
    "TaskRecord": "anypool._core._tracing",
    "WorkerEvent": "anypool._core._tracing",
    "Trace": "anypool._core._tracing",
    "trace": "anypool._core._tracing",
    "AnypoolWarning": "anypool.checks",
    "BlockedEventLoopWarning": "anypool.checks",
    "CPUBoundInThreadsWarning": "anypool.checks",
    "watch": "anypool.checks",
    "watch_loop": "anypool.checks",
}

logging.getLogger("anypool").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anypool' has no attribute {name!r}")
    obj = getattr(importlib.import_module(module), name)
    # show public names as ``anypool.X`` in reprs, tracebacks, pickles and docs
    if getattr(obj, "__module__", "").startswith("anypool._"):
        try:
            obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass
    globals()[name] = obj
    return obj


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
