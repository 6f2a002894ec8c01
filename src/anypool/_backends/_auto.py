"""The ``auto`` backend: the guide's "Choosing the Right Approach" as code.

Coroutine functions go to asyncio. Maps whose tasks keep per-worker state (the pool has an
``initializer=``, or the function's code calls ``current_worker()``) are not measured: every
task runs in a real worker of one backend chosen before the first runs (processes when they
can be pickled, else threads), so the initializer runs only where tasks run. Other functions
are measured on their first inputs, run one at a time on a single measuring thread (tiny ones
in chunks of ~0.5 ms; their results are kept, never recomputed; a ``task_timeout`` still
applies): wall time and CPU time per item and the size of a result. From those it estimates
how long the rest would take on serial, thread and process execution (processes with their
start-up: the imports of the function's packages, or what an earlier pool measured) and picks
the fastest; estimates within the measurement noise go to the simplest. While a long first
input runs on CPU, the process pool starts, once processes would win even at the length seen
so far. The decision and its reasons are kept for :meth:`anypool.Pool.explain` and logged at
INFO on the ``anypool`` logger.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import logging
import math
import pickle
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._core._abc import Backend, PoolStats, WorkerSpec
from .._core._exceptions import ClosedPoolError
from .._core._registry import get_backend
from .._core._tasks import (
    ChunkResult,
    FlatItems,
    Retry,
    available_cpus,
    current_worker,
    is_async_callable,
    run_chunk,
)
from ._serial import SerialBackend
from ._threads import ThreadBackend

if TYPE_CHECKING:
    from .._core._sync import SyncFactory

log = logging.getLogger("anypool")
T = TypeVar("T")

#: stop measuring after this many inputs, or this much measured time, whichever comes first
SAMPLE_ITEMS = 3
SAMPLE_SECONDS = 0.01
#: work per measuring chunk after the first (one input): the map's chunker sizes chunks from
#: the time measured so far. Enough to time tiny tasks well past the fixed cost of a chunk
#: (~5 us, which a one-input chunk measures instead of a 0.1 us task), small enough that
#: tasks of 0.5 ms and more are measured one at a time and little of the input runs on the
#: measuring thread (at 5 ms, the default, 55,000 of 200,000 tiny inputs did)
SAMPLE_CHUNK_SECONDS = 0.0005
#: a first measured input still running after this long, on CPU, with processes estimated
#: faster even at that length: the process pool starts while it runs (see _maybe_prestart)
PRESTART_AFTER = 0.05
#: costs of this machine class, used by the estimate (conservative, measured on 2 cores)
PROCESS_STARTUP = 0.08  # seconds to start a process pool (fork server) and its workers
#: seconds for a worker to import one module the function needs (measured: 0.7 ms per module
#: for numpy's 140, 0.9 ms for json's 23; scipy.signal's ~700 modules take ~0.7 s)
IMPORT_PER_MODULE = 1e-3
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
    #: None: ``estimates`` are for the rest of the map; else they are per item (the input's
    #: length was unknown) and this is the process pool's estimated start-up
    per_item_startup: float | None = None
    #: relative measurement noise: estimates closer than this count as equal
    noise: float = 0.0
    #: seconds per item the measured tasks waited for a CPU (other programs running), left
    #: out of ``wall_per_item``: waiting for a CPU is not waiting for I/O
    cpu_wait_per_item: float = 0.0

    def explain(self) -> str:
        """The decision in plain words."""
        lines = [
            f"auto chose backend={self.backend!r} with {self.workers} worker(s): {self.reason}"
        ]
        if self.items_measured:
            share = 100 * self.cpu_per_item / self.wall_per_item if self.wall_per_item else 0
            waited = (
                f" (leaving out {_fmt_time(self.cpu_wait_per_item)} per item spent waiting "
                "for a CPU that other programs held)"
                if self.cpu_wait_per_item >= 0.05 * self.wall_per_item
                else ""
            )
            lines.append(
                f"measured {self.items_measured} input(s), one chunk at a time: "
                f"{_fmt_time(self.wall_per_item)} per item{waited}, {share:.0f}% of it on "
                f"CPU, results about {self.result_bytes:,.0f} bytes"
            )
        if self.estimates:
            listed = ", ".join(f"{name} {_fmt_time(t)}" for name, t in self.estimates)
            noise = f" (measurement noise ±{100 * self.noise:.0f}%)" if self.noise else ""
            if self.per_item_startup is None:
                lines.append(f"estimated time for the rest: {listed}{noise}")
            else:
                lines.append(
                    f"the input's length is unknown: estimated time per item: {listed}{noise}; "
                    f"starting processes costs about {_fmt_time(self.per_item_startup)} once"
                )
        return "\n".join(lines)


def _fmt_time(t: float) -> str:
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.1f} us"


#: the order of simplicity: between estimates within the measurement noise, the first wins
SIMPLEST_FIRST = ("serial", "thread", "process")
#: below this share of wall time on CPU, work is I/O-bound; at or above CPU_BOUND, CPU-bound
IO_BOUND = 0.3
CPU_BOUND = 0.7
#: the least relative noise assumed (the costs in the estimates are themselves estimates)
MIN_NOISE = 0.1


def _kind(ratio: float) -> str:
    pct = f"{100 * ratio:.0f}% of wall time on CPU"
    if ratio >= CPU_BOUND:
        return f"CPU-bound: {pct}"
    if ratio < IO_BOUND:
        return f"I/O-bound: {pct}"
    return f"part CPU, part waiting: {pct}"


def decide(
    wall: float,
    cpu: float,
    result_bytes: float,
    remaining: int | None,
    cpus: int,
    picklable: bool,
    workers: int | None,
    gil: bool = True,
    *,
    noise: float = MIN_NOISE,
    startup: float = PROCESS_STARTUP,
) -> Decision:
    """Estimate serial, thread and process times for ``remaining`` items; pick the least.

    Estimates that differ by less than ``noise`` (relative) count as equal, and the simplest
    of them wins (serial, then thread, then process). ``startup`` is what starting the process
    pool costs. With ``remaining=None`` (the input's length is unknown) the backends are
    compared per item, as for a long input, and the explanation says so.
    """
    wall = max(wall, 1e-9)
    cpu = min(max(cpu, 0.0), wall)
    noise = max(noise, MIN_NOISE)
    ratio = cpu / wall
    unknown = remaining is None
    n = 1 if remaining is None else max(remaining, 1)
    sizing = 1_000_000 if remaining is None else n  # worker counts: a long input
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
    t_workers = min(t_workers, sizing)
    cpu_lanes = cpus if not gil else 1
    thread_time = max(n * cpu / cpu_lanes, n * wall / t_workers) + n * THREAD_PER_ITEM
    estimates["thread"] = (thread_time, t_workers)
    proc_run = 0.0
    if picklable:
        if workers is not None:
            p_workers = workers
        else:
            # enough processes to keep every core busy when part of each task waits
            p_workers = cpus if ratio >= 0.8 else min(4 * cpus, math.ceil(cpus / max(ratio, 0.25)))
        p_workers = min(p_workers, sizing)
        proc_run = max(n * cpu / min(cpus, p_workers), n * wall / p_workers) + n * (
            PROCESS_PER_ITEM + result_bytes / TRANSFER_BYTES_PER_SECOND
        )
        estimates["process"] = ((0.0 if unknown else startup) + proc_run, p_workers)
    fastest = min(estimates, key=lambda k: estimates[k][0])
    bound = estimates[fastest][0] * (1 + noise)
    best = next(k for k in SIMPLEST_FIRST if k in estimates and estimates[k][0] <= bound)
    kind = _kind(ratio)
    each = f"{_fmt_time(wall)} per item"
    serial_t = estimates["serial"][0]
    within = f"less than the measurement noise (±{100 * noise:.0f}%)"

    def process_clause() -> str:
        if estimates["process"][0] < estimates[best][0]:
            return f"processes would save {within}"
        if proc_run < serial_t and startup > 0 and not unknown:
            job, start = _fmt_time(serial_t), _fmt_time(startup)
            if startup >= serial_t:
                return (
                    f"the whole job ({job} here) is shorter than starting processes (about {start})"
                )
            return (
                f"the whole job ({job} here) is too short to pay for starting processes "
                f"(about {start})"
            )
        return "processes would not be faster"

    if best == "serial":
        if wall < 20 * max(THREAD_PER_ITEM, PROCESS_PER_ITEM):
            reason = (
                f"tasks are tiny ({each}): handing them to other threads or processes would "
                "cost more than running them here"
            )
        else:
            if ratio >= CPU_BOUND and gil:
                clauses = ["threads would take turns on the GIL"]
            elif estimates["thread"][0] < serial_t:
                clauses = [f"threads would save {within}"]
            else:
                clauses = ["too few items for threads to pay off"]
            if picklable:
                clauses.append(process_clause())
            reason = f"{kind}, {each}: " + ", and ".join(clauses)
    elif best == "thread":
        if not gil and ratio >= CPU_BOUND:
            reason = f"{kind}, {each} → threads run Python in parallel on this free-threaded build"
        elif ratio < IO_BOUND:
            reason = f"{kind}, {each} → threads overlap the waiting"
        else:
            reason = (
                f"{kind}, {each} → threads overlap the {100 * (1 - ratio):.0f}% of each task "
                "spent waiting (the CPU part takes turns on the GIL)"
            )
        if picklable and estimates["process"][0] < estimates["thread"][0]:
            reason += f"; {process_clause()}"
    elif ratio >= CPU_BOUND:
        reason = (
            f"{kind}, {each} → processes run Python in parallel (threads would take "
            "turns on the GIL)"
        )
    else:
        reason = f"{kind}, {each} → processes run the CPU part in parallel and overlap the waiting"
    if unknown:
        reason += (
            "; the input's length is unknown (it has no len()), so auto compared the time per "
            "item, as for a long input"
        )
        if best == "process":
            reason += (
                f"; starting processes costs about {_fmt_time(startup)}, paid back after about "
                f"{_breakeven(startup, estimates['serial'][0], proc_run)} items"
            )
    if not picklable:
        reason += "; processes were ruled out: the function cannot be pickled"
    return Decision(
        backend=best,
        workers=estimates[best][1],
        reason=reason,
        estimates=tuple((k, v[0]) for k, v in sorted(estimates.items(), key=lambda kv: kv[1])),
        per_item_startup=startup if unknown and picklable else None,
        noise=noise,
    )


def _breakeven(startup: float, serial_each: float, proc_each: float) -> int:
    saved = serial_each - proc_each
    return math.ceil(startup / saved) if saved > 0 else 0


#: start-up measured on the process pools auto chose in this program, by the function's
#: module: the time from starting the pool to its first result, less that chunk's own work
_OBSERVED_STARTUP: dict[str, float] = {}


def _module_key(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(getattr(fn, "__module__", None) or "")


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _reached_packages(fn: Callable[..., Any]) -> set[str]:
    """Top-level packages (not the standard library's) a worker imports to run ``fn``.

    A function from an importable module brings that module's imports along; a function
    from ``__main__`` (sent by value) brings the modules of the globals it names.
    """
    pkgs: set[str] = set()
    seen: set[int] = set()

    def add(name: object) -> None:
        if isinstance(name, str) and name:
            top = name.partition(".")[0]
            if top not in ("__main__", "builtins", "anypool") and top not in _STDLIB:
                pkgs.add(top)

    def visit(obj: object, depth: int) -> None:
        if depth > 3 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            visit(obj.func, depth)
            for a in (*obj.args, *obj.keywords.values()):
                visit(a, depth + 1)
        elif isinstance(obj, types.MethodType):
            visit(obj.__func__, depth)
            visit(obj.__self__, depth + 1)
        elif isinstance(obj, types.ModuleType):
            add(obj.__name__)
        elif isinstance(obj, types.FunctionType):
            add(obj.__module__)
            module = sys.modules.get(obj.__module__)
            if obj.__module__ != "__main__" and module is not None:
                for v in list(vars(module).values()):  # imported with its module
                    add(v.__name__ if isinstance(v, types.ModuleType) else _mod_of(v))
            g = obj.__globals__
            for name in _code_names(obj.__code__):
                if name in g:
                    visit(g[name], depth + 1)
            for cell in obj.__closure__ or ():
                try:
                    visit(cell.cell_contents, depth + 1)
                except ValueError:  # an empty cell
                    pass
        else:
            add(_mod_of(obj))

    visit(fn, 0)
    return pkgs


def _mod_of(obj: object) -> object:
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        return getattr(obj, "__module__", None)
    return type(obj).__module__


_STDLIB: frozenset[str] = frozenset(getattr(sys, "stdlib_module_names", ()))


def process_startup(fn: Callable[..., Any], workers: int, cpus: int) -> tuple[float, str]:
    """Seconds to start ``workers`` processes ready to run ``fn``, and where that comes from.

    Measured on an earlier process pool auto chose for a function of the same module, if
    any; else :data:`PROCESS_STARTUP` plus, per worker (``cpus`` start at once), the import
    of the modules of every package ``fn`` reaches that this process has loaded.
    """
    seen = _OBSERVED_STARTUP.get(_module_key(fn))
    if seen is not None:
        return seen, "measured on this program's last process pool"
    # the quickest start-up measured here for another module: how fast processes start on
    # this machine now (under load, several times PROCESS_STARTUP)
    base, how = PROCESS_STARTUP, "estimated"
    if _OBSERVED_STARTUP:
        base = max(base, min(_OBSERVED_STARTUP.values()))
        how = "estimated from another module's pool"
    pkgs = _reached_packages(fn)
    preloaded = _preloaded_packages()
    count = sum(1 for m in list(sys.modules) if m.partition(".")[0] in pkgs - preloaded)
    imports = count * IMPORT_PER_MODULE * math.ceil(max(1, workers) / max(1, cpus))
    if not count:
        if pkgs & preloaded:
            return base, f"{how}; the fork server preloads {', '.join(sorted(pkgs & preloaded))}"
        return base, how
    return base + imports, f"{how}, with {count} modules of {', '.join(sorted(pkgs))} to import"


def _preloaded_packages() -> set[str]:
    """Top-level packages the process backend's fork server already has (none: not running)."""
    from . import _preload

    has = _preload.server_has()
    return {m.partition(".")[0] for m in has} if has else set()


def uses_worker_state(fn: Callable[..., Any]) -> bool:
    """Whether ``fn``'s own code names ``current_worker`` (through a partial or method too)."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, types.MethodType):
            fn = fn.__func__
        else:
            break
    code = getattr(fn, "__code__", None)
    if code is None:  # a callable object: its class's __call__
        for klass in type(fn).__mro__:
            if "__call__" in vars(klass):
                code = getattr(vars(klass)["__call__"], "__code__", None)
                break
    return isinstance(code, types.CodeType) and "current_worker" in _code_names(code)


def _runqueue_wait(tid: int | None = None) -> float | None:
    """Seconds a thread (this one, or native id ``tid`` of this process) has waited for a
    CPU while ready to run: Linux's schedstat. None where unknown."""
    path = "/proc/thread-self/schedstat" if tid is None else f"/proc/self/task/{tid}/schedstat"
    try:
        with open(path, "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


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


class AutoShared(Generic[T]):
    """What :meth:`anypool.Pool.share` gives on an ``auto`` pool that has not chosen yet.

    It becomes the right kind once the backend is chosen: sent to a worker process it turns
    into the process handle (the object put in shared memory once, loaded once per worker);
    passed to a task that runs in this process (serial, thread, asyncio, or while auto
    measures) it is replaced by the object itself. Pass it to tasks as an argument (or bound
    with ``functools.partial``); :attr:`value` is the object.
    """

    __slots__ = ("value", "_make", "_handle", "_lock")

    def __init__(self, obj: T, make: Callable[[Any], Any]) -> None:
        #: the shared object
        self.value = obj
        self._make = make
        self._handle: Any = None
        self._lock = threading.Lock()

    def process_handle(self) -> Any:
        """The process kind's handle, made (the object put in shared memory) on first use."""
        with self._lock:
            if self._handle is None:
                self._handle = self._make(self.value)
            return self._handle

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled only to go to another process: the shared-memory handle goes instead
        reduced: tuple[Any, ...] = self.process_handle().__reduce__()
        return reduced

    def __repr__(self) -> str:
        return f"<anypool.Shared {type(self.value).__name__} (auto: kind chosen on first map)>"


def _unwrap(args: Sequence[Any]) -> Sequence[Any]:
    if any(type(a) is AutoShared for a in args):
        return tuple(a.value if type(a) is AutoShared else a for a in args)
    return args


def _unwrap_items(items: Sequence[Any]) -> Sequence[Any]:
    if isinstance(items, FlatItems):
        return FlatItems(a.value if type(a) is AutoShared else a for a in items)
    return [tuple(_unwrap(a)) for a in items]


def _unwrap_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    if isinstance(fn, functools.partial) and (
        any(type(a) is AutoShared for a in fn.args)
        or any(type(v) is AutoShared for v in fn.keywords.values())
    ):
        kw = {k: v.value if type(v) is AutoShared else v for k, v in fn.keywords.items()}
        return functools.partial(_unwrap_fn(fn.func), *_unwrap(fn.args), **kw)
    return fn


class AutoBackend(Backend):
    """Measures the first inputs in the caller, then hands the rest to the backend that fits."""

    name = "auto"
    sync_kind = "auto"
    runs_on_threads = False  # until it has chosen: the Pool asks ``chosen``
    native_ashutdown = True  # it delegates to the chosen backend's when that has one
    #: given either, auto runs on processes at once (only they can honour them)
    memory_options = frozenset({"max_memory_per_worker", "task_memory_limit"})

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
        self._cpu_waits: list[float] = []  # per item, of each sample: left out of its wall
        self._sampled_items = 0  # inputs measured (a chunk per sample: 1 unless chunksize=)
        self._total: int | None = None
        self._pending: cf.Future[ChunkResult] | None = None
        self._kept_state = False  # a measured task wrote current_worker().state
        self._sample_cpu_wait = 0.0  # the last measured chunk's wait for a CPU
        self._sampler_tid: int | None = None  # the measuring thread's native id
        self._has_shares = False  # share() made AutoShared handles: unwrap them in-process
        self._chosen_at = 0.0
        #: the measuring thread's current chunk: (start, thread id, its CPU clock at start)
        self._sample_clock: tuple[float, int, float, float | None] | None = None
        self._prestart_timer: threading.Timer | None = None
        self._prestarted: Backend | None = None
        self._prestarted_at = 0.0
        #: the last loop hint of the Pool (``use_caller_loop`` or ``avoid_caller_loop``),
        #: passed on to the backend once chosen
        self._loop_hint: str | None = None
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
    def max_chunk_seconds(self) -> float | None:  # type: ignore[override]
        inner = self._inner
        return inner.max_chunk_seconds if inner is not None else None

    @property
    def fixed_batch(self) -> int | None:
        """The chosen backend's batch size (asyncio), else None."""
        return self._inner.fixed_batch if self._inner is not None else None

    def sync_factory(self, kind: str) -> SyncFactory:
        """The chosen backend's; before the choice, process kinds (they also work on the
        threads auto measures with, and on the serial and thread pools it may choose)."""
        inner = self._inner
        if inner is not None and (kind != "process" or inner.sync_kind == "process"):
            return inner.sync_factory(kind)
        if kind == "process":
            from ._process_sync import ProcessSync

            return ProcessSync(self)
        return super().sync_factory(kind)

    def start(self) -> None:
        """Nothing starts until the work is known."""

    def stats(self) -> PoolStats:
        """The chosen backend's counts (none before it is chosen)."""
        inner = self._inner
        return inner.stats() if inner is not None else PoolStats()

    def effective_workers(self) -> int:
        """The chosen backend's workers; 1 while measuring."""
        return self._inner.effective_workers() if self._inner is not None else 1

    def check_callable(self, fn: Callable[..., Any]) -> None:
        """Any callable is fine: the backend is chosen to fit it."""

    def use_caller_loop(self) -> None:
        """Defer to the chosen backend, or remember it for the choice."""
        self._loop_hint = self._forward_loop_hint("use_caller_loop")

    def avoid_caller_loop(self) -> None:
        """Defer to the chosen backend, or remember it for the choice."""
        self._loop_hint = self._forward_loop_hint("avoid_caller_loop")

    def _forward_loop_hint(self, hint: str) -> str:
        inner = self._inner
        if inner is not None:
            getattr(inner, hint)()
        return hint

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

    def _choose(self, decision: Decision, keep_sampler: bool = False) -> Backend:
        with self._lock:
            if self._inner is not None:
                return self._inner
            if self._closed:
                raise ClosedPoolError("cannot submit to a pool that was shut down")
            cls = get_backend(decision.backend)
            inner: Backend
            if keep_sampler:
                # the measured tasks kept state on the measuring thread: it stays a worker
                inner = self._sampler
                inner.spec = replace(inner.spec, workers=decision.workers)
            elif decision.backend == "process" and self._prestarted is not None:
                inner = self._prestarted
                decision = replace(
                    decision,
                    workers=inner.spec.workers,
                    reason=f"{decision.reason}; its workers started while auto measured",
                )
            elif decision.backend == "serial":
                inner = SerialBackend(replace(self.spec, workers=1, options={}))
            else:
                inner = cls(replace(self.spec, workers=decision.workers, options={}))
            if inner is self._prestarted:
                self._chosen_at = 0.0  # its empty chunks timed the start-up
            else:
                inner.start()
                self._chosen_at = time.perf_counter()
            unused, self._prestarted = self._prestarted, None
            if self._loop_hint is not None:  # how the first map reached us: sync or async
                getattr(inner, self._loop_hint)()
            self._decision = decision
            self._inner = inner
        if unused is not None and unused is not inner:
            unused.shutdown(wait=False, cancel_pending=True)
        log.info("%s", decision.explain().replace("\n", "; "))
        if self.on_choose is not None:
            self.on_choose(inner)
        return inner

    def _decide_for_memory(self) -> Backend | None:
        """With a memory option, processes without measuring (None: no memory option)."""
        given = [
            f"{name}="
            for name in ("max_memory_per_worker", "task_memory_limit")
            if getattr(self.spec, name) is not None
        ]
        if not given:
            return None
        workers = self._user_workers or get_backend("process").default_workers()
        return self._choose(
            Decision(
                "process",
                workers,
                f"{' and '.join(given)} limit(s) the memory of worker processes, which only "
                "the process backend can watch; auto chose it without measuring (and ran no "
                "task in the caller)",
            )
        )

    def _decide_without_measuring(self, fn: Callable[..., Any]) -> Backend:
        if self._inner is not None:
            return self._inner
        memory = self._decide_for_memory()
        if memory is not None:
            return memory
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
        inner = self._decide_without_measuring(fn)
        if self._has_shares and not inner.requires_pickle:
            fn, args = _unwrap_fn(fn), _unwrap(args)
            kwargs = {k: v.value if type(v) is AutoShared else v for k, v in kwargs.items()}
        return inner.submit(fn, args, kwargs, timeout=timeout)

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
        if inner is None:
            inner = self._decide_for_memory()
        if inner is None:
            if is_async_callable(fn):
                inner = self._decide_without_measuring(fn)
            elif (
                self.spec.initializer is not None
                or self.spec.finalizer is not None
                or uses_worker_state(fn)
            ):
                inner = self._decide_stateful(fn)
        if inner is not None:
            if self._has_shares and not inner.requires_pickle:
                fn, items = _unwrap_fn(fn), _unwrap_items(items)
            fut = inner.submit_chunk(fn, items, retry, timeout=timeout)
            if self._chosen_at and inner.name == "process":
                self._time_startup(fn, fut)
            return fut
        pending = self._pending
        if pending is not None:
            # one sample runs at a time, so the user's worker bound is never exceeded
            cf.wait((pending,))
            self._pending = None
            if self._record(pending):
                self._decide_from_samples(fn)
                return self.submit_chunk(fn, items, retry, timeout=timeout)
        sent = fn  # a pool started meanwhile gets the function with its handles
        if self._has_shares:
            fn, items = _unwrap_fn(fn), _unwrap_items(items)
        fut = self._sampler.submit(self._sample_chunk, (fn, items, retry), {}, timeout=timeout)
        self._pending = fut
        if (
            not self._samples
            and self._prestart_timer is None
            and self._user_workers != 1  # one process never beats the caller
            and (self._total is None or self._total - len(items) >= 2)
        ):
            self._arm_prestart(PRESTART_AFTER, sent, retry, fut, len(items))
        return fut

    def _arm_prestart(
        self,
        after: float,
        fn: Callable[..., Any],
        retry: Retry,
        fut: cf.Future[ChunkResult],
        size: int,
    ) -> None:
        if not hasattr(time, "pthread_getcpuclockid"):
            return
        timer = threading.Timer(after, self._maybe_prestart, (after, fn, retry, fut, size))
        timer.daemon = True
        self._prestart_timer = timer
        timer.start()

    def _maybe_prestart(
        self,
        after: float,
        fn: Callable[..., Any],
        retry: Retry,
        fut: cf.Future[ChunkResult],
        size: int,
    ) -> None:
        """The first measured chunk is still running: start the process pool now if processes
        win even if the chunk ended this instant (they win more the longer it runs), so that
        the workers start while it is measured instead of after. Runs on a timer thread, again
        at doubling intervals while the chunk runs."""
        clock = self._sample_clock
        if fut.done() or clock is None or self._inner is not None or self._closed:
            return
        started, ident, cpu0, q0 = clock
        try:
            cpu = time.clock_gettime(time.pthread_getcpuclockid(ident)) - cpu0
        except (OSError, AttributeError):  # the thread ended meanwhile, or not on this OS
            return
        wall = time.perf_counter() - started
        tid = self._sampler_tid
        q = _runqueue_wait(tid) if tid is not None else None
        if q is not None and q0 is not None:
            wall = max(cpu, wall - (q - q0))
        total = self._total
        remaining = None if total is None else total - size
        if remaining is not None and remaining < 2:
            return
        cpus = available_cpus()
        startup, _ = process_startup(fn, self._user_workers or cpus, cpus)
        d = decide(
            wall / size,
            cpu / size,
            0,
            remaining,
            cpus,
            True,
            self._user_workers,
            gil_enabled(),
            startup=startup,
        )
        if d.backend != "process":
            # not yet: the chunk may run long enough for processes to win; look again later
            with self._lock:
                if self._prestart_timer is not None and not fut.done():
                    self._arm_prestart(2 * after, fn, retry, fut, size)
            return
        if not _picklable(fn):
            return
        with self._lock:
            if self._inner is not None or self._closed or fut.done():
                return
            try:
                pb = get_backend("process")(replace(self.spec, workers=d.workers, options={}))
                pb.start()
            except Exception:  # the choice itself will start it and report what is wrong
                return
            self._prestarted, self._prestarted_at = pb, time.perf_counter()
        key, t0 = _module_key(fn), self._prestarted_at

        took: list[float] = []  # this pool's workers, ready: the slowest is its start-up

        def ready(f: cf.Future[ChunkResult]) -> None:
            if not f.cancelled() and f.exception() is None:
                took.append(time.perf_counter() - t0)
                _OBSERVED_STARTUP[key] = max(took)

        try:  # empty chunks: each starts a worker, which imports the function's modules
            for _ in range(d.workers):
                pb.submit_chunk(fn, FlatItems(), retry).add_done_callback(ready)
        except Exception:
            with self._lock:
                if self._prestarted is pb:
                    self._prestarted = None
            pb.shutdown(wait=False, cancel_pending=True)

    def _sample_chunk(
        self, fn: Callable[..., Any], items: Sequence[tuple[Any, ...]], retry: Retry
    ) -> ChunkResult:
        """:func:`run_chunk` on the measuring thread, noting whether tasks kept worker state."""
        ident = threading.get_ident()
        self._sampler_tid = threading.get_native_id()
        q0 = _runqueue_wait()
        try:
            cpu0 = time.clock_gettime(time.pthread_getcpuclockid(ident))
            self._sample_clock = (time.perf_counter(), ident, cpu0, q0)
        except (OSError, AttributeError):
            pass
        try:
            return run_chunk(fn, items, retry)
        finally:
            self._sample_clock = None
            q1 = _runqueue_wait()
            self._sample_cpu_wait = q1 - q0 if q0 is not None and q1 is not None else 0.0
            if current_worker().state:
                self._kept_state = True

    def _time_startup(self, fn: Callable[..., Any], fut: cf.Future[ChunkResult]) -> None:
        """Keep the start-up of the process pool auto chose: its first result's wait."""
        started, self._chosen_at = self._chosen_at, 0.0

        def done(f: cf.Future[ChunkResult]) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            elapsed = time.perf_counter() - started - f.result().wall
            _OBSERVED_STARTUP[_module_key(fn)] = max(0.0, elapsed)

        fut.add_done_callback(done)

    def _decide_stateful(self, fn: Callable[..., Any]) -> Backend:
        """A map whose tasks keep per-worker state is not measured on a thread of auto's own:
        its tasks all run in workers of one backend, chosen before the first one runs."""
        spec = self.spec
        if spec.initializer is not None:
            why = "the pool has an initializer="
        elif spec.finalizer is not None:
            why = "the pool has a finalizer="
        else:
            why = "the function calls current_worker()"
        if (
            _picklable(fn)
            and (
                spec.initializer is None
                or _picklable(functools.partial(spec.initializer, *spec.initargs))
            )
            and (spec.finalizer is None or _picklable(spec.finalizer))
        ):
            workers = self._user_workers or available_cpus()
            return self._choose(
                Decision(
                    "process",
                    workers,
                    f"{why}, so its tasks keep per-worker state: auto does not measure them "
                    "on a thread of its own but runs every task in a worker process, one per "
                    "core (name backend='thread' for I/O-bound work)",
                )
            )
        workers = self._user_workers or get_backend("thread").default_workers()
        return self._choose(
            Decision(
                "thread",
                workers,
                f"{why}, so its tasks keep per-worker state: auto does not measure them on a "
                "thread of its own but runs every task on worker threads (processes were "
                "ruled out: the function, initializer or finalizer cannot be pickled)",
            )
        )

    def share(self, obj: T, make: Callable[[Any], Any]) -> T:
        """A handle for ``obj`` that becomes the chosen backend's kind (see :class:`AutoShared`);
        ``make`` makes the process kind's handle."""
        self._has_shares = True
        handle: Any = AutoShared(obj, make)
        return handle  # type: ignore[no-any-return]  # stands for the object in tasks

    @property
    def max_chunks_in_flight(self) -> int | None:
        """One chunk at a time while measuring; the chosen backend's window after."""
        return 1 if self._inner is None else None

    def _record(self, fut: cf.Future[ChunkResult]) -> bool:
        """Keep a finished sample's timings; True when enough has been measured."""
        with self._lock:
            timer, self._prestart_timer = self._prestart_timer, None
        if timer is not None:
            timer.cancel()
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
        # time spent ready to run but without a CPU (other programs) is neither work nor I/O
        waited = min(max(0.0, self._sample_cpu_wait), max(0.0, res.wall - res.cpu))
        self._cpu_waits.append(waited / n)
        self._samples.append(((res.wall - waited) / n, res.cpu / n, size))
        self._sampled_items += n
        measured = sum(w for w, _, _ in self._samples)
        return len(self._samples) >= SAMPLE_ITEMS or measured >= SAMPLE_SECONDS

    def _decide_from_samples(self, fn: Callable[..., Any]) -> None:
        k = len(self._samples)
        walls = sorted(w for w, _, _ in self._samples)
        wall = walls[k // 2]
        cpu = sorted(c for _, c, _ in self._samples)[k // 2]
        size = max(s for _, _, s in self._samples)
        # the spread of the measured times, relative to their median
        noise = min(1.0, (walls[-1] - walls[0]) / wall) if k > 1 and wall > 0 else MIN_NOISE
        remaining = None if self._total is None else max(1, self._total - self._sampled_items)
        cpus = available_cpus()
        p_workers = self._user_workers or cpus
        args = (wall, cpu, size, remaining, cpus)
        gil = gil_enabled()
        # start-up only matters when processes beat serial per item: then it is worked out
        # (the packages the function reaches), else the least start-up stands in for it
        startup, source = PROCESS_STARTUP, ""
        d = decide(*args, True, self._user_workers, gil, noise=noise, startup=startup)
        est = dict(d.estimates)
        if est["process"] - PROCESS_STARTUP < est["serial"]:
            startup, source = process_startup(fn, p_workers, cpus)
            pre = self._prestarted
            if pre is not None:
                # its workers have been starting while auto measured: what is left to wait
                since = time.perf_counter() - self._prestarted_at
                startup = max(0.0, startup - since)
                source += f"; {_fmt_time(since)} of it already spent while auto measured"
            d = decide(*args, True, self._user_workers, gil, noise=noise, startup=startup)
        # pickling is checked only when processes would win: importing cloudpickle costs
        # more than a whole map of tiny tasks (the process backend imports it anyway)
        if d.backend == "process" and not _picklable(fn):
            d = decide(*args, False, self._user_workers, gil, noise=noise, startup=startup)
        keep = self._kept_state
        if keep and d.backend != "thread":
            # a measured task wrote current_worker().state on the measuring thread: that
            # thread stays a worker, so every task sees the same kind of worker
            t = decide(*args, False, self._user_workers, gil, noise=noise, startup=startup)
            workers = 1 if t.backend == "serial" else t.workers
            d = replace(
                d,
                backend="thread",
                workers=workers,
                reason=f"{d.reason}; but a measured task kept state in "
                "current_worker().state on auto's measuring thread, so that thread stays a "
                "worker and the rest run on threads too (name the backend to choose)",
            )
        if source and "process" in dict(d.estimates):
            d = replace(d, reason=f"{d.reason} [process start-up {source}]")
        self._choose(
            replace(
                d,
                items_measured=self._sampled_items,
                wall_per_item=wall,
                cpu_per_item=cpu,
                result_bytes=size,
                cpu_wait_per_item=sorted(self._cpu_waits)[k // 2] if self._cpu_waits else 0.0,
            ),
            keep_sampler=keep,
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
            unused, self._prestarted = self._prestarted, None
        if unused is not None:
            unused.shutdown(wait=wait, cancel_pending=True)
        self._sampler.shutdown(wait=wait, cancel_pending=cancel_pending)
        if inner is not None and inner is not self._sampler:
            inner.shutdown(wait=wait, cancel_pending=cancel_pending)

    def terminate(self) -> None:
        """Stop now, delegated to the chosen backend."""
        with self._lock:
            self._closed = True
            inner = self._inner
            unused, self._prestarted = self._prestarted, None
        if unused is not None:
            unused.terminate()
        self._sampler.terminate()
        if inner is not None and inner is not self._sampler:
            inner.terminate()

    async def ashutdown(self, cancel_pending: bool = False) -> None:
        """Async shutdown, delegated to the chosen backend when it has one."""
        inner = self._inner
        if inner is not None and type(inner).ashutdown is not Backend.ashutdown:
            with self._lock:  # the chosen backend waits without a thread (asyncio)
                self._closed = True
            await inner.ashutdown(cancel_pending=cancel_pending)
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
