"""The serial backend: every task runs in the caller's thread, one after another.

Use it to debug: breakpoints, prints and profilers work as in a plain loop.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._core._abc import Backend, WorkerSpec
from .._core._exceptions import ClosedPoolError, InitializerError, TaskTimeoutError
from .._core._lifecycle import log_finalizer_error, raise_broadcast_errors, run_finalizer
from .._core._tasks import (
    WorkerContext,
    call_sync,
    reset_current_worker,
    set_current_worker,
)


class SerialBackend(Backend):
    """Runs each task at once, in the thread that submits it."""

    name = "serial"
    target_chunk_seconds = 0.05

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        self._ctx: WorkerContext | None = None
        self._next_id = 0
        self._closed = False
        self._lock = threading.RLock()  # shutdown() may be called from inside a task

    def start(self) -> None:
        """Nothing to start; the initializer runs before the first task."""

    def _context(self) -> WorkerContext:
        if self._ctx is None or (
            self.spec.max_tasks_per_worker is not None
            and self._ctx.tasks_done >= self.spec.max_tasks_per_worker
        ):
            self._finalize()  # the recycled worker stops
            ctx = WorkerContext(id=self._next_id, backend=self.name)
            self._next_id += 1
            if self.spec.initializer is not None:
                token = set_current_worker(ctx)
                try:
                    self.spec.initializer(*self.spec.initargs)
                except BaseException as exc:
                    raise InitializerError(
                        f"the pool's initializer {self.spec.initializer!r} raised "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                finally:
                    reset_current_worker(token)
            self._ctx = ctx
        return self._ctx

    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Run the call now and return a finished future."""
        if self._closed:
            raise ClosedPoolError("cannot submit to a pool that was shut down")
        fut: cf.Future[Any] = cf.Future()
        fut.set_running_or_notify_cancel()
        with self._lock:
            try:
                ctx = self._context()
            except InitializerError as exc:
                fut.set_exception(exc)
                return fut
            token = set_current_worker(ctx)
            t0 = time.monotonic()
            try:
                result = call_sync(fn, args, kwargs)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                fut.set_exception(exc)
            else:
                if timeout is not None and time.monotonic() - t0 > timeout:
                    fut.set_exception(
                        TaskTimeoutError(
                            f"task {fn!r} ran longer than task_timeout={timeout}s (the serial "
                            "backend cannot interrupt a task; it reports the overrun afterwards)"
                        )
                    )
                else:
                    fut.set_result(result)
            finally:
                ctx.tasks_done += 1
                reset_current_worker(token)
        return fut

    def _finalize(self) -> None:
        """Run the finalizer for the current worker, if it started (under ``_lock``).

        It runs in the caller's thread, like the tasks: a finalizer that hangs hangs the
        caller, as a task that hangs would.
        """
        ctx, self._ctx = self._ctx, None
        if ctx is None or self.spec.finalizer is None:
            return
        err = run_finalizer(self.spec.finalizer, ctx)
        if err is not None:
            log_finalizer_error(self.name, ctx.id, err)

    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Run ``fn(*args)`` now, in the caller, as the one worker: ``{worker id: result}``."""
        if self._closed:
            raise ClosedPoolError("cannot broadcast to a pool that was shut down")
        with self._lock:
            ctx = self._context()
            token = set_current_worker(ctx)
            try:
                result = call_sync(fn, args, {})
            except Exception as exc:
                raise_broadcast_errors(self.name, fn, {ctx.id: exc})
                raise  # pragma: no cover - raise_broadcast_errors raised it
            finally:
                reset_current_worker(token)
        return {ctx.id: result}

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Refuse further tasks; the worker's finalizer runs (once)."""
        with self._lock:
            self._closed = True
            self._finalize()

    def effective_workers(self) -> int:
        """Always 1."""
        return 1


backend_class = SerialBackend
