"""Pipeline: stages on their own pools, bounded queues; errors and stops travel by themselves."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import anypool
from anypool import Pipeline, Result
from conftest import SHORT_TIMEOUT, adapt

# -- module-level functions: process workers import them by name --------------------------------


def square(x: int) -> int:
    return x * x


def add_one(x: int) -> int:
    return x + 1


def is_even(x: int) -> bool:
    return x % 2 == 0


def upto(x: int) -> list[int]:
    return list(range(x))


def count_up(x: int) -> Iterator[int]:
    yield from range(x)


def fail_on_3(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x


def fail_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def nap_from_2(x: int) -> int:
    if x >= 2:
        time.sleep(60)  # a long task: only Ctrl-C's terminate ends it
    return x


async def afetch(x: int) -> int:
    await asyncio.sleep(0)
    return x


async def agen(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


def agen_count(x: int) -> Any:
    async def inner() -> AsyncIterator[int]:
        for i in range(x):
            yield i

    return inner()


async def aflat(x: int) -> AsyncIterator[int]:
    for i in range(x):
        yield i


def _anypool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("anypool")]


# -- order and stage kinds ---------------------------------------------------------------------


def test_stages_keep_the_input_order(backend: str) -> None:
    pipe = (
        Pipeline(range(60))
        .map(adapt(backend, square), backend=backend, workers=3)
        .map(adapt(backend, add_one), backend=backend, workers=2)
    )
    assert list(pipe) == [x * x + 1 for x in range(60)]


def test_unordered_stages_deliver_every_result_once(backend: str) -> None:
    pipe = (
        Pipeline(range(60))
        .map(adapt(backend, square), backend=backend, ordered=False)
        .map(adapt(backend, add_one), backend=backend, ordered=False)
    )
    assert sorted(pipe.run()) == [x * x + 1 for x in range(60)]


def test_filter_flat_map_and_batch(backend: str) -> None:
    pipe = (
        Pipeline(range(10))
        .filter(adapt(backend, is_even), backend=backend)
        .flat_map(adapt(backend, upto), backend=backend)
        .batch(3)
    )
    flat = [y for x in range(10) if x % 2 == 0 for y in range(x)]
    expected = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    assert pipe.run() == expected
    assert len(expected[-1]) < 3  # the last batch is shorter


def test_flat_map_accepts_generator_functions_on_processes() -> None:
    pipe = Pipeline([1, 2, 3]).flat_map(count_up, backend="process", workers=2)
    assert pipe.run() == [0, 0, 1, 0, 1, 2]


def test_stages_run_on_executors_the_caller_owns() -> None:
    """backend= an Executor in a stage: anypool's policy over it, and it is left running."""
    import concurrent.futures as cf
    import multiprocessing as mp

    with (
        cf.ThreadPoolExecutor(2) as threads,
        cf.ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as procs,
    ):
        out = (
            Pipeline(range(20))
            .map(square, backend=procs)
            .filter(is_even, backend=threads, ordered=False)
            .run()
        )
        assert sorted(out) == [x * x for x in range(0, 20, 2)]
        assert threads.submit(add_one, 1).result(SHORT_TIMEOUT) == 2  # still running
        assert procs.submit(add_one, 2).result(SHORT_TIMEOUT) == 3
        with pytest.raises(TypeError, match="chunksze"):
            Pipeline(range(3)).map(square, backend=threads, chunksze=2)


def test_flat_map_accepts_async_generator_functions() -> None:
    assert Pipeline([2, 3]).flat_map(aflat, backend="asyncio").run() == [0, 1, 0, 1, 2]


def test_batch_edges() -> None:
    assert Pipeline(range(7)).batch(3).run() == [[0, 1, 2], [3, 4, 5], [6]]
    assert Pipeline(range(6)).batch(3).run() == [[0, 1, 2], [3, 4, 5]]
    assert Pipeline([]).batch(3).run() == []
    assert Pipeline(range(3)).batch(1).run() == [[0], [1], [2]]


def test_an_empty_source_and_a_pipeline_with_no_stages() -> None:
    assert Pipeline([]).map(square, backend="thread").run() == []
    assert Pipeline(iter(range(5))).run() == [0, 1, 2, 3, 4]


def test_mixed_backends_in_one_pipeline() -> None:
    pipe = (
        Pipeline(range(40))
        .map(afetch, backend="asyncio", workers=8)
        .map(square, backend="process", workers=2)
        .filter(lambda v: v % 3 != 0)
        .map(add_one, backend="thread", workers=3)
        .map(str, backend="serial")
    )
    assert pipe.run() == [str(x * x + 1) for x in range(40) if (x * x) % 3 != 0]


def test_auto_stages_choose_per_stage() -> None:
    # the default backend is auto for every stage: coroutines go to asyncio, cheap work runs
    pipe = Pipeline(range(30)).map(afetch).map(square).filter(is_even)
    assert pipe.run() == [x * x for x in range(30) if (x * x) % 2 == 0]


def test_explain_says_what_ran_each_stage() -> None:
    pipe = Pipeline(range(30)).map(afetch).map(square, backend="thread", workers=3).batch(4)
    assert "not run yet" in pipe.explain()
    pipe.run()
    lines = pipe.explain().splitlines()
    assert lines[0].startswith("stage 1 .map(afetch, backend='auto'): auto chose")
    assert "backend='thread' with 3 worker(s)" in lines[1]
    assert lines[-1].startswith("stage 3 .batch(4): groups items")


def test_stage_options_are_forwarded_to_the_stage_map() -> None:
    attempts: dict[int, int] = {}
    lock = threading.Lock()

    def flaky(x: int) -> int:
        with lock:
            attempts[x] = attempts.get(x, 0) + 1
            first = attempts[x] == 1
        if first and x % 2:
            raise ConnectionError("try again")
        return x

    pipe = Pipeline(range(8)).map(
        flaky, backend="thread", workers=2, retries=2, retry_on=ConnectionError, chunksize=1
    )
    assert pipe.run() == list(range(8))
    assert attempts == {x: 2 if x % 2 else 1 for x in range(8)}


def test_stages_can_run_on_the_callers_own_pools() -> None:
    with anypool.Pool("process", 2) as cpu, anypool.Pool("thread", 3) as io:
        for _ in range(2):  # warm pools, reused by one pipeline after another
            pipe = Pipeline(range(20)).map(square, pool=cpu).map(add_one, pool=io, chunksize=1)
            assert pipe.run() == [x * x + 1 for x in range(20)]
        assert "pool=<anypool.Pool backend='process'" in repr(pipe)
        # an early stop cancels the stage's work, not the pool
        for _ in Pipeline(itertools.count()).map(square, pool=cpu):
            break
        assert cpu.submit(square, 7).result() == 49


def test_pool_conflicts_are_refused() -> None:
    with anypool.Pool("thread", 2) as pool:
        pipe = Pipeline(range(3))
        with pytest.raises(TypeError, match="do not pass backend= or workers="):
            pipe.map(square, pool=pool, workers=3)
        with pytest.raises(TypeError, match="initializer= set"):
            pipe.map(square, pool=pool, initializer=print)
        with pytest.raises(TypeError, match="must be an anypool.Pool"):
            pipe.map(square, pool="thread")  # type: ignore[arg-type]


def test_pool_options_work_per_stage() -> None:
    def init() -> None:
        anypool.current_worker().state["tag"] = "ready"

    def tagged(x: int) -> str:
        return f"{anypool.current_worker().state['tag']}-{x}"

    pipe = Pipeline(range(3)).map(tagged, backend="thread", workers=2, initializer=init)
    assert pipe.run() == ["ready-0", "ready-1", "ready-2"]


# -- backpressure ------------------------------------------------------------------------------


class CountingSource:
    """An endless source that counts how many items were pulled from it."""

    def __init__(self) -> None:
        self.pulled = 0
        self.cond = threading.Condition()

    def __iter__(self) -> Iterator[int]:
        for i in itertools.count():
            with self.cond:
                self.pulled += 1
                self.cond.notify_all()
            yield i

    def wait_for(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.pulled >= n, SHORT_TIMEOUT), self.pulled


def test_a_slow_consumer_holds_an_endless_source_back(backend: str) -> None:
    buffer = 4
    src = CountingSource()
    pipe = (
        Pipeline(src, buffer=buffer)
        .map(adapt(backend, square), backend=backend, workers=2, chunksize=1)
        .map(adapt(backend, add_one), backend=backend, workers=2, chunksize=1)
    )
    # what the pipeline may hold: the source's item in hand, three queues, the consumer's
    # read-ahead, and per stage its read-ahead from its queue, its window (2 chunks per worker
    # here; up to 4 on some backends) and a result in hand
    bound = 1 + 3 * buffer + buffer + 2 * (buffer + 4 * 2 + 2)
    # the pipeline always runs at least this far ahead of a consumer that waits
    ahead = 3 * buffer - 2
    consumed = 0
    it = iter(pipe)
    for x in it:
        assert x == consumed * consumed + 1
        consumed += 1
        src.wait_for(consumed + ahead)  # the consumer is slow: the stages fill up
        assert src.pulled <= consumed + bound
        if consumed == 200:
            break
    del it
    assert src.pulled <= consumed + bound


def test_results_flow_while_the_source_waits(backend: str) -> None:
    # the source gives a burst, then waits for the consumer to have seen all of it: no stage
    # may hold finished results back while it waits for more input (or to fill a chunk)
    seen_burst = threading.Event()

    def source() -> Iterator[int]:
        yield from range(50)
        if not seen_burst.wait(SHORT_TIMEOUT):
            raise TimeoutError("the burst's results never reached the consumer")
        yield from range(50, 60)

    pipe = (
        Pipeline(source())
        .map(adapt(backend, add_one), backend=backend, workers=2)
        .map(adapt(backend, square), backend=backend, workers=2)
    )
    out = []
    for x in pipe:
        out.append(x)
        if len(out) == 50:
            seen_burst.set()
    assert out == [(i + 1) ** 2 for i in range(60)]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 2])
def test_an_error_in_any_stage_stops_every_stage(backend: str, position: int) -> None:
    fns = [adapt(backend, add_one)] * 3
    fns[position] = adapt(backend, fail_on_3)
    pipe = Pipeline(itertools.count())  # endless: only the error can stop it
    for fn in fns:
        pipe = pipe.map(fn, backend=backend, workers=2)
    with pytest.raises(ValueError, match="bad item 3") as info:
        for _ in pipe:
            pass
    notes = "\n".join(getattr(info.value, "__notes__", ()))
    assert f"stage {position + 1} .map(fail_on_3" in notes
    assert not [t for t in _anypool_threads() if t.is_alive()]


def test_the_error_keeps_its_traceback() -> None:
    pipe = Pipeline(range(10)).map(fail_on_3, backend="thread").map(add_one, backend="thread")
    with pytest.raises(ValueError, match="bad item 3") as info:
        pipe.run()
    assert any(entry.name == "fail_on_3" for entry in info.traceback)


def test_an_error_in_a_process_stage_comes_back_as_itself() -> None:
    pipe = Pipeline(range(10)).map(fail_on_3, backend="process", workers=2)
    with pytest.raises(ValueError, match="bad item 3") as info:
        pipe.run()
    assert "fail_on_3" in str(info.value.__cause__)  # the worker's traceback


def test_an_error_in_the_source_stops_the_pipeline(backend: str) -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise OSError("source broke")

    pipe = Pipeline(source()).map(adapt(backend, square), backend=backend)
    got: list[int] = []
    with pytest.raises(OSError, match="source broke") as info:
        got.extend(pipe)
    assert "pipeline's source" in "\n".join(info.value.__notes__)
    assert got == [x * x for x in range(len(got))]


def test_an_error_in_an_async_source() -> None:
    async def source() -> AsyncIterator[int]:
        yield 1
        raise OSError("async source broke")

    with pytest.raises(OSError, match="async source broke"):
        Pipeline(source()).map(square, backend="thread").run()

    async def main() -> None:
        with pytest.raises(OSError, match="async source broke"):
            await Pipeline(source()).map(square, backend="thread").arun()

    asyncio.run(main())  # the source runs on the caller's loop here


def test_a_bad_stage_option_value_is_raised_at_the_caller() -> None:
    pipe = Pipeline(range(3)).map(square, backend="thread", chunksize=0)
    with pytest.raises(ValueError, match="chunksize"):
        pipe.run()


# -- stopping early ----------------------------------------------------------------------------


def test_breaking_out_of_the_loop_stops_and_joins_everything(backend: str) -> None:
    pipe = (
        Pipeline(itertools.count())
        .map(adapt(backend, square), backend=backend, workers=2)
        .map(adapt(backend, add_one), backend=backend, workers=2)
    )
    for i, x in enumerate(pipe):
        assert x == i * i + 1
        if i == 10:
            break
    # the loop's iterator was dropped: every thread and worker was joined right there
    assert not [t for t in _anypool_threads() if t.is_alive()]


def test_close_stops_a_running_pipeline() -> None:
    pipe = Pipeline(itertools.count()).map(square, backend="process", workers=2)
    it = iter(pipe)
    assert next(it) == 0
    pipe.close()
    assert not [t for t in _anypool_threads() if t.is_alive()]
    assert list(it) == []


def test_garbage_collection_stops_a_pipeline() -> None:
    it = iter(Pipeline(itertools.count()).map(square, backend="thread", workers=2))
    assert next(it) == 0
    del it
    gc.collect()
    assert not [t for t in _anypool_threads() if t.is_alive()]


def test_with_block_closes_the_pipeline() -> None:
    with Pipeline(itertools.count()).map(square, backend="thread") as pipe:
        assert next(iter(pipe)) == 0
    assert not [t for t in _anypool_threads() if t.is_alive()]


def test_ctrl_c_in_the_consumer_ends_running_process_tasks() -> None:
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt_on_1(x: int) -> int:
        if x == 1:
            assert main is not None
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, while stage 1 is stuck
        return x

    pipe = (
        Pipeline(range(6))
        .map(nap_from_2, backend="process", workers=2, chunksize=1)
        .map(interrupt_on_1, backend="thread", workers=1)
    )
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), pipe:
        for _ in pipe:
            pass
    # the 60 s tasks were ended, not waited for (the leak check finds no worker process)
    assert time.monotonic() - t0 < SHORT_TIMEOUT
    assert not [t for t in _anypool_threads() if t.name.startswith("anypool-pipeline")]
    # as Pool.terminate() does, thread workers were let go rather than joined: they end
    # by themselves
    for t in _anypool_threads():
        t.join(SHORT_TIMEOUT)


def test_keyboard_interrupt_raised_in_a_stage_reaches_the_caller() -> None:
    def boom(x: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Pipeline(range(3)).map(boom, backend="thread").run()


# -- collect mode ------------------------------------------------------------------------------


def test_collect_mode_passes_failed_items_through_later_stages() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def record(x: int) -> int:
        with lock:
            seen.append(x)
        return x * 10

    pipe = (
        Pipeline(range(8), errors="collect")
        .map(fail_on_odd, backend="thread", workers=3)
        .map(record, backend="thread", workers=2)
    )
    out = pipe.run()
    assert all(isinstance(r, Result) for r in out)
    assert [r.index for r in out] == list(range(8))
    assert [r.value for r in out if r.ok] == [0, 20, 40, 60]
    assert [r.ok for r in out] == [x % 2 == 0 for x in range(8)]  # failures keep their place
    assert sorted(seen) == [0, 2, 4, 6]  # the second stage never saw a failed item
    err = out[1].error
    assert isinstance(err, ValueError)
    assert str(err) == "odd 1"
    assert "stage 1 .map(fail_on_odd" in "\n".join(err.__notes__)


def test_collect_mode_with_processes_unordered_filter_and_batch() -> None:
    pipe = (
        Pipeline(range(10), errors="collect")
        .map(fail_on_3, backend="process", workers=2, ordered=False)
        .filter(is_even, backend="thread")
        .batch(2)
    )
    out = pipe.run()
    failed = [r for r in out if not r.ok]
    assert len(failed) == 1
    assert isinstance(failed[0].error, ValueError)
    batches = [r.value for r in out if r.ok]
    assert sorted(x for b in batches for x in b) == [0, 2, 4, 6, 8]


# -- async -------------------------------------------------------------------------------------


def test_async_for_and_arun() -> None:
    async def main() -> tuple[list[int], list[int]]:
        pipe = Pipeline(range(20)).map(afetch, backend="asyncio").map(square, backend="thread")
        got = [x async for x in pipe]
        again = await Pipeline(agen(5)).map(square, backend="process", workers=2).arun()
        return got, again

    got, again = asyncio.run(main())
    assert got == [x * x for x in range(20)]
    assert again == [0, 1, 4, 9, 16]


def test_async_consumer_does_not_block_the_event_loop() -> None:
    gate = threading.Event()

    def wait_for_gate(x: int) -> int:
        assert gate.wait(SHORT_TIMEOUT)
        return x

    async def main() -> list[int]:
        pipe = Pipeline(range(3)).map(wait_for_gate, backend="thread", workers=3)

        async def opener() -> None:
            await asyncio.sleep(0)  # runs only if the loop is free while the pipeline waits
            gate.set()

        task = asyncio.get_running_loop().create_task(opener())
        out = await pipe.arun()
        await task
        return out

    assert asyncio.run(main()) == [0, 1, 2]


def test_async_errors_and_early_exit() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="bad item 3"):
            async for _ in Pipeline(range(10)).map(fail_on_3, backend="thread"):
                pass
        outputs = aiter(Pipeline(itertools.count()).map(afetch, backend="asyncio"))
        assert await anext(outputs) == 0
        await outputs.aclose()  # type: ignore[attr-defined]

    asyncio.run(main())


def test_cancelling_the_async_consumer_stops_the_pipeline() -> None:
    started = threading.Event()
    gate = threading.Event()

    def held(x: int) -> int:
        if x == 1:
            started.set()
            assert gate.wait(SHORT_TIMEOUT)
        return x

    async def main() -> list[int]:
        got: list[int] = []
        first = asyncio.Event()

        async def consume() -> None:
            async for x in Pipeline(itertools.count()).map(held, backend="thread", workers=1):
                got.append(x)
                first.set()

        task = asyncio.get_running_loop().create_task(consume())
        await first.wait()
        assert await asyncio.to_thread(started.wait, SHORT_TIMEOUT)
        task.cancel()  # the consumer waits for item 1, which is held
        gate.set()  # a running thread task cannot be stopped: let it end
        with pytest.raises(asyncio.CancelledError):
            await task
        return got

    assert asyncio.run(main()) == [0]


def test_async_with_closes_the_pipeline() -> None:
    async def main() -> int:
        async with Pipeline(itertools.count()).map(afetch, backend="asyncio") as pipe:
            async for x in pipe:
                if x == 3:
                    break
        return x

    assert asyncio.run(main()) == 3


def test_close_from_another_thread_ends_the_consumers_loop() -> None:
    pipe = Pipeline(itertools.count()).map(square, backend="thread", workers=2)
    got: list[int] = []
    for x in pipe:
        got.append(x)
        if len(got) == 5:
            closer = threading.Thread(target=pipe.close)
            closer.start()
            closer.join()
    assert got[:5] == [0, 1, 4, 9, 16]


def test_async_iteration_outside_an_event_loop_leaves_nothing_running() -> None:
    pipe = Pipeline(agen(3)).map(square, backend="thread")
    with pytest.raises(RuntimeError, match="no running event loop"):
        aiter(pipe)


def test_a_pools_own_defaults_do_not_change_the_pipelines_errors_mode() -> None:
    with anypool.Pool("thread", 2, errors="collect") as pool:
        with pytest.raises(ValueError, match="bad item 3"):
            Pipeline(range(5)).map(fail_on_3, pool=pool).run()
        assert Pipeline(range(3)).map(square, pool=pool).run() == [0, 1, 4]


def test_an_asyncio_stage_on_the_callers_own_loop() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()

        async def on_my_loop(x: int) -> int:
            assert asyncio.get_running_loop() is loop
            return x * 2

        async with anypool.Pool("asyncio", 4) as pool:
            return [x async for x in Pipeline(range(10)).map(on_my_loop, pool=pool)]

    assert asyncio.run(main()) == [x * 2 for x in range(10)]


def test_an_async_source_under_a_sync_consumer() -> None:
    assert Pipeline(agen(6)).map(square, backend="thread").run() == [x * x for x in range(6)]


# -- single use, progress, validation -----------------------------------------------------------


def test_a_pipeline_runs_once() -> None:
    pipe = Pipeline(range(3)).map(square, backend="serial")
    assert pipe.run() == [0, 1, 4]
    with pytest.raises(RuntimeError, match="already iterated"):
        iter(pipe)
    with pytest.raises(RuntimeError, match="already run"):
        pipe.map(add_one)


def test_progress_shows_one_bar_per_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    import tqdm.auto

    bars: list[dict[str, Any]] = []
    counts: dict[int, Any] = {}

    class FakeBar:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs
            self.n = 0
            bars.append(kwargs)
            counts[kwargs["position"]] = self

        def update(self, n: int = 1) -> None:
            self.n += n

        def close(self) -> None:
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", FakeBar)
    pipe = (
        Pipeline(range(12), progress=True)
        .map(square, backend="thread")
        .filter(is_even, backend="serial")
        .batch(2)
    )
    assert pipe.run() == [[0, 4], [16, 36], [64, 100]]
    assert sorted(b["position"] for b in bars) == [0, 1, 2]
    by_position = {b["position"]: b for b in bars}
    assert by_position[0]["total"] == 12  # the source's length is known to stage 1
    assert by_position[0]["desc"].startswith("1 map(square")
    assert by_position[2]["desc"].startswith("3 batch(2)")
    # each bar counted what its stage did: 12 squares, 12 tests, 6 items batched
    assert [counts[i].n for i in range(3)] == [12, 12, 6]


def test_validation_errors_are_clear() -> None:
    pipe = Pipeline(range(3))
    with pytest.raises(TypeError, match="needs a callable"):
        pipe.map(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n >= 1"):
        pipe.batch(0)
    with pytest.raises(TypeError, match="whole number"):
        pipe.batch("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"chunksze=.*valid options: .*chunksize"):
        pipe.map(square, chunksze=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="whole pipeline"):
        pipe.map(square, errors="collect")
    with pytest.raises(ValueError, match="workers"):
        pipe.map(square, workers=0)
    with pytest.raises(TypeError, match="ordered"):
        pipe.map(square, ordered="yes")  # type: ignore[arg-type]
    with pytest.raises(LookupError, match="unknown backend 'bogus'"):
        pipe.map(square, backend="bogus")
    with pytest.raises(TypeError, match="iterable"):
        Pipeline(42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="errors"):
        Pipeline(range(3), errors="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer"):
        Pipeline(range(3), buffer=0)


def test_repr_names_the_stages() -> None:
    pipe = Pipeline([1]).map(square, backend="thread", workers=4).batch(2)
    assert repr(pipe) == "Pipeline(<list>).map(square, backend='thread', workers=4).batch(2)"


def test_pipeline_is_public() -> None:
    assert "Pipeline" in anypool.__all__
    assert anypool.Pipeline is Pipeline
    assert os.path.basename(__file__) == "test_pipeline.py"


# -- tracing: one timeline for every stage ----------------------------------------------------
def test_trace_records_every_stage_on_one_timeline(backend: str, tmp_path: Any) -> None:
    path = tmp_path / "pipe.json"
    pipe = (
        Pipeline(range(30), trace=path)
        .map(add_one, backend="thread", workers=2)
        .map(adapt(backend, square), backend=backend, workers=2)
    )
    assert pipe.run() == [(x + 1) ** 2 for x in range(30)]
    assert path.exists()  # written when the run ended
    t = anypool.Trace.load(path)
    by_fn: dict[str, list[int]] = {}
    for r in t.tasks:
        assert r.outcome == "ok"
        by_fn.setdefault(r.fn, []).append(r.position)
    assert sorted(by_fn["add_one"]) == list(range(30))
    assert sorted(by_fn["square"]) == list(range(30))
    assert {r.backend for r in t.tasks if r.fn == "square"} == {backend}


def test_trace_into_a_trace_object_keeps_the_records_and_writes_nothing(tmp_path: Any) -> None:
    t = anypool.trace()  # in memory; not started: only the pipeline records into it
    pipe = Pipeline(range(10), trace=t).map(add_one, backend="thread", workers=2)
    assert list(pipe) == list(range(1, 11))
    assert sorted(r.position for r in t.tasks) == list(range(10))
    assert list(tmp_path.iterdir()) == []


def test_trace_is_written_when_the_pipeline_fails(tmp_path: Any) -> None:
    path = tmp_path / "failed.json"
    pipe = Pipeline(range(20), trace=path).map(fail_on_7, backend="thread", workers=1)
    with pytest.raises(ValueError, match="seven"):
        pipe.run()
    outcomes = {r.outcome for r in anypool.Trace.load(path).tasks}
    assert "error" in outcomes


def test_trace_with_a_bad_path_fails_when_the_pipeline_is_built() -> None:
    with pytest.raises(ValueError, match=r"\.html|\.json"):
        Pipeline(range(3), trace="run.txt")


def fail_on_7(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x


# -- rate= per stage ---------------------------------------------------------------------------
def test_rate_on_a_stage_paces_that_stage_only() -> None:
    from test_rate import CountingLimiter

    paced = CountingLimiter("500/s")
    pipe = (
        Pipeline(range(15))
        .map(add_one, backend="thread", workers=4)
        .map(square, backend="thread", workers=4, rate=paced)
    )
    assert pipe.run() == [(x + 1) ** 2 for x in range(15)]
    assert len(paced.granted) == 15  # one token per input of the paced stage
    gaps = [b - a for a, b in itertools.pairwise(paced.granted)]
    assert min(gaps) >= 1 / 500 - 1e-9


def test_a_bad_rate_on_a_stage_fails_when_the_pipeline_is_built_or_run() -> None:
    with pytest.raises((ValueError, TypeError), match="rate"):
        Pipeline(range(3)).map(add_one, backend="thread", rate="fast").run()
