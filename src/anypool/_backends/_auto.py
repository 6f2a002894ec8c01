"""The ``auto`` backend: the guide's "Choosing the Right Approach" as code.

Coroutine functions go to asyncio. Other functions are measured on their first inputs, run
one at a time on a single measuring thread (tiny ones in chunks of ~0.5 ms; their results are
kept, never recomputed; a ``task_timeout`` still applies): wall time and CPU time per item
and the size of a result. From those it estimates how long the rest would take on serial,
thread and process execution and picks the fastest, with a worker count to match. The
decision and its reasons are kept for :meth:`anypool.Pool.explain` and logged at INFO on the
``anypool`` logger.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .._core._abc import Backend, WorkerSpec
from .._core._exceptions import ClosedPoolError
from .._core._registry import get_backend
from .._core._tasks import ChunkResult, Retry, available_cpus, is_async_callable, run_chunk
from ._serial import SerialBackend
from ._threads import ThreadBackend

log = logging.getLogger("anypool")

#: stop measuring after this many inputs, or this much measured time, whichever comes first
SAMPLE_ITEMS = 3
SAMPLE_SECONDS = 0.01
#: work per measuring chunk after the first (one input): the map's chunker sizes chunks from
#: the time measured so far. Enough to time tiny tasks well past the fixed cost of a chunk
#: (~5 us, which a one-input chunk measures instead of a 0.1 us task), small enough that
#: tasks of 0.5 ms and more are measured one at a time and little of the input runs on the
#: measuring thread (at 5 ms, the default, 55,000 of 200,000 tiny inputs did)
SAMPLE_CHUNK_SECONDS = 0.0005
#: assumed number of inputs when the input has no length
UNKNOWN_TOTAL = 10_000
#: costs of this machine class, used by the estimate (conservative, measured on 2 cores)
PROCESS_STARTUP = 0.08  # seconds to start a process pool (fork server) and its workers
PROCESS_PER_ITEM = 3e-6  # seconds of hand-off per item, chunked
THREAD_PER_ITEM = 2e-6  # seconds of hand-off per item, chunked
TRANSFER_BYTES_PER_SECOND = 500e6  # pickling + pipe, results coming back
MAX_IO_THREADS = 64
#: coroutines in flight when auto sends a coroutine function to asyncio. A waiting coroutine
#: costs a task object (~2 KB) and the loop spends ~10-20 us of CPU per task, so at 10 ms
#: waits ~1000 in flight keep one loop busy; the asyncio backend's own default (100) is a
#: polite limit for services, and 10x slower on such waits (benchmarks, section u)
ASYNC_WORKERS = 1000


def gil_enabled() -> bool:
    """False on a free-threaded CPython build running without the GIL."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


@dataclass(frozen=True)
class Decision:
    """What ``auto`` measured and what it chose (see :meth:`anypool.Pool.explain`)."""

    backend: str
    workers: int
    reason: str
    items_measured: int = 0
    wall_per_item: float = 0.0
    cpu_per_item: float = 0.0
    result_bytes: float = 0.0
    estimates: tuple[tuple[str, float], ...] = ()

    def explain(self) -> str:
        """The decision in plain words."""
        lines = [
            f"auto chose backend={self.backend!r} with {self.workers} worker(s): {self.reason}"
        ]
        if self.items_measured:
            share = 100 * self.cpu_per_item / self.wall_per_item if self.wall_per_item else 0
            lines.append(
                f"measured {self.items_measured} input(s), one chunk at a time: "
                f"{_fmt_time(self.wall_per_item)} per item, {share:.0f}% of it on CPU, "
                f"results about {self.result_bytes:,.0f} bytes"
            )
        if self.estimates:
            lines.append(
                "estimated time for the rest: "
                + ", ".join(f"{name} {_fmt_time(t)}" for name, t in self.estimates)
            )
        return "\n".join(lines)


def _fmt_time(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.1f} us"


def decide(
    wall: float,
    cpu: float,
    result_bytes: float,
    remaining: int,
    cpus: int,
    picklable: bool,
    workers: int | None,
    gil: bool = True,
) -> Decision:
    """Estimate serial, thread and process times for ``remaining`` items; pick the least."""
    wall = max(wall, 1e-9)
    cpu = min(max(cpu, 0.0), wall)
    ratio = cpu / wall
    n = max(remaining, 1)
    estimates: dict[str, tuple[float, int]] = {}
    estimates["serial"] = (n * wall, 1)
    # threads: waiting overlaps; Python CPU work is serialised by the GIL
    if workers is not None:
        t_workers = workers
    else:
        t_workers = (
            MAX_IO_THREADS
            if ratio < 0.02
            else max(cpus + 4, min(MAX_IO_THREADS, math.ceil(1 / max(ratio, 1e-3))))
        )
    t_workers = min(t_workers, n)
    cpu_lanes = cpus if not gil else 1
    thread_time = max(n * cpu / cpu_lanes, n * wall / t_workers) + n * THREAD_PER_ITEM
    estimates["thread"] = (thread_time, t_workers)
    if picklable:
        if workers is not None:
            p_workers = workers
        else:
            # enough processes to keep every core busy when part of each task waits
            p_workers = cpus if ratio >= 0.8 else min(4 * cpus, math.ceil(cpus / max(ratio, 0.25)))
        p_workers = min(p_workers, n)
        proc_time = (
            PROCESS_STARTUP
            + max(n * cpu / min(cpus, p_workers), n * wall / p_workers)
            + n * (PROCESS_PER_ITEM + result_bytes / TRANSFER_BYTES_PER_SECOND)
        )
        estimates["process"] = (proc_time, p_workers)
    best = min(estimates, key=lambda k: estimates[k][0])
    if best == "serial":
        reason = (
            f"tasks are tiny ({_fmt_time(wall)} each): handing them to other threads or "
            "processes would cost more than running them here"
        )
    elif best == "thread":
        reason = (
            f"I/O-bound: {100 * ratio:.0f}% of wall time on CPU, {_fmt_time(wall)} per item "
            "→ threads overlap the waiting"
        )
    else:
        reason = (
            f"CPU-bound: {100 * ratio:.0f}% of wall time on CPU, {_fmt_time(wall)} per item "
            "→ processes run Python in parallel (threads would take turns on the GIL)"
        )
    if not picklable:
        reason += "; processes were ruled out: the function cannot be pickled"
    return Decision(
        backend=best,
        workers=estimates[best][1],
        reason=reason,
        estimates=tuple((k, v[0]) for k, v in sorted(estimates.items(), key=lambda kv: kv[1])),
    )


def _picklable(fn: Callable[..., Any]) -> bool:
    """Whether the process backend could send ``fn`` to its workers."""
    try:
        import cloudpickle

        cloudpickle.dumps(fn)
    except Exception:
        return False
    return True


def decide_async(workers: int | None) -> Decision:
    """Coroutine functions go to asyncio: ``workers`` in flight if given, else
    :data:`ASYNC_WORKERS` (coroutines are not measured: one at a time, their waits would
    cost more than the measurement could save)."""
    if workers is not None:
        return Decision(
            "asyncio",
            workers,
            "a coroutine function (async def) → asyncio runs many of them on one event loop",
        )
    return Decision(
        "asyncio",
        ASYNC_WORKERS,
        f"a coroutine function (async def) → asyncio runs up to {ASYNC_WORKERS} of them at "
        "once on one event loop (pass workers= to limit how many are in flight)",
    )


class AutoBackend(Backend):
    """Measures the first inputs in the caller, then hands the rest to the backend that fits."""

    name = "auto"
    sync_kind = "auto"

    def __init__(self, spec: WorkerSpec) -> None:
        super().__init__(spec)
        if spec.options:
            raise TypeError(
                "backend='auto' takes no backend options (got "
                + ", ".join(sorted(spec.options))
                + "); name the backend explicitly to pass its options"
            )
        self._user_workers: int | None = spec.workers
        self._sampler = ThreadBackend(replace(spec, workers=1, options={}))
        self._inner: Backend | None = None
        self._decision: Decision | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._samples: list[tuple[float, float, float]] = []  # wall, cpu, result bytes
        self._sampled_items = 0  # inputs measured (a chunk per sample: 1 unless chunksize=)
        self._total: int | None = None
        self._pending: cf.Future[ChunkResult] | None = None
        #: called with the chosen backend once it has started (``Pool(debug=True)`` uses it)
        self.on_choose: Callable[[Backend], None] | None = None

    # the Pool tells us whether workers= was given and how many inputs a map has
    def configure(self, workers_given: bool) -> None:
        """Whether the user chose the worker count (then it is kept for any backend)."""
        if not workers_given:
            self._user_workers = None

    def set_total(self, total: int | None) -> None:
        """How many inputs the current map has (None: unknown)."""
        self._total = total

    @property
    def chosen(self) -> Backend | None:
        """The backend that runs the work, once chosen."""
        return self._inner

    @property
    def decision(self) -> Decision | None:
        """The decision, once made."""
        return self._decision

    @property
    def target_chunk_seconds(self) -> float:  # type: ignore[override]
        inner = self._inner
        return inner.target_chunk_seconds if inner is not None else SAMPLE_CHUNK_SECONDS

    @property
    def fixed_batch(self) -> int | None:
        """The chosen backend's batch size (asyncio), else None."""
        return getattr(self._inner, "fixed_batch", None)

    def start(self) -> None:
        """Nothing starts until the work is known."""

    def effective_workers(self) -> int:
        """The chosen backend's workers; 1 while measuring."""
        return self._inner.effective_workers() if self._inner is not None else 1

    def check_callable(self, fn: Callable[..., Any]) -> None:
        """Any callable is fine: the backend is chosen to fit it."""

    def check_blocking_call(self) -> None:
        """Defer to the chosen backend."""
        if self._inner is not None:
            self._inner.check_blocking_call()

    def owns_current_thread(self) -> bool:
        """Defer to the chosen backend and the sampler."""
        inner = self._inner
        return self._sampler.owns_current_thread() or (
            inner is not None and inner.owns_current_thread()
        )

    def _choose(self, decision: Decision) -> Backend:
        with self._lock:
            if self._inner is not None:
                return self._inner
            if self._closed:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
            cls = get_backend(decision.backend)
            inner: Backend
            if decision.backend == "serial":
                inner = SerialBackend(replace(self.spec, workers=1, options={}))
            else:
                inner = cls(replace(self.spec, workers=decision.workers, options={}))
            inner.start()
            self._decision = decision
            self._inner = inner
        log.info("%s", decision.explain().replace("\n", "; "))
        if self.on_choose is not None:
            self.on_choose(inner)
        return inner

    def _decide_without_measuring(self, fn: Callable[..., Any]) -> Backend:
        if self._inner is not None:
            return self._inner
        if is_async_callable(fn):
            return self._choose(decide_async(self._user_workers))
        workers = self._user_workers or get_backend("thread").default_workers()
        return self._choose(
            Decision(
                "thread",
                workers,
                "submit() runs one call, which cannot be measured before it "
                "runs; threads suit most single calls (use map() to let auto measure, or name the "
                "backend)",
            )
        )

    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        """Single calls are not measured: coroutines go to asyncio, others to threads."""
        return self._decide_without_measuring(fn).submit(fn, args, kwargs, timeout=timeout)

    def submit_chunk(
        self,
        fn: Callable[..., Any],
        items: Sequence[tuple[Any, ...]],
        retry: Retry,
        *,
        timeout: float | None = None,
    ) -> cf.Future[ChunkResult]:
        """Measure in the caller until the work is known, then delegate."""
        inner = self._inner
        if inner is not None:
            return inner.submit_chunk(fn, items, retry, timeout=timeout)
        if is_async_callable(fn):
            return self._decide_without_measuring(fn).submit_chunk(
                fn, items, retry, timeout=timeout
            )
        pending = self._pending
        if pending is not None:
            # one sample runs at a time, so the user's worker bound is never exceeded
            cf.wait((pending,))
            self._pending = None
            if self._record(pending):
                self._decide_from_samples(fn)
                return self.submit_chunk(fn, items, retry, timeout=timeout)
        fut = self._sampler.submit(run_chunk, (fn, items, retry), {}, timeout=timeout)
        self._pending = fut
        return fut

    @property
    def max_chunks_in_flight(self) -> int | None:
        """One chunk at a time while measuring; the chosen backend's window after."""
        return 1 if self._inner is None else None

    def _record(self, fut: cf.Future[ChunkResult]) -> bool:
        """Keep a finished sample's timings; True when enough has been measured."""
        if fut.cancelled() or fut.exception() is not None:
            return False
        res = fut.result()
        size = 0.0
        if res.values:
            try:
                size = float(len(pickle.dumps(res.values[0], pickle.HIGHEST_PROTOCOL)))
            except Exception:
                size = float(sys.getsizeof(res.values[0]))
        n = max(1, len(res.values))
        self._samples.append((res.wall / n, res.cpu / n, size))
        self._sampled_items += n
        measured = sum(w for w, _, _ in self._samples)
        return len(self._samples) >= SAMPLE_ITEMS or measured >= SAMPLE_SECONDS

    def _decide_from_samples(self, fn: Callable[..., Any]) -> None:
        k = len(self._samples)
        wall = sorted(w for w, _, _ in self._samples)[k // 2]
        cpu = sorted(c for _, c, _ in self._samples)[k // 2]
        size = max(s for _, _, s in self._samples)
        total = self._total if self._total is not None else UNKNOWN_TOTAL
        args = (wall, cpu, size, max(1, total - self._sampled_items), available_cpus())
        d = decide(*args, True, self._user_workers, gil_enabled())
        # pickling is checked only when processes would win: importing cloudpickle costs
        # more than a whole map of tiny tasks (the process backend imports it anyway)
        if d.backend == "process" and not _picklable(fn):
            d = decide(*args, False, self._user_workers, gil_enabled())
        self._choose(
            replace(
                d,
                items_measured=self._sampled_items,
                wall_per_item=wall,
                cpu_per_item=cpu,
                result_bytes=size,
            )
        )

    def _chosen_for_broadcast(self) -> Backend:
        inner = self._inner
        if inner is None:
            raise RuntimeError(
                "backend='auto' has not chosen a backend yet, so it has no workers to "
                "broadcast to: run a map first (it measures the work and chooses), or name "
                "the backend (Pool('process'), Pool('thread')...)"
            )
        return inner

    def broadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Delegated to the chosen backend (a map must have chosen it)."""
        return self._chosen_for_broadcast().broadcast(fn, args)

    async def abroadcast(self, fn: Callable[..., Any], args: Sequence[Any]) -> dict[int, Any]:
        """Delegated to the chosen backend (a map must have chosen it)."""
        return await self._chosen_for_broadcast().abroadcast(fn, args)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Shut the chosen backend down (and the sampler)."""
        with self._lock:
            self._closed = True
            inner = self._inner
        self._sampler.shutdown(wait=wait, cancel_pending=cancel_pending)
        if inner is not None:
            inner.shutdown(wait=wait, cancel_pending=cancel_pending)

    def terminate(self) -> None:
        """Stop now, delegated to the chosen backend."""
        with self._lock:
            self._closed = True
            inner = self._inner
        self._sampler.terminate()
        if inner is not None:
            inner.terminate()

    async def ashutdown(self, cancel_pending: bool = False) -> None:
        """Async shutdown, delegated to the chosen backend when it has one."""
        inner = self._inner
        ashut = getattr(inner, "ashutdown", None)
        if ashut is not None:
            with self._lock:
                self._closed = True
            await ashut(cancel_pending=cancel_pending)
            return
        import asyncio

        await asyncio.to_thread(self.shutdown, True, cancel_pending)

    def explain(self) -> str:
        """What was measured and why this backend was chosen."""
        if self._decision is None:
            return (
                "auto has not chosen yet: it measures the first inputs of the first map "
                "(coroutine functions go straight to asyncio)"
            )
        return self._decision.explain()


backend_class = AutoBackend
