"""Pool create/use/close cycles leave nothing behind: threads, processes, descriptors, /dev/shm.

The full 1,000 cycles per backend run in the benchmark (``benchmarks/run.py --only f``); the
tests run fewer, enough to show a per-cycle leak of any of these.
"""

from __future__ import annotations

import faultkit as fk
import pytest

import anypool
from conftest import adapt

CYCLES = {"serial": 1000, "thread": 1000, "process": 200, "asyncio": 1000, "dask": 20}


def test_create_use_close_cycles_leave_nothing_behind(backend: str) -> None:
    fn = adapt(backend, fk.identity)

    def cycle() -> None:
        with anypool.Pool(backend, workers=2) as pool:
            assert list(pool.map(fn, range(4), chunksize=1)) == [0, 1, 2, 3]

    cycle()  # the first cycle may start shared helpers (the fork server) once per program
    before = fk.resources()
    for _ in range(CYCLES[backend]):
        cycle()
    after = fk.resources()
    if backend == "dask" and after["fds"] < before["fds"]:
        # Dask closes its comms to the session's cluster lazily, so the count may fall;
        # a leak shows as growth
        after["fds"] = before["fds"]
    assert fk.same_resources(before, after), fk.resource_diff(before, after)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_cycles_with_crashes_and_errors_leave_nothing_behind(backend: str) -> None:
    def cycle() -> None:
        with anypool.Pool(backend, workers=2) as pool:
            out = list(pool.imap(fk.faulty, range(8), chunksize=1, errors="collect"))
            assert [r.ok for r in out] == [fk.faulty_ok(i, backend) for i in range(8)]

    cycle()
    before = fk.resources()
    for _ in range(50):
        cycle()
    after = fk.resources()
    assert fk.same_resources(before, after), fk.resource_diff(before, after)
