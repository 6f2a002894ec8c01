"""Libraries that take an Executor: dask's local schedulers on an anypool pool (issue 11,
item 5). ``dask.compute(..., scheduler="processes" | "threads", pool=pool)`` reads the
Executor's conventional attributes (``_max_workers``) and submits its tasks to the pool."""

from __future__ import annotations

import os

import pytest

import anypool

dask = pytest.importorskip("dask")
db = pytest.importorskip("dask.bag")


def square(x: int) -> int:
    return x * x


def where(_: int) -> tuple[int, str]:
    """The process and the anypool backend this task runs on (raises outside anypool)."""
    return os.getpid(), anypool.current_worker().backend


@pytest.mark.parametrize(
    ("backend", "scheduler"), [("process", "processes"), ("thread", "threads")]
)
def test_dask_local_scheduler_runs_on_an_anypool_pool(backend: str, scheduler: str) -> None:
    with anypool.Pool(backend, workers=2) as pool:
        assert pool._max_workers == 2
        bag = db.from_sequence(range(20), npartitions=4)
        assert bag.map(square).compute(scheduler=scheduler, pool=pool) == [x * x for x in range(20)]
        total = dask.delayed(sum)([dask.delayed(square)(i) for i in range(10)])
        assert dask.compute(total, scheduler=scheduler, pool=pool) == (285,)
        # the tasks ran on the pool's workers, not in dask's own pool or in the caller
        seen = bag.map(where).compute(scheduler=scheduler, pool=pool)
    assert {kind for _, kind in seen} == {backend}
    assert (os.getpid() in {pid for pid, _ in seen}) == (backend == "thread")


def test_max_workers_of_every_kind_of_pool() -> None:
    with anypool.Pool("thread", max_workers=3) as pool:
        assert pool._max_workers == 3
    with anypool.Pool("serial") as pool:
        assert pool._max_workers == 1
    with anypool.Pool(workers=5) as pool:  # auto, before it chose: what submit() would get
        assert pool._max_workers == 5
    with anypool.Pool("thread") as threads:
        default = threads.workers
    with anypool.Pool() as pool:
        assert pool._max_workers == default
        assert pool.submit(square, 3).result(30) == 9  # auto sent it to threads
        assert pool._max_workers == pool.workers == default
