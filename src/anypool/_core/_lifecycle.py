"""A worker's life around its tasks: finalizer, broadcast calls, native thread pools (private).

Every backend runs these the same way; a backend only decides *where* (which thread, process
or event loop) and *when* (as a worker stops).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Literal

from ._tasks import WorkerContext, call_sync, reset_current_worker, set_current_worker

log = logging.getLogger("anypool")

#: seconds a worker's finalizer may run before the worker is killed (threads: abandoned)
FINALIZER_TIMEOUT = 10.0

#: the environment variables native libraries read for the size of their thread pools
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

InnerThreads = int | Literal["auto"] | None


def check_inner_threads(value: object) -> InnerThreads:
    """Validate ``inner_threads=``: a positive int, ``"auto"`` or ``None``."""
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"inner_threads must be a positive whole number (threads per worker for BLAS and "
            f"OpenMP), 'auto' (processes: CPUs // workers) or None (leave native libraries "
            f"alone), got {value!r}"
        )
    return value


def check_finalizer_timeout(value: object) -> float:
    """Validate ``finalizer_timeout=``: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"finalizer_timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def inner_threads_for_processes(value: InnerThreads, workers: int, cpus: int) -> int | None:
    """The thread cap of each worker process: ``"auto"`` is the worker's share of the CPUs."""
    if value == "auto":
        return max(1, cpus // max(1, workers))
    return value


def limit_native_threads(n: int, *, override_env: bool) -> Any:
    """Cap BLAS/OpenMP thread pools of this process to ``n`` threads.

    The environment variables cover libraries loaded from now on; :mod:`threadpoolctl` covers
    those already loaded (a fork server may have imported numpy before this worker started).
    Without ``override_env`` (the default cap), a user who set any of the variables manages
    them: nothing is changed. Returns the limiter, if one was needed.
    """
    if not override_env and any(var in os.environ for var in THREAD_ENV_VARS):
        return None
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    if not _native_pools_loaded():
        return None  # importing threadpoolctl costs ~20 ms a worker: only when needed
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; the variables still apply
        return None
    return threadpool_limits(limits=n)


#: parts of the file names of the libraries threadpoolctl controls
_NATIVE_POOL_LIBS = (b"blas", b"libgomp", b"libomp", b"libiomp", b"mkl_rt", b"libmkl", b"blis")


def _native_pools_loaded() -> bool:
    """Whether a BLAS or OpenMP library is already loaded in this process (Linux: from
    ``/proc/self/maps``; elsewhere assumed, so threadpoolctl looks)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            maps = f.read().lower()
    except OSError:
        return True
    return any(name in maps for name in _NATIVE_POOL_LIBS)


def limit_in_process(n: int) -> Any:
    """Cap the BLAS/OpenMP thread pools of this process while an in-process pool is open.

    Only :mod:`threadpoolctl` (the caller's environment variables are left alone); the
    returned limiter's ``restore_original_limits()`` undoes it.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency
        return None
    return threadpool_limits(limits=n)


def run_finalizer(
    finalizer: Callable[..., object], ctx: WorkerContext | None
) -> BaseException | None:
    """Run ``finalizer()`` as worker ``ctx``; return its exception instead of raising it."""
    token = set_current_worker(ctx)
    try:
        call_sync(finalizer, (), {})
    except BaseException as exc:  # SystemExit too: the worker is stopping anyway
        return exc
    finally:
        reset_current_worker(token)
    return None


def log_finalizer_error(backend: str, worker_id: int, exc: BaseException) -> None:
    """Log a finalizer's error on the ``anypool`` logger, naming the worker."""
    log.error(
        "the finalizer of %s worker %d raised %s: %s",
        backend,
        worker_id,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


def log_finalizer_timeout(backend: str, worker_id: int, seconds: float, what: str) -> None:
    """Log a finalizer that did not return within ``finalizer_timeout``."""
    log.error(
        "the finalizer of %s worker %d did not return within finalizer_timeout=%gs; %s",
        backend,
        worker_id,
        seconds,
        what,
    )


def raise_broadcast_errors(
    backend: str, fn: Callable[..., Any], errors: dict[int, BaseException]
) -> None:
    """Raise the error of the lowest-numbered failing worker, with a note naming it."""
    if not errors:
        return
    wid = min(errors)
    exc = errors[wid]
    name = getattr(fn, "__qualname__", repr(fn))
    others = len(errors) - 1
    exc.add_note(
        f"raised by broadcast {name}() on {backend} worker {wid}"
        + (f" ({others} other worker(s) failed too: {sorted(errors)})" if others else "")
    )
    raise exc
