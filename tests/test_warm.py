"""Process workers kept warm between pools and one-shot calls (anypool._backends._warm)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil
import pytest

import anypool
from anypool._backends import _warm


def pid_of(_: object = None) -> int:
    return os.getpid()


def pids_of(pool: anypool.Pool) -> set[int]:
    """The pids of all the pool's workers (a broadcast starts every one and waits for it)."""
    pids = set(pool.broadcast(pid_of).values())
    assert set(pool.map(pid_of, range(8), chunksize=1)) <= pids
    return pids


def import_probe(name: str) -> int:
    __import__(name)
    return os.getpid()


def test_imports_are_not_repeated_across_one_shot_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "imports.log"
    name = f"warm_probe_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(
        f"import os\nwith open({str(log)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pids: list[set[int]] = []
    for _ in range(4):
        pids.append(set(anypool.map(import_probe, [name] * 6, backend="process", workers=2)))
    imported_in = log.read_text().split()
    # four calls, two workers: each worker imported the module once, and every call ran on
    # those same (kept-warm) processes
    assert len(imported_in) == len(set(imported_in)) <= 2
    assert set().union(*pids) == {int(p) for p in imported_in}
    monkeypatch.delitem(sys.modules, name, raising=False)


def remember(_: object) -> tuple[int, int, bool]:
    w = anypool.current_worker()
    assert w is not None
    seen = "mark" in w.state
    w.state["mark"] = True
    return os.getpid(), w.id, seen


def test_an_adopted_worker_starts_with_empty_state_and_its_new_pools_id() -> None:
    with anypool.Pool("process", workers=1) as pool:
        first = list(pool.map(remember, range(3), chunksize=1))
    assert [seen for *_, seen in first] == [False, True, True]
    with anypool.Pool("process", workers=1) as pool:
        ((pid, wid, seen),) = pool.map(remember, [0], chunksize=1)
    assert pid == first[0][0]  # the same process, kept warm
    assert seen is False  # current_worker().state did not carry over
    assert wid == 0  # numbered as the new pool's first worker


def with_init() -> None:
    pass


def test_pools_with_other_settings_never_get_another_pools_warm_worker() -> None:
    with anypool.Pool("process", workers=2) as pool:
        plain = pids_of(pool)
    assert _warm.count() == 2
    with anypool.Pool("process", workers=2, initializer=with_init) as pool:
        assert pids_of(pool).isdisjoint(plain)
    with anypool.Pool("process", workers=2, max_tasks_per_worker=50) as pool:
        assert pids_of(pool).isdisjoint(plain)
    with anypool.Pool("process", workers=2, start_method="spawn") as pool:
        assert pids_of(pool).isdisjoint(plain)
    # the spawn pool kept its own two (for the next spawn pool); the others kept none
    assert _warm.count() == 4
    with anypool.Pool("process", workers=2) as pool:
        assert pids_of(pool) <= plain  # same settings: the warm ones


def crash(x: int) -> int:
    if x == 0:
        os._exit(3)
    return os.getpid()


def test_a_crashed_worker_is_not_kept_and_a_terminated_pool_keeps_none() -> None:
    with anypool.Pool("process", workers=1) as pool:
        before = pool.submit(pid_of).result(timeout=30)
        with pytest.raises(anypool.WorkerCrashed):
            pool.submit(crash, 0).result(timeout=30)
        after = pool.submit(pid_of).result(timeout=30)
    assert after != before
    with anypool.Pool("process", workers=1) as pool:
        assert pool.submit(pid_of).result(timeout=30) == after  # only the live one was kept
    anypool.shutdown_warm_workers()
    pool = anypool.Pool("process", workers=2)
    pids_of(pool)
    pool.terminate()
    assert _warm.count() == 0
    pool = anypool.Pool("process", workers=2)
    pids_of(pool)
    pool.shutdown(cancel_futures=True)
    assert _warm.count() == 0


def test_shutdown_warm_workers_stops_them() -> None:
    with anypool.Pool("process", workers=2) as pool:
        pids = pids_of(pool)
    assert _warm.count() == 2
    assert anypool.shutdown_warm_workers() == 2
    assert _warm.count() == 0
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_kept_worker_ends_itself_when_unused_and_no_thread_watches_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No thread of the program stops the kept workers (the program stays single-threaded
    between pools, so a later pool can still fork from it): each ends itself once unused for
    IDLE_SECONDS, and the program reaps it the next time it looks at the kept workers."""
    import threading
    from multiprocessing.connection import wait

    threads = set(threading.enumerate())
    monkeypatch.setattr(_warm, "IDLE_SECONDS", 1.0)  # told to each worker as it is parked
    with anypool.Pool("process", workers=2) as pool:
        pids_of(pool)
        procs = [w.proc for w in pool._backend._workers.values()]  # type: ignore[attr-defined]
    assert _warm.count() == 2
    assert set(threading.enumerate()) <= threads  # the pool's own threads are gone too
    # each ends itself (its sentinel fires) with nothing asking it to
    ended = wait([p.sentinel for p in procs], timeout=30)
    while len(ended) < len(procs):
        ended = wait([p.sentinel for p in procs], timeout=30)
        assert ended, "a kept worker did not end itself after IDLE_SECONDS"
    assert [p.exitcode for p in procs] == [0, 0]  # they ended themselves, cleanly
    pids = [p.pid for p in procs]
    assert _warm.count() == 0  # and the program let go of them as it looked
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_a_worker_about_to_end_itself_is_not_handed_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pool never adopts a kept worker within _spare() of ending itself (its message could
    arrive after the worker stopped waiting): it starts new ones, and the old are reaped."""
    monkeypatch.setattr(_warm, "IDLE_SECONDS", 600.0)
    with anypool.Pool("process", workers=2) as pool:
        old = pids_of(pool)
    assert _warm.count() == 2
    # as if they had been parked IDLE_SECONDS - _spare() / 2 ago: they end themselves soon
    import time

    aged = time.monotonic() - _warm.IDLE_SECONDS + _warm._spare() / 2
    for parked in _warm._parked.values():
        for i, (proc, conn, _, starting, extra) in enumerate(parked):
            parked[i] = (proc, conn, aged, starting, extra)
    with anypool.Pool("process", workers=2) as pool:
        new = pids_of(pool)
    assert not old & new
    for pid in old:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
