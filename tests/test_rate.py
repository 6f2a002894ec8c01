"""Rate limits: RateLimiter on a fake clock, and rate= on the maps."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import anypool
from anypool import RateLimiter
from conftest import adapt


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def limiter(rate: str | float, burst: int = 1) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    lim = RateLimiter(rate, burst, clock=clock, sleep=clock.sleep, async_sleep=clock.asleep)
    return lim, clock


def max_in_window(starts: list[float], window: float) -> int:
    """The most starts in any half-open window ``[t, t + window)``."""
    best, j = 0, 0
    for i, t in enumerate(starts):
        while starts[j] < t - window + 1e-12:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize(("rate", "per_second"), [("50/s", 50), ("600/min", 10), ("7200/h", 2)])
@pytest.mark.parametrize("burst", [1, 5])
def test_measured_rate_is_within_5_percent_over_10_seconds(
    rate: str, per_second: float, burst: int
) -> None:
    lim, clock = limiter(rate, burst)
    starts: list[float] = []
    while clock.now <= 20.0:
        with lim:
            starts.append(clock.now)
    # the sustained rate: 10 s after the first start (the initial burst is bounded below)
    measured = sum(1 for t in starts if 0.0 < t <= 10.0) / 10.0
    assert abs(measured - per_second) <= 0.05 * per_second
    # any 10 s of fake time: at most rate * 10 plus the burst
    assert max_in_window(starts, 10.0) <= per_second * 10 + burst
    # bursts never exceed the burst size; no window of 1/rate holds more than burst starts
    interval = 1 / per_second
    assert max_in_window(starts, interval * 0.999) <= burst
    assert max_in_window(starts, 1e-9) <= burst


def test_a_burst_after_an_idle_spell_is_bounded_by_burst() -> None:
    lim, clock = limiter("10/s", burst=3)
    clock.now = 100.0  # a long idle spell
    starts = []
    for _ in range(6):
        lim.acquire()
        starts.append(clock.now)
    assert starts[:3] == [100.0, 100.0, 100.0]
    assert starts[3:] == pytest.approx([100.1, 100.2, 100.3])
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_async_acquire_waits_with_the_async_sleep() -> None:
    lim, clock = limiter("4/s")

    async def run() -> list[float]:
        out = []
        for _ in range(5):
            async with lim:
                out.append(clock.now)
        await lim.aacquire()
        out.append(clock.now)
        return out

    assert asyncio.run(run()) == pytest.approx([0, 0.25, 0.5, 0.75, 1.0, 1.25])


def test_try_acquire_and_delay_never_wait() -> None:
    lim, clock = limiter("2/s")
    assert lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.delay() == pytest.approx(0.5)
    clock.now = 0.5
    assert lim.delay() == 0.0
    assert clock.sleeps == []


def test_threads_share_one_budget() -> None:
    lim, clock = limiter("100/s", burst=2)
    lock = threading.Lock()
    starts: list[float] = []

    def take() -> None:
        for _ in range(50):
            wait = lim.reserve()
            with lock:
                starts.append(clock.now + wait)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert len(starts) == 200
    assert max_in_window(starts, 0.01 * 0.999) <= 2
    assert starts[-1] == pytest.approx(198 * 0.01)


@pytest.mark.parametrize(
    ("bad", "err", "match"),
    [
        ("fast", ValueError, "not a rate"),
        ("5/fortnight", ValueError, "unknown unit"),
        ("0/s", ValueError, "positive"),
        (-1, ValueError, "positive"),
        (float("inf"), ValueError, "positive"),
        (True, TypeError, "rate must be"),
        ([5], TypeError, "rate must be"),
    ],
)
def test_bad_rates_get_clear_errors(bad: Any, err: type[Exception], match: str) -> None:
    with pytest.raises(err, match=match):
        RateLimiter(bad)
    with pytest.raises(err, match=match):
        anypool.map(abs, [1], backend="serial", rate=bad)


def test_rate_forms_and_burst_validation() -> None:
    assert RateLimiter("50/s").rate == 50
    assert RateLimiter("30 / min").rate == 0.5
    assert RateLimiter("3600/hour").rate == 1
    assert RateLimiter("2.5/sec").rate == 2.5
    assert RateLimiter(20).rate == 20
    assert repr(RateLimiter("5/s", burst=2)) == "RateLimiter('5/s', burst=2)"
    with pytest.raises(ValueError, match="burst"):
        RateLimiter("5/s", burst=0)
    with pytest.raises(ValueError, match="chunksize"):
        anypool.map(abs, [1], backend="serial", rate="5/s", chunksize=4)


# -- rate= on the maps --------------------------------------------------------------------
class CountingLimiter(RateLimiter):
    """Records the time at which each token the engine takes was granted.

    That is the clock reading the limiter itself used (a second reading afterwards could be
    late by however long this thread was descheduled). The engine asks from one thread.
    """

    def __init__(self, rate: str) -> None:
        super().__init__(rate, burst=1, clock=self._tick)
        self.granted: list[float] = []
        self._last = 0.0

    def _tick(self) -> float:
        self._last = time.monotonic()
        return self._last

    def delay(self) -> float:
        wait = super().delay()
        if wait == 0.0:
            self.granted.append(self._last)
        return wait


def test_map_takes_one_token_per_input_and_spaces_the_starts(backend: str) -> None:
    lim = CountingLimiter("400/s")
    with anypool.Pool(backend, workers=4) as pool:
        got = list(pool.imap(adapt(backend, abs), range(-20, 0), rate=lim))
    assert got == list(range(20, 0, -1))
    assert len(lim.granted) == 20  # one token per input
    gaps = [b - a for a, b in zip(lim.granted, lim.granted[1:], strict=False)]
    assert min(gaps) >= 1 / 400 - 1e-9  # no two inputs were released closer than 1/rate


def test_rate_on_every_map_entry_point() -> None:
    assert anypool.map(abs, range(-5, 0), backend="thread", rate="1000/s") == [5, 4, 3, 2, 1]
    assert sorted(anypool.imap_unordered(abs, range(-5, 0), backend="thread", rate=1000)) == [
        1,
        2,
        3,
        4,
        5,
    ]

    async def coro(x: int) -> int:
        return -x

    async def main() -> list[int]:
        return await anypool.amap(coro, range(5), backend="asyncio", rate="1000/s", ordered=False)

    assert sorted(asyncio.run(main())) == [-4, -3, -2, -1, 0]
    with anypool.Pool("thread", workers=2, rate="1000/s") as pool:
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
        assert list(pool.imap(abs, [-1, -2], rate=None)) == [1, 2]


def test_map_rate_with_a_timeout_still_times_out() -> None:
    import threading as th

    gate = th.Event()

    def wait_for_gate(x: int) -> int:
        gate.wait(30)
        return x

    with anypool.Pool("thread", workers=1, rate="1000/s") as pool:
        it = pool.map(wait_for_gate, range(3), timeout=0.05)
        with pytest.raises(TimeoutError):
            list(it)
        gate.set()


def paced(limiter: RateLimiter, x: int) -> tuple[float, int]:
    with limiter:
        return limiter.rate, x


def test_a_limiter_passed_to_process_tasks_arrives_with_its_rate() -> None:
    lim = RateLimiter("1000/s", burst=3)
    with anypool.Pool("process", workers=2) as pool:
        got = list(pool.map(paced, [lim] * 4, range(4)))
    assert got == [(1000.0, i) for i in range(4)]


def test_a_token_is_taken_after_its_input_is_read_so_a_slow_input_cannot_age_it() -> None:
    read = 0

    def source() -> Any:
        nonlocal read
        for i in range(12):
            read += 1  # a slow upstream (a pipeline stage) would block here
            yield i

    class Recording(RateLimiter):
        reads_at_grant: list[int] = []

        def delay(self) -> float:
            wait = super().delay()
            if wait == 0.0:
                self.reads_at_grant.append(read)
            return wait

    lim = Recording("500/s")
    with anypool.Pool("thread", workers=2) as pool:
        assert list(pool.imap(abs, source(), rate=lim)) == list(range(12))
    # the k-th token was taken with k inputs read: each token belongs to an input in hand
    assert lim.reads_at_grant == list(range(1, 13))


def test_a_pool_rate_is_one_budget_for_all_its_maps_and_a_call_can_lift_it() -> None:
    lim = CountingLimiter("2000/s")
    with anypool.Pool("thread", workers=2, rate=lim) as pool:
        assert list(pool.imap(abs, [-1, -2, -3])) == [1, 2, 3]
        assert list(pool.map(abs, [-4, -5])) == [4, 5]
        assert len(lim.granted) == 5
        assert list(pool.imap(abs, [-6, -7], rate=None)) == [6, 7]
        assert len(lim.granted) == 5  # that call was not paced
