"""Tracing: a record of every task a pool ran — where, when, and how it ended.

How it works: a traced run gets a :class:`RunRecorder`, one of the run's observers
(``_observe.RunObserver``, the interface the debug checks use too; backends know only that).

- It sets ``times_calls``, so the engine passes the chunks to the backend with a
  :class:`~anypool._core._tasks.TracedRetry` instead of the plain ``Retry`` (same fields):
  every backend's ``submit_chunk(fn, items, retry)`` carries it unchanged to
  :func:`~anypool._core._tasks.run_chunk`, which then times each attempt of each item
  *inside the worker* and returns the timings in ``ChunkResult.trace``.
- A done-callback on each chunk's future (:meth:`RunRecorder.watch`, from the
  ``chunk_submitted`` hook) collects those timings.
- What a worker cannot report — a worker process that died, a task ended for overrunning
  ``task_timeout`` — is reported by the parent: the process backend's dispatcher calls the
  ``chunk_lost`` hook; for other backends the done-callback records the failure itself.

Clock: every time is wall-clock seconds (``time.time()``), read where the work runs. On one
machine all processes share that clock, so threads, worker processes and asyncio tasks line up
on one timeline; across hosts (Dask workers) it is the only clock they share (aligned as well
as NTP keeps the hosts' clocks). ``perf_counter`` would be finer but is not comparable between
hosts.

Cost: per call two ``time.time()`` reads and a tuple in the worker, and one done-callback per
chunk in the parent; nothing at all when no trace is active (one tuple check per map).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._observe import RunObserver
from ._tasks import TraceEntry, hostname

if TYPE_CHECKING:
    import concurrent.futures as cf

#: the outcomes a task record can have, in legend order
OUTCOMES: tuple[str, ...] = ("ok", "error", "retry", "timeout", "crash", "cancelled")

_FORMAT = "anypool-trace"
_FORMAT_VERSION = 1

# -- the process-global registry of active traces ---------------------------------------
# A tuple replaced as a whole: readers (every map run, on any thread) need no lock, and a
# ``with anypool.trace():`` block sees pools used from every thread of the process.
_active: tuple[Trace, ...] = ()
_active_lock = threading.Lock()


def active() -> tuple[Trace, ...]:
    """The traces recording right now (``with anypool.trace():`` blocks), oldest first."""
    return _active


def traces_for(own: Trace | None) -> tuple[Trace, ...]:
    """The traces a pool with its own trace ``own`` (``Pool(trace=...)``) records into."""
    act = _active
    if own is None or own in act:
        return act
    return (own, *act)


def _activate(t: Trace) -> None:
    global _active
    with _active_lock:
        if t not in _active:
            _active = (*_active, t)


def _deactivate(t: Trace) -> None:
    global _active
    with _active_lock:
        _active = tuple(x for x in _active if x is not t)


# -- what is recorded ---------------------------------------------------------------------
@dataclass(frozen=True)
class TaskRecord:
    """One attempt of one task, as a trace records it.

    Attributes:
        position: the input's position in its map (0-based; for ``submit``, the call's
            number on that pool).
        attempt: 1 for the first attempt; a retried task has one record per attempt.
        start: when the attempt started, wall-clock seconds (``time.time()``), read in the
            worker.
        end: when it ended.
        outcome: ``"ok"``, ``"error"``, ``"retry"`` (it failed and was tried again),
            ``"timeout"``, ``"crash"`` (its worker process died) or ``"cancelled"``.
        fn: the function's name.
        backend: the backend that ran it (``"thread"``, ``"process"``, ...).
        worker: the worker's label, one timeline lane per distinct label.
        pid: the worker's process id.
        thread: the worker's thread name (asyncio: the worker task's name).
        worker_id: the worker's number in its pool.
        pool: the pool's number in this trace (1-based, in order of first use).
        run: the map's number in this trace (see :attr:`Trace.runs`).
        error: ``"Type: message"`` of the error, for failed attempts.
        host: the worker's host name (it differs from the caller's on a cluster).

    .. versionadded:: 0.2
    """

    position: int
    attempt: int
    start: float
    end: float
    outcome: str
    fn: str
    backend: str
    worker: str
    pid: int
    thread: str
    worker_id: int
    pool: int
    run: int
    error: str | None = None
    host: str = ""

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class WorkerEvent:
    """Something that happened to a worker, not to a task: a worker replaced for its memory.

    Attributes:
        kind: ``"recycle"`` (replaced after a task: ``max_memory_per_worker``) or
            ``"memory_kill"`` (ended during a task: ``task_memory_limit``).
        at: when, wall-clock seconds (``time.time()``).
        reason: in words, with the sizes.
        backend: the worker's backend.
        worker: the worker's lane label (as :attr:`TaskRecord.worker`).
        pid: the worker's process id.
        worker_id: the worker's number in its pool.
        pool: the pool's number in this trace.
        run: the map's number in this trace.

    .. versionadded:: 0.3
    """

    kind: str
    at: float
    reason: str
    backend: str
    worker: str
    pid: int
    worker_id: int
    pool: int
    run: int


@dataclass
class RunInfo:
    """One traced map (or a pool's ``submit`` calls): what ran, on which pool.

    .. versionadded:: 0.2
    """

    id: int
    pool: int
    kind: str
    fn: str
    backend: str
    workers: int
    start: float


_pool_serials: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_pool_counter = itertools.count(1)
_run_counter = itertools.count(1)
_serial_lock = threading.Lock()


def _pool_serial(pool: Any) -> int:
    with _serial_lock:
        n = _pool_serials.get(pool)
        if n is None:
            n = _pool_serials[pool] = next(_pool_counter)
        return n


def fn_name(fn: Any) -> str:
    """A readable name for a function (partials and callables included)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        name = type(fn).__qualname__
    return str(name)


class RunRecorder(RunObserver):
    """Collects the records of one map run (or of a pool's submits) for its traces.

    The run observer of tracing (see ``_observe``): the engine reports each chunk it submits
    (:meth:`chunk_submitted`) and hands out (:meth:`chunk_done`); workers of this process
    report where a chunk runs (:meth:`chunk_started`, via ``run_chunk``) and the process
    dispatcher what the worker cannot (:meth:`chunk_lost`, :meth:`worker_replaced`).
    Thread-safe.
    """

    times_calls = True

    def __init__(self, traces: tuple[Trace, ...], pool: Any, fn: Any, kind: str) -> None:
        self.traces = traces
        backend = getattr(pool, "backend", "?")
        workers = int(getattr(pool, "workers", 0) or 0)
        self.run = RunInfo(
            id=next(_run_counter),
            pool=_pool_serial(pool),
            kind=kind,
            fn=fn_name(fn),
            backend=str(backend),
            workers=workers,
            start=time.time(),
        )
        for t in traces:
            t._add_run(self.run)
        self._lock = threading.Lock()
        self._starts: dict[int, tuple[tuple[Any, ...], float]] = {}
        self._lost: dict[int, list[TraceEntry]] = {}
        self._pending: dict[int, tuple[int, Sequence[Any], float, str | None]] = {}
        self._positions = itertools.count()

    def next_position(self) -> int:
        """The next call number (for ``submit``, where there is no input position)."""
        return next(self._positions)

    # -- called by the engine ------------------------------------------------------------
    def chunk_submitted(self, fut: cf.Future[Any], base: int, items: Sequence[Any]) -> None:
        """Record the chunk when it finishes (see :meth:`watch`)."""
        self.watch(fut, base, items)

    def chunk_done(self, fut: cf.Future[Any]) -> None:
        """Record the chunk now: its records are in the trace before its results leave."""
        self.collect(fut)

    def watch(
        self,
        fut: cf.Future[Any],
        base: int,
        items: Sequence[Any],
        fn: str | None = None,
    ) -> None:
        """Record the chunk ``items`` (inputs ``base``...) when ``fut`` finishes.

        A done-callback records it; a reader that must see it at once (the map engine, when
        it hands the chunk's results out) calls :meth:`collect`: ``Future.set_result`` wakes
        waiters *before* it runs the callbacks.
        """
        with self._lock:
            self._pending[id(fut)] = (base, items, time.time(), fn)
        fut.add_done_callback(self.collect)

    def collect(self, fut: cf.Future[Any]) -> None:
        """Record the finished chunk of ``fut`` now, unless that was done already."""
        if not fut.done():
            return
        with self._lock:
            pending = self._pending.pop(id(fut), None)
        if pending is not None:
            self._done(*pending, fut)

    # -- called by backends --------------------------------------------------------------
    def chunk_started(self, items: Sequence[Any], worker: tuple[Any, ...], at: float) -> None:
        """A worker in this process started ``items`` (kept for a timeout of that chunk)."""
        self._starts[id(items)] = (worker, at)

    def chunk_lost(
        self,
        fut: cf.Future[Any],
        n: int,
        outcome: str,
        worker: tuple[Any, ...],
        start: float,
        end: float,
        error: str | None,
        attempt: int = 1,
    ) -> None:
        """A chunk of ``n`` items ended without a result (crash, timeout), seen by the parent.

        Call it before failing (or re-queueing) the chunk's future. ``outcome`` is
        ``"crash"``, ``"timeout"`` or ``"retry"`` (a crashed attempt that will run again).
        """
        entries = [(i, attempt, start, end, outcome, error, worker) for i in range(n)]
        with self._lock:
            self._lost.setdefault(id(fut), []).extend(entries)

    def worker_replaced(self, kind: str, worker: tuple[Any, ...], reason: str) -> None:
        """A worker of this run was replaced (``kind``: ``"recycle"``, ``"memory_kill"``)."""
        at = time.time()
        for t in self.traces:
            t._add_event(self.run, kind, worker, at, reason)

    # -- the done-callback ---------------------------------------------------------------
    def _done(
        self,
        base: int,
        items: Sequence[Any],
        submitted: float,
        fn: str | None,
        fut: cf.Future[Any],
    ) -> None:
        with self._lock:
            lost = self._lost.pop(id(fut), None)
            started = self._starts.pop(id(items), None)
        if fut.cancelled():
            return
        entries: list[TraceEntry] = list(lost or ())
        exc = fut.exception()
        if exc is None:
            res = fut.result()
            got = getattr(res, "trace", None)
            if got:
                if entries:  # earlier attempts crashed: number this one after them
                    shift = max(e[1] for e in entries)
                    got = [(e[0], e[1] + shift, *e[2:]) for e in got]
                entries.extend(got)
        elif not any(e[4] in ("crash", "timeout") for e in entries):
            # the backend did not report it: a timeout (threads, serial, asyncio submit), a
            # result that could not be unpickled, a broken pool...
            from ._exceptions import TaskTimeoutError, WorkerCrashed
            from ._tasks import error_text

            if isinstance(exc, TaskTimeoutError):
                outcome = "timeout"
            elif isinstance(exc, WorkerCrashed):
                outcome = "crash"
            else:
                outcome = "error"
            worker, start = started if started is not None else (("", -1, -1, "?"), submitted)
            end = time.time()
            text = error_text(exc)
            entries.extend((i, 1, start, end, outcome, text, worker) for i in range(len(items)))
        if entries:
            for t in self.traces:
                t._add_entries(self.run, base, entries, fn)


# -- the trace ----------------------------------------------------------------------------
def _lane_label(pool: int, backend: str, worker_id: int, pid: int, thread: str) -> str:
    if backend == "process":
        return f"pool {pool} · process {pid} (worker {worker_id})"
    if backend in ("thread", "asyncio"):
        return f"pool {pool} · {thread}"
    if backend == "serial":
        return f"pool {pool} · serial ({thread})"
    if backend == "":
        return f"pool {pool} · pid {pid} {thread}" if pid > 0 else f"pool {pool} · unknown worker"
    return f"pool {pool} · {backend} {thread} (pid {pid})"


class Trace:
    """A record of every task run by the pools it watches, with HTML and Chrome-trace exports.

    Create one with :func:`anypool.trace` (``with anypool.trace("run.html") as t:``), or let a
    pool make one (``Pool(trace="run.html")``, ``anypool.map(..., trace="run.json")``).

    Args:
        path: where :meth:`save` writes by default (``.html``: the timeline page;
            ``.json``: Chrome-trace JSON). ``None``: keep the records in memory only.

    .. versionadded:: 0.2
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        if self.path is not None:
            _check_suffix(self.path)
        self._lock = threading.Lock()
        self._runs: list[RunInfo] = []
        self._chunks: list[tuple[RunInfo, int, list[TraceEntry], str | None]] = []
        self._loaded: list[TaskRecord] | None = None
        self._loaded_runs: list[RunInfo] | None = None
        self._events: list[tuple[RunInfo, str, tuple[Any, ...], float, str]] = []
        self._loaded_events: list[WorkerEvent] | None = None
        self.started = time.time()
        self.ended: float | None = None

    def __repr__(self) -> str:
        where = f" path={str(self.path)!r}" if self.path is not None else ""
        return f"<anypool.Trace{where} tasks={len(self.tasks)}>"

    # -- recording ------------------------------------------------------------------------
    def __enter__(self) -> Trace:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self.path is not None:
            self.save()

    def start(self) -> None:
        """Record every pool used anywhere in this process (any thread) from now on."""
        _activate(self)

    def stop(self) -> None:
        """Stop recording new maps (tasks already running are still recorded)."""
        _deactivate(self)
        self.ended = time.time()

    def _add_run(self, run: RunInfo) -> None:
        with self._lock:
            self._runs.append(run)

    def _add_entries(
        self, run: RunInfo, base: int, entries: list[TraceEntry], fn: str | None
    ) -> None:
        with self._lock:
            self._chunks.append((run, base, entries, fn))

    def _add_event(
        self, run: RunInfo, kind: str, worker: tuple[Any, ...], at: float, reason: str
    ) -> None:
        with self._lock:
            self._events.append((run, kind, worker, at, reason))

    # -- reading --------------------------------------------------------------------------
    @property
    def worker_events(self) -> list[WorkerEvent]:
        """Workers replaced for their memory, in time order (they appear on their lanes).

        .. versionadded:: 0.3
        """
        if self._loaded_events is not None:
            return list(self._loaded_events)
        pools, run_ids, _ = self._numbering()
        with self._lock:
            events = list(self._events)
        out = []
        for run, kind, worker, at, reason in events:
            backend, wid, pid, thread = worker[:4]
            pool = pools.get(run.pool, 0)
            label = _lane_label(pool, backend, wid, pid, thread)
            rid = run_ids.get(run.id, 0)
            out.append(WorkerEvent(kind, at, reason, backend, label, pid, wid, pool, rid))
        out.sort(key=lambda e: e.at)
        return out

    def _numbering(self) -> tuple[dict[int, int], dict[int, int], list[RunInfo]]:
        with self._lock:
            runs = list(self._runs)
        pools: dict[int, int] = {}
        run_ids: dict[int, int] = {}
        shown: list[RunInfo] = []
        for r in runs:
            p = pools.setdefault(r.pool, len(pools) + 1)
            run_ids[r.id] = len(run_ids) + 1
            shown.append(RunInfo(run_ids[r.id], p, r.kind, r.fn, r.backend, r.workers, r.start))
        return pools, run_ids, shown

    @property
    def runs(self) -> list[RunInfo]:
        """The maps (and ``submit`` groups) recorded, numbered 1, 2, ... in start order."""
        if self._loaded_runs is not None:
            return list(self._loaded_runs)
        return self._numbering()[2]

    @property
    def tasks(self) -> list[TaskRecord]:
        """Every recorded attempt, ordered by start time."""
        if self._loaded is not None:
            return list(self._loaded)
        pools, run_ids, _ = self._numbering()
        local = hostname()
        with self._lock:
            chunks = list(self._chunks)
        out: list[TaskRecord] = []
        for run, base, entries, fn in chunks:
            pool = pools.get(run.pool, 0)
            rid = run_ids.get(run.id, 0)
            name = fn if fn is not None else run.fn
            for i, attempt, start, end, outcome, error, worker in entries:
                backend, wid, pid, thread = worker[:4]
                host = worker[4] if len(worker) > 4 else local
                label = _lane_label(pool, backend, wid, pid, thread)
                if host != local:
                    label = f"{label} @ {host}"
                backend = backend or run.backend
                out.append(
                    TaskRecord(
                        position=base + i,
                        attempt=attempt,
                        start=start,
                        end=end,
                        outcome=outcome,
                        fn=name,
                        backend=backend,
                        worker=label,
                        pid=pid,
                        thread=thread,
                        worker_id=wid,
                        pool=pool,
                        run=rid,
                        error=error,
                        host=host,
                    )
                )
        out.sort(key=lambda r: (r.start, r.run, r.position, r.attempt))
        return out

    def summary(self) -> dict[str, Any]:
        """Totals, per-worker utilisation and idle gaps, and the slowest tasks (a dict)."""
        return summarize(self.tasks)

    # -- exports --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The trace as Chrome Trace Event Format data (see :meth:`to_chrome_json`)."""
        return chrome_trace(self.tasks, self.runs, self.worker_events)

    def to_chrome_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Chrome-trace JSON (opens in Perfetto / ``chrome://tracing``); written to ``path``.

        Each attempt is an ``"X"`` (complete) event; each worker is its own lane (process
        workers under their own pid). The ``anypool`` key and each event's ``args`` keep
        everything needed to rebuild the trace (:meth:`load`, ``anypool trace show``).
        """
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_html(self, path: str | os.PathLike[str] | None = None, *, title: str = "") -> str:
        """A self-contained HTML page (no network needed): the timeline and a summary."""
        page = render_html(self.to_dict(), title=title)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the trace to ``path`` (default: the trace's own): ``.html`` or ``.json``."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError(
                "this trace has no path; pass one: trace.save('run.html') or "
                "anypool.trace('run.html')"
            )
        _check_suffix(target)
        if target.suffix.lower() == ".json":
            self.to_chrome_json(target)
        else:
            self.to_html(target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Trace:
        """Read a trace written by :meth:`to_chrome_json` (or ``trace="x.json"``)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p} is not JSON ({exc}); expected an anypool trace") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> Trace:
        """Rebuild a trace from :meth:`to_dict` data."""
        meta = data.get("anypool") if isinstance(data, dict) else None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(
                "not an anypool trace: expected Chrome-trace JSON written by anypool (with an "
                "'anypool' section); write one with trace='run.json'"
            )
        origin = float(meta["origin"])
        t = cls()
        t._loaded = [
            TaskRecord(
                position=int(a["position"]),
                attempt=int(a["attempt"]),
                start=origin + ev["ts"] / 1e6,
                end=origin + (ev["ts"] + ev["dur"]) / 1e6,
                outcome=str(a["outcome"]),
                fn=str(ev["name"]),
                backend=str(a["backend"]),
                worker=str(a["worker"]),
                pid=int(a["pid"]),
                thread=str(a["thread"]),
                worker_id=int(a["worker_id"]),
                pool=int(a["pool"]),
                run=int(a["run"]),
                error=a.get("error"),
                host=str(a.get("host", "")),
            )
            for ev in data["traceEvents"]
            if ev.get("ph") == "X" and ev.get("cat") == "anypool.task"
            for a in (ev["args"],)
        ]
        t._loaded_runs = [
            RunInfo(
                int(r["id"]),
                int(r["pool"]),
                str(r["kind"]),
                str(r["fn"]),
                str(r["backend"]),
                int(r["workers"]),
                origin + float(r["start"]),
            )
            for r in meta.get("runs", [])
        ]
        t._loaded_events = [
            WorkerEvent(
                kind=str(a["kind"]),
                at=origin + ev["ts"] / 1e6,
                reason=str(a["reason"]),
                backend=str(a["backend"]),
                worker=str(a["worker"]),
                pid=int(a["pid"]),
                worker_id=int(a["worker_id"]),
                pool=int(a["pool"]),
                run=int(a["run"]),
            )
            for ev in data["traceEvents"]
            if ev.get("ph") == "i" and ev.get("cat") == "anypool.worker"
            for a in (ev["args"],)
        ]
        t.started = origin
        return t


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in (".html", ".htm", ".json"):
        raise ValueError(
            f"trace path {str(path)!r} must end in .html (the timeline page) or .json "
            "(Chrome-trace JSON for Perfetto / chrome://tracing)"
        )


def trace(path: str | os.PathLike[str] | None = None) -> Trace:
    """Record every task of every pool used while the block runs, from any thread.

    .. code-block:: python

        with anypool.trace("run.html") as t:
            anypool.map(crunch, items, backend="process")
        print(len(t.tasks), "tasks; timeline in run.html")

    Args:
        path: written when the block ends: ``.html`` (a self-contained timeline page) or
            ``.json`` (Chrome-trace JSON for Perfetto / ``chrome://tracing``). ``None``:
            keep the records in memory (``t.tasks``, ``t.to_html(path)``, ``t.save(path)``).

    Returns:
        A :class:`Trace`; use it as a context manager (or call ``start()``/``stop()``).

    .. versionadded:: 0.2
    """
    return Trace(path)


def as_trace(value: Any) -> Trace | None:
    """The ``trace=`` option of a pool: a path, a :class:`Trace`, or None/False."""
    if value is None or value is False:
        return None
    if isinstance(value, Trace):
        return value
    if isinstance(value, str | os.PathLike):
        return Trace(value)
    raise TypeError(
        f"trace must be a path ending in .html or .json, or an anypool.Trace, got {value!r}"
    )


# -- analysis -----------------------------------------------------------------------------
def summarize(tasks: Sequence[TaskRecord], top: int = 10) -> dict[str, Any]:
    """Totals, per-worker utilisation and idle gaps, and the slowest tasks."""
    if not tasks:
        return {
            "tasks": 0,
            "inputs": 0,
            "wall": 0.0,
            "outcomes": {},
            "workers": [],
            "slowest": [],
            "gaps": [],
        }
    t0 = min(r.start for r in tasks)
    t1 = max(r.end for r in tasks)
    outcomes: dict[str, int] = {}
    lanes: dict[str, list[TaskRecord]] = {}
    # a worker's utilisation counts the time its pool was at work (first start to last end
    # of that pool's tasks), not the whole trace: pools used one after another stay fair
    pool_span: dict[int, list[float]] = {}
    for r in tasks:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
        lanes.setdefault(r.worker, []).append(r)
        span = pool_span.setdefault(r.pool, [r.start, r.end])
        span[0] = min(span[0], r.start)
        span[1] = max(span[1], r.end)
    workers = []
    gaps: list[dict[str, Any]] = []
    for name, recs in lanes.items():
        recs.sort(key=lambda r: r.start)
        busy = 0.0
        cur_s, cur_e = recs[0].start, recs[0].end
        lane_gaps: list[tuple[float, float]] = []
        for r in recs[1:]:
            if r.start > cur_e:
                busy += cur_e - cur_s
                lane_gaps.append((cur_e, r.start))
                cur_s, cur_e = r.start, r.end
            else:
                cur_e = max(cur_e, r.end)
        busy += cur_e - cur_s
        idle = sum(b - a for a, b in lane_gaps)
        longest = max(lane_gaps, key=lambda g: g[1] - g[0], default=None)
        workers.append(
            {
                "worker": name,
                "backend": recs[0].backend,
                "pool": recs[0].pool,
                "tasks": len(recs),
                "busy": busy,
                "utilisation": busy
                / max(1e-9, pool_span[recs[0].pool][1] - pool_span[recs[0].pool][0]),
                "first": recs[0].start - t0,
                "last": cur_e - t0,
                "idle": idle,
                "longest_gap": (longest[1] - longest[0]) if longest else 0.0,
            }
        )
        gaps.extend(
            {"worker": name, "start": a - t0, "end": b - t0, "duration": b - a}
            for a, b in lane_gaps
        )
    workers.sort(key=lambda w: (w["pool"], w["worker"]))
    gaps.sort(key=lambda g: -g["duration"])
    slowest = sorted(tasks, key=lambda r: -r.duration)[:top]
    return {
        "tasks": len(tasks),
        "inputs": len({(r.run, r.position) for r in tasks}),
        "wall": t1 - t0,
        "outcomes": outcomes,
        "workers": workers,
        "slowest": [
            {
                "fn": r.fn,
                "position": r.position,
                "run": r.run,
                "worker": r.worker,
                "duration": r.duration,
                "outcome": r.outcome,
                "start": r.start - t0,
            }
            for r in slowest
        ],
        "gaps": gaps[:top],
    }


# -- Chrome trace -------------------------------------------------------------------------
def chrome_trace(
    tasks: Sequence[TaskRecord],
    runs: Iterable[RunInfo],
    worker_events: Sequence[WorkerEvent] = (),
) -> dict[str, Any]:
    """Trace Event Format data: one ``"X"`` event per attempt, a lane per worker, and an
    ``"i"`` (instant) event on its lane for each worker event (a memory recycle)."""
    runs = list(runs)
    starts = [r.start for r in tasks] + [r.start for r in runs]
    origin = min(starts) if starts else time.time()
    parent = os.getpid()
    lanes: dict[str, tuple[int, int]] = {}
    events: list[dict[str, Any]] = []
    names: list[dict[str, Any]] = []
    for r in sorted(tasks, key=lambda r: (r.pool, r.worker_id, r.worker)):
        if r.worker in lanes:
            continue
        # process workers are processes in the viewer; other workers are threads of the
        # program (grouped under its pid), one track each
        pid = r.pid if r.backend == "process" and r.pid > 0 else (r.pid if r.pid > 0 else parent)
        tid = len(lanes) + 1
        lanes[r.worker] = (pid, tid)
        names.append(
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": r.worker}}
        )
        names.append(
            {
                "ph": "M",
                "name": "thread_sort_index",
                "pid": pid,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
        if r.backend == "process":
            names.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": pid,
                    "args": {"name": f"anypool worker process {r.pid}"},
                }
            )
    for r in tasks:
        pid, tid = lanes[r.worker]
        args: dict[str, Any] = {
            "position": r.position,
            "attempt": r.attempt,
            "outcome": r.outcome,
            "backend": r.backend,
            "worker": r.worker,
            "pid": r.pid,
            "thread": r.thread,
            "worker_id": r.worker_id,
            "pool": r.pool,
            "run": r.run,
            "host": r.host,
        }
        if r.error is not None:
            args["error"] = r.error
        events.append(
            {
                "name": r.fn,
                "cat": "anypool.task",
                "ph": "X",
                "ts": round((r.start - origin) * 1e6, 3),
                "dur": round(max(0.0, r.end - r.start) * 1e6, 3),
                "pid": pid,
                "tid": tid,
                "cname": _CHROME_COLOURS.get(r.outcome, "generic_work"),
                "args": args,
            }
        )
    for e in worker_events:
        pid, tid = lanes.get(e.worker, (e.pid if e.pid > 0 else parent, 0))
        events.append(
            {
                "name": f"worker {e.kind}",
                "cat": "anypool.worker",
                "ph": "i",
                "s": "t",
                "ts": round((e.at - origin) * 1e6, 3),
                "pid": pid,
                "tid": tid,
                "args": {
                    "kind": e.kind,
                    "reason": e.reason,
                    "backend": e.backend,
                    "worker": e.worker,
                    "pid": e.pid,
                    "worker_id": e.worker_id,
                    "pool": e.pool,
                    "run": e.run,
                },
            }
        )
    return {
        "traceEvents": names + events,
        "displayTimeUnit": "ms",
        "anypool": {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "origin": origin,
            "clock": "time.time() read in the worker; ts and dur: µs from origin (epoch s)",
            "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(origin)),
            "runs": [
                {
                    "id": r.id,
                    "pool": r.pool,
                    "kind": r.kind,
                    "fn": r.fn,
                    "backend": r.backend,
                    "workers": r.workers,
                    "start": r.start - origin,
                }
                for r in runs
            ],
        },
    }


#: chrome://tracing's reserved colour names for the outcomes
_CHROME_COLOURS = {
    "ok": "good",
    "error": "terrible",
    "retry": "bad",
    "timeout": "yellow",
    "crash": "black",
    "cancelled": "grey",
}


# -- HTML ---------------------------------------------------------------------------------
_TEMPLATE = "trace_template.html"
_DATA_MARK = "/*__ANYPOOL_TRACE_DATA__*/null"


@functools.cache
def _template() -> str:
    from importlib.resources import files

    return files("anypool._core").joinpath(_TEMPLATE).read_text(encoding="utf-8")


def render_html(data: dict[str, Any], *, title: str = "") -> str:
    """The timeline page for Chrome-trace ``data`` written by anypool (self-contained)."""
    trace_ = Trace.from_dict(data)
    tasks = trace_.tasks
    t0 = min((r.start for r in tasks), default=trace_.started)
    payload = {
        "title": title or "anypool trace",
        "created": data["anypool"].get("created", ""),
        "outcomes": list(OUTCOMES),
        "runs": data["anypool"].get("runs", []),
        "tasks": [
            {
                "fn": r.fn,
                "position": r.position,
                "attempt": r.attempt,
                "start": r.start - t0,
                "end": r.end - t0,
                "outcome": r.outcome,
                "worker": r.worker,
                "backend": r.backend,
                "pid": r.pid,
                "pool": r.pool,
                "run": r.run,
                "error": r.error,
                "host": r.host,
            }
            for r in tasks
        ],
        # workers replaced for their memory: a marker on the worker's lane at ``at``
        "worker_events": [
            {
                "kind": e.kind,
                "at": e.at - t0,
                "reason": e.reason,
                "worker": e.worker,
                "backend": e.backend,
                "pid": e.pid,
                "pool": e.pool,
                "run": e.run,
            }
            for e in trace_.worker_events
        ],
        "summary": summarize(tasks),
    }
    blob = json.dumps(payload, separators=(",", ":"))
    # keep the data inside its <script>: no "</script>" or "<!--" can end or confuse it
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    page = _template()
    if _DATA_MARK not in page:  # pragma: no cover - a broken installation
        raise RuntimeError("anypool's trace page template is damaged; reinstall anypool")
    return page.replace(_DATA_MARK, blob, 1)


def show(src: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Render the HTML page of a Chrome-trace JSON file written by anypool; returns its path."""
    src_p = Path(src)
    t = Trace.load(src_p)
    target = Path(out) if out is not None else src_p.with_suffix(".html")
    t.to_html(target, title=f"anypool trace: {src_p.name}")
    return target
