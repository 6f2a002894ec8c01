"""The map policy, written once for every backend.

Input is read lazily in chunks, with a bounded number of chunks in flight (backpressure).
Results come back in input order (or as completed), errors are raised or collected, progress
is counted per finished task. The sync and async drivers share :class:`MapRun` and differ only
in how they wait for a chunk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import dataclasses
import functools
import itertools
import math
import queue
import reprlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._abc import Backend
from ._exceptions import PicklingError, TaskTimeoutError
from ._pickling import number_inputs
from ._rate import RateLimiter
from ._result import Result
from ._tasks import ChunkResult, FlatItems, Retry, item_args

if TYPE_CHECKING:
    from ._observe import RunObservers

#: at most this many input items are read ahead of the consumer (across all chunks)
MAX_ITEMS_IN_FLIGHT = 65_536
#: automatic chunks never hold more items than this when the input's length is unknown
UNSIZED_CHUNK_CAP = 4096
_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


@dataclass(frozen=True)
class MapOptions:
    """Per-call options of ``map``/``imap``/``imap_unordered``/``amap`` (private)."""

    chunksize: int | None = None
    errors: str = "raise"
    task_timeout: float | None = None
    retry: Retry = Retry()
    progress: bool | dict[str, Any] = False
    timeout: float | None = None  # the stdlib Executor.map timeout: from the call to map
    rate: RateLimiter | None = None  # paces task starts: one token per input


class Chunker:
    """Chooses chunk sizes: fixed, or grown from measured per-item time.

    Each chunk holds the backend's ``target_chunk_seconds`` of work. A backend whose chunk
    boundaries cost more (a process pool's round trip through the parent) sets
    ``max_chunk_seconds``: while much of a sized input is left, a chunk then holds a share
    of the work left (``left / (4 * workers)``, guided scheduling) up to that much, so that
    the chunks shrink back to the target as the input runs out and the workers still end
    together. Chunks grow to that size by doubling from the target, so a pool whose workers
    crash early (its backend then stops asking for long chunks) has few long chunks to run
    again. It reads the backend's settings on every call, so a backend that changes its mind
    (the ``auto`` backend, once it has measured the work) is followed at once.
    """

    def __init__(self, fixed: int | None, backend: Backend, total: int | None):
        self.fixed = fixed
        self.backend = backend
        self.total = total
        self.per_item: float | None = None
        #: items handed out in chunks so far, and the size of the last chunk
        self.taken = 0
        self.last = 0
        self._wall = 0.0
        self._items = 0

    @property
    def cap(self) -> int:
        if self.total is None:
            return UNSIZED_CHUNK_CAP
        workers = max(1, self.backend.effective_workers())
        return max(1, math.ceil(self.total / (4 * workers)))

    def next_size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        batch = self.backend.fixed_batch
        if batch is not None:
            # the items of a batch run at once, each on its own worker: no need to split the
            # input across workers with a cap, and fewer, fuller batches cost less per item
            return int(batch)
        if self.per_item is None:
            return 1
        if self.per_item <= 0:
            return self.cap
        target: float = self.backend.target_chunk_seconds
        size = max(1, int(target / self.per_item))
        longest: float | None = self.backend.max_chunk_seconds
        if longest is not None and self.total is not None:
            workers = max(1, self.backend.effective_workers())
            share = min(longest, (self.total - self.taken) * self.per_item / (4 * workers))
            size = max(size, min(int(share / self.per_item), 2 * self.last))
        return min(self.cap, size)

    def took(self, n: int) -> None:
        """``n`` items were handed out in one chunk."""
        self.taken += n
        self.last = n

    def observe(self, res: ChunkResult, n: int) -> None:
        if self.fixed is not None or n == 0:
            return
        # all measured time over all measured items: a slow first call (imports, caches)
        # is diluted at once instead of halving away chunk by chunk
        self._wall += res.wall
        self._items += n
        self.per_item = self._wall / self._items


def _describe(args: tuple[Any, ...]) -> str:
    if len(args) == 1:
        return _short.repr(args[0])
    return _short.repr(args)


class _Entry:
    __slots__ = ("fut", "items", "base", "timeouts")

    def __init__(self, fut: cf.Future[ChunkResult], items: list[tuple[Any, ...]], base: int):
        self.fut = fut
        self.items = items
        self.base = base
        #: the CPU-bound-in-threads check counts this chunk
        #: how many times this chunk timed out and was submitted again
        self.timeouts = 0


class MapRun:
    """The state of one map: what is in flight and how results turn into outputs."""

    def __init__(
        self,
        backend: Backend,
        fn: Callable[..., Any],
        args: Iterable[Any],
        opts: MapOptions,
        *,
        ordered: bool,
        total: int | None,
        flat: bool = False,
        on_done: Callable[[_Entry], None] | None = None,
        observer: RunObservers | None = None,
    ) -> None:
        if observer is not None:  # traced: run_chunk times every call (see _observe)
            opts = dataclasses.replace(opts, retry=observer.retry_for(opts.retry))
        #: the run's observers (the tracer, the debug checks: see _observe), else None
        self.observer = observer
        self.backend = backend
        self.fn = fn
        self.it = iter(args)
        #: an input that can say how many items it holds right now (a pipeline stage's queue)
        self.ready: Callable[[], int] | None = getattr(self.it, "anypool_ready", None)
        self.flat = flat  # one input iterable: items are the arguments themselves
        self.opts = opts
        self.ordered = ordered
        chunk = opts.chunksize
        if chunk is None and (opts.task_timeout is not None or opts.rate is not None):
            chunk = 1  # a timeout is per task, a rate per start: one task per chunk
        self.chunker = Chunker(chunk, backend, total)
        self.inflight: deque[_Entry] = deque()
        self.inflight_items = 0
        self.next_index = 0
        self.exhausted = False
        #: with ``rate=``: seconds until the next token, when ``fill`` stopped for want of one
        self.gate_wait: float | None = None
        #: with ``rate=``: a chunk read but not yet sent (waiting for its token), and its size
        self.held: tuple[list[Any], int] | None = None
        self.on_done = on_done
        self.bar: Any = None
        if opts.progress:
            self.bar = _make_bar(opts.progress, total)

    @property
    def max_chunks(self) -> int:
        """Chunks in flight: two per worker keeps every worker busy while results are read."""
        limit = self.backend.max_chunks_in_flight
        if limit is not None:
            return limit
        workers = max(1, self.backend.effective_workers())
        batch = self.backend.fixed_batch
        if batch:
            # the items of a batch run at once: keep about 2 * workers items in flight, counted
            # with the batch size actually used (chunksize= or task_timeout can make it smaller
            # than fixed_batch; counting with fixed_batch then starved the workers)
            return max(2, math.ceil(2 * workers / self.chunker.next_size()))
        return max(2, 2 * workers)

    # -- submitting ---------------------------------------------------------------------
    def fill(self, holding: bool = False) -> None:
        """Read input and submit chunks until the window is full or the input ends.

        With ``rate=`` each chunk (of one input) takes a token once its input has been read
        (a slow input must not age the token); when none is free the input is held back and
        ``gate_wait`` says how long the driver should wait before filling again.
        ``holding``: the caller holds outputs it has not delivered yet.
        """
        self.gate_wait = None
        while not self.exhausted and len(self.inflight) < self.max_chunks:
            size = self.chunker.next_size()
            if self.ready is not None and self.held is None:
                # an input fed by a producer that may be slow (a pipeline's queue): never wait
                # for it while results are due (deliver them first), nor to fill a whole chunk
                ready = self.ready()
                if ready == 0 and (holding or self.inflight):
                    return
                size = max(1, min(size, ready))
            if self.inflight and self.inflight_items + size > MAX_ITEMS_IN_FLIGHT:
                return
            items: list[Any]
            if self.held is not None:
                items, size = self.held
                self.held = None
            else:
                items = (
                    FlatItems(itertools.islice(self.it, size))
                    if self.flat
                    else list(itertools.islice(self.it, size))
                )
                if not items:
                    self.exhausted = True
                    return
            if self.opts.rate is not None:
                wait = self.opts.rate.delay()
                if wait > 0:
                    self.held = (items, size)
                    self.gate_wait = wait
                    return
            entry = _Entry(self._submit(items, self.next_index), items, self.next_index)
            self.next_index += len(items)
            self.chunker.took(len(items))
            self.inflight.append(entry)
            self.inflight_items += len(items)
            self._watch(entry)
            if len(items) < size:
                self.exhausted = True

    def _submit(self, items: list[tuple[Any, ...]], base: int) -> cf.Future[ChunkResult]:
        try:
            return self.backend.submit_chunk(
                self.fn, items, self.opts.retry, timeout=self.opts.task_timeout
            )
        except PicklingError as exc:  # an argument that cannot be sent: name its input
            number_inputs(exc, base)
            raise

    def _watch(self, entry: _Entry) -> None:
        fut, items = entry.fut, entry.items
        if self.bar is not None:
            fut.add_done_callback(functools.partial(_count, self.bar, len(items)))
        if self.on_done is not None:
            fut.add_done_callback(functools.partial(_notify, self.on_done, entry))
        if self.observer is not None:  # after submitting: auto may just have chosen
            self.observer.chunk_submitted(fut, entry.base, items)

    def _retry_timeout(self, entry: _Entry, exc: BaseException) -> bool:
        """Submit a timed-out chunk again when ``retries=`` allows it (and ``retry_on``
        matches :class:`TaskTimeoutError`); it keeps its place in line."""
        retry = self.opts.retry
        if not isinstance(exc, TaskTimeoutError):
            return False
        if not retry.allows(exc, entry.timeouts + 1):
            retry.gave_up(exc, entry.timeouts + 1)
            return False
        entry.timeouts += 1
        if self.bar is not None:  # the failed attempt was counted as done: it is not
            self.bar.update(-len(entry.items))
        entry.fut = self._submit(entry.items, entry.base)
        self.inflight.appendleft(entry)  # an ordered map waits for it first, as before
        self.inflight_items += len(entry.items)
        self._watch(entry)
        return True

    @property
    def finished(self) -> bool:
        return self.exhausted and not self.inflight

    # -- collecting ---------------------------------------------------------------------
    def take(self, entry: _Entry) -> list[Any]:
        """Remove a finished entry and turn its outcome into outputs (may raise)."""
        if self.inflight and self.inflight[0] is entry:
            self.inflight.popleft()
        else:
            self.inflight.remove(entry)
        self.inflight_items -= len(entry.items)
        if self.observer is not None:  # a trace has the chunk before its results leave
            self.observer.chunk_done(entry.fut)
        collect = self.opts.errors == "collect"
        try:
            res = entry.fut.result(timeout=0)
        except cf.CancelledError:
            raise
        except BaseException as exc:
            # the whole chunk failed (worker crashed, timed out, pool broken...)
            if self._retry_timeout(entry, exc):
                return []
            if collect:
                return [Result(error=exc, index=entry.base + i) for i in range(len(entry.items))]
            self._annotate(exc, entry, 0)
            raise
        self.chunker.observe(res, len(entry.items))
        values = res.values
        if collect:
            # in place: the caller empties this very list as it reads the results, so the
            # chunk's future (which a backend may still hold) keeps none of them
            errors = res.errors or {}
            base = entry.base
            for i, v in enumerate(values):
                values[i] = (
                    Result(error=errors[i], index=base + i)
                    if i in errors
                    else Result(v, index=base + i)
                )
            return values
        if res.errors:
            first = min(res.errors)
            err = res.errors[first]
            self._annotate(err, entry, first)
            raise err
        return values

    def _annotate(self, exc: BaseException, entry: _Entry, pos: int) -> None:
        args = item_args(entry.items, pos) if pos < len(entry.items) else ()
        note = f"anypool: raised by the task for input #{entry.base + pos}: {_describe(args)}"
        if note not in getattr(exc, "__notes__", ()):
            exc.add_note(note)

    def cancel_all(self) -> None:
        """Cancel every chunk still in flight (those already running finish on their own)."""
        for e in self.inflight:
            e.fut.cancel()
        self.inflight.clear()
        self.inflight_items = 0

    def close(self) -> None:
        self.cancel_all()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _count(bar: Any, n: int, _fut: object) -> None:
    bar.update(n)


def _notify(cb: Callable[[_Entry], None], entry: _Entry, _fut: object) -> None:
    cb(entry)


def _make_bar(progress: bool | dict[str, Any], total: int | None) -> Any:
    from tqdm.auto import tqdm

    kwargs: dict[str, Any] = {"total": total, "unit": "task", "smoothing": 0.1}
    if isinstance(progress, dict):
        kwargs.update(progress)
    return tqdm(**kwargs)


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the map's timeout expired before the next result was ready")
    return left


def _shorter(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def run_sync(run: MapRun, deadline: float | None) -> Iterator[list[Any]]:
    """Drive ``run`` from a synchronous caller, yielding the outputs chunk by chunk."""
    done_q: queue.SimpleQueue[_Entry] | None = None
    if not run.ordered:
        done_q = queue.SimpleQueue()
        run.on_done = done_q.put
    try:
        run.fill()
        while not run.finished:
            gate = run.gate_wait  # rate=: fill again after this long even if nothing finished
            if gate is not None and not run.inflight:
                time.sleep(_shorter(_remaining(deadline), gate))  # type: ignore[arg-type]
                run.fill()
                continue
            if not run.inflight:  # fill() left the input for later (see MapRun.ready)
                run.fill()
                continue
            wait = _shorter(_remaining(deadline), gate)
            if done_q is None:
                entry = run.inflight[0]
                if wait is None:
                    cf.wait((entry.fut,))
                elif not cf.wait((entry.fut,), timeout=wait).done:
                    if gate is None:
                        raise TimeoutError(
                            "the map's timeout expired before the next result was ready"
                        )
                    run.fill()
                    continue
            else:
                try:
                    entry = done_q.get(timeout=wait)
                except queue.Empty:
                    if gate is None:
                        raise TimeoutError(
                            "the map's timeout expired before the next result was ready"
                        ) from None
                    run.fill()
                    continue
            out = run.take(entry)
            del entry  # nor the chunk's future (its results) while the caller reads them
            run.fill(holding=True)
            yield out  # the caller empties it as it hands the results out
    finally:
        run.close()


async def run_async(run: MapRun) -> AsyncIterator[list[Any]]:
    """Drive ``run`` from async code without blocking the event loop (chunk by chunk)."""
    done_q: asyncio.Queue[_Entry] | None = None
    if not run.ordered:
        loop = asyncio.get_running_loop()
        done_q = asyncio.Queue()
        put = done_q.put_nowait

        def on_done(e: _Entry) -> None:
            try:
                loop.call_soon_threadsafe(put, e)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        run.on_done = on_done
    try:
        run.fill()
        while not run.finished:
            gate = run.gate_wait  # rate=: fill again after this long even if nothing finished
            if gate is not None and not run.inflight:
                await asyncio.sleep(gate)
                run.fill()
                continue
            if not run.inflight:  # fill() left the input for later (see MapRun.ready)
                run.fill()
                continue
            if done_q is None:
                entry = run.inflight[0]
                if not entry.fut.done():  # often done already: skip the loop round trip
                    done, _ = await asyncio.wait([asyncio.wrap_future(entry.fut)], timeout=gate)
                    if not done:
                        run.fill()
                        continue
            elif gate is None:
                entry = await done_q.get()
            else:
                try:
                    entry = await asyncio.wait_for(done_q.get(), gate)
                except TimeoutError:
                    run.fill()
                    continue
            out = run.take(entry)
            del entry  # nor the chunk's future (its results) while the caller reads them
            run.fill(holding=True)
            yield out
    finally:
        run.close()
