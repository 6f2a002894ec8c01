"""One interface through which tracing and the runtime checks observe a pool's runs (private).

A *run* is one ``map`` (or a pool's stream of ``submit`` calls while traced). The pool makes
the observers of each run (the trace recorder when ``trace=`` or ``anypool.trace()`` is on,
the CPU-bound-in-threads check of ``debug=True``/``anypool.watch()``) and the engine and the
backends report to them through :class:`RunObserver`'s hooks, and nothing else: the backends
do not import the tracer or the checks.

Who calls what:

- the map engine: :meth:`RunObserver.chunk_submitted` after each chunk is submitted (again
  when a timed-out chunk is submitted anew) and :meth:`RunObserver.chunk_done` just before
  it hands a finished chunk's results (or its error) to the caller;
- ``run_chunk`` in a worker of this process (threads, serial, asyncio):
  :meth:`RunObserver.chunk_started`;
- a backend that sees what the worker cannot report (the process dispatcher):
  :meth:`RunObserver.chunk_lost` for an attempt that ended without a result (a crash, a
  timeout) and :meth:`RunObserver.worker_replaced` (a memory recycle or kill).

The backend-side hooks reach the observers through the chunk's retry settings, which every
backend already receives with every chunk: when an observer sets :attr:`RunObserver.times_calls`
the engine sends a ``TracedRetry`` carrying the run's observers (and ``run_chunk`` then times
each call in the worker); :func:`observer_of` gives them back to a backend (``None`` in a
worker process, or for a run that no observer times).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from typing import Any, ClassVar

from ._tasks import Retry, TracedRetry

#: a worker's identity in reports: ``(backend, worker id, pid, thread name[, host])``
Worker = tuple[Any, ...]


class RunObserver:
    """Watches one run of a pool. Every hook does nothing; a subclass overrides what it needs.

    Hooks run on the pool's threads (the caller's, a backend's dispatcher, a worker thread):
    they must be quick, thread-safe and must not raise (a warning is fine).
    """

    __slots__ = ()

    #: the run's chunks time each call in the worker (``ChunkResult.trace``); also what
    #: makes the backend-side hooks reach this observer (see the module's docstring)
    times_calls: ClassVar[bool] = False

    def chunk_submitted(self, fut: cf.Future[Any], base: int, items: Sequence[Any]) -> None:
        """The chunk ``items`` (inputs ``base``, ``base + 1``...) was submitted as ``fut``."""

    def chunk_done(self, fut: cf.Future[Any]) -> None:
        """``fut`` finished and its results (or error) are about to be handed out."""

    def chunk_started(self, items: Sequence[Any], worker: Worker, at: float) -> None:
        """A worker of this process started the chunk ``items`` at ``at`` (``time.time()``)."""

    def chunk_lost(
        self,
        fut: cf.Future[Any],
        n: int,
        outcome: str,
        worker: Worker,
        start: float,
        end: float,
        error: str | None,
        attempt: int = 1,
    ) -> None:
        """An attempt at the chunk of ``fut`` (``n`` items) ended without a result.

        ``outcome``: ``"crash"``, ``"timeout"`` or ``"retry"`` (a crashed attempt that will
        run again). Reported before the future fails or the chunk is queued again.
        """

    def worker_replaced(self, kind: str, worker: Worker, reason: str) -> None:
        """A worker running this run's work was replaced (``"recycle"``, ``"memory_kill"``)."""


class RunObservers(RunObserver):
    """The observers of one run, as one observer (what the engine and the backends call)."""

    __slots__ = ("observers", "_retries")

    def __init__(self, observers: Sequence[RunObserver]) -> None:
        self.observers = tuple(observers)
        self._retries: dict[int, Retry] = {}

    @property
    def calls_timed(self) -> bool:
        """Whether one of the observers asks for each call to be timed."""
        return any(o.times_calls for o in self.observers)

    def retry_for(self, retry: Retry) -> Retry:
        """The retry settings to send with the run's chunks.

        A ``TracedRetry`` carrying these observers when one of them times calls (cached per
        ``retry``: backends cache the pickled retry by identity), else ``retry`` itself.
        """
        if not self.calls_timed:
            return retry
        cached = self._retries.get(id(retry))
        if cached is None:
            cached = TracedRetry(
                attempts=retry.attempts,
                retry_on=retry.retry_on,
                backoff=retry.backoff,
                max_backoff=retry.max_backoff,
                observer=self,
            )
            self._retries[id(retry)] = cached
        return cached

    def chunk_submitted(self, fut: cf.Future[Any], base: int, items: Sequence[Any]) -> None:
        for o in self.observers:
            o.chunk_submitted(fut, base, items)

    def chunk_done(self, fut: cf.Future[Any]) -> None:
        for o in self.observers:
            o.chunk_done(fut)

    def chunk_started(self, items: Sequence[Any], worker: Worker, at: float) -> None:
        for o in self.observers:
            o.chunk_started(items, worker, at)

    def chunk_lost(
        self,
        fut: cf.Future[Any],
        n: int,
        outcome: str,
        worker: Worker,
        start: float,
        end: float,
        error: str | None,
        attempt: int = 1,
    ) -> None:
        for o in self.observers:
            o.chunk_lost(fut, n, outcome, worker, start, end, error, attempt)

    def worker_replaced(self, kind: str, worker: Worker, reason: str) -> None:
        for o in self.observers:
            o.worker_replaced(kind, worker, reason)


def observer_of(retry: Any) -> RunObserver | None:
    """The observers a chunk with these retry settings reports to (for backends), or None."""
    if type(retry) is TracedRetry:
        obs: RunObserver | None = retry.observer
        return obs
    return None


# -- the runtime checks (``anypool.checks._runtime``) register here when imported -------------
_runtime_checks: Any = None


def register_runtime_checks(module: Any) -> None:
    """Called once by the runtime-checks module as it is imported (``debug=True`` imports it;
    ``anypool.watch()`` lives there), so the pool finds it without naming it."""
    global _runtime_checks
    _runtime_checks = module


def runtime_checks() -> Any:
    """The runtime-checks module when it has been imported, else None (then no ``watch()``
    block can be active, and a pool without ``debug=True`` has nothing to check)."""
    return _runtime_checks
