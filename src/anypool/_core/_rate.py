"""Rate limits: ``rate="50/s"`` on maps and :class:`RateLimiter` for use inside tasks.

The limiter is a GCRA (generic cell rate algorithm), the token bucket written as one number:
the *theoretical arrival time* ``tat`` of the next token. With an interval ``T = 1/rate`` and a
burst of ``b`` tokens, a caller may start at ``max(now, tat - (b - 1) * T)`` and moves ``tat``
on by ``T``. So over any stretch of time ``w`` at most ``b + w / T`` starts happen, and after
an idle spell at most ``b`` start at once. Clock and sleep are injectable so tests can run
ten seconds of fake time in a millisecond.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([a-zA-Z]+?)s?\s*$")
_FORMS = "'50/s', '300/min', '1000/h' or a number of calls per second (50)"


def parse_rate(rate: object) -> float:
    """Calls per second from ``"50/s"``, ``"300/min"``, ``"1000/h"`` or a number (per second).

    Raises:
        ValueError: a malformed string, an unknown unit or a rate that is not positive.
        TypeError: neither a string nor a number.
    """
    if isinstance(rate, bool) or not isinstance(rate, str | int | float):
        raise TypeError(f"rate must be a string such as {_FORMS}; got {rate!r}")
    if isinstance(rate, str):
        m = _RATE.match(rate)
        if m is None:
            raise ValueError(f"rate={rate!r} is not a rate; write it as {_FORMS}")
        unit = m.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(
                f"rate={rate!r} has an unknown unit {m.group(2)!r}; use /s, /min or /h"
            )
        per_second = float(m.group(1)) / _UNITS[unit]
    else:
        per_second = float(rate)
    if not math.isfinite(per_second) or per_second <= 0:
        raise ValueError(f"rate must be a positive, finite number of calls; got {rate!r}")
    return per_second


class RateLimiter:
    """At most ``rate`` starts per second on average, at most ``burst`` at once.

    Use it inside tasks to pace calls to a service::

        limiter = anypool.RateLimiter("10/s", burst=5)

        def fetch(url):
            with limiter:          # waits for a token
                return requests.get(url)

        async def afetch(url):
            async with limiter:    # waits without blocking the event loop
                ...

    It is thread-safe and works in threads and coroutines of one process. A limiter passed to
    process workers is copied: each worker then has its own budget. For a pool-wide limit use
    ``rate=`` on the map (``pool.map(fn, items, rate="10/s")``), which paces the starts of the
    tasks in the parent. A ``RateLimiter`` is also accepted there, to share one budget among
    several maps or to choose the burst.

    Args:
        rate: ``"50/s"``, ``"300/min"``, ``"1000/h"`` or a number of calls per second.
        burst: how many calls may start at once after an idle spell (default 1: starts are
            evenly spaced, ``1/rate`` seconds apart).
        clock: a monotonic clock in seconds (for tests: a fake clock).
        sleep: how to wait that many seconds in sync code (default ``time.sleep``).
        async_sleep: how to wait in async code (default ``asyncio.sleep``).

    Raises:
        ValueError: a malformed rate, or a burst below 1.

    .. versionadded:: 0.2
    """

    def __init__(
        self,
        rate: str | float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a whole number of calls, 1 or more; got {burst!r}")
        self._per_second = parse_rate(rate)
        self._interval = 1.0 / self._per_second
        self._burst = burst
        self._tau = (burst - 1) * self._interval
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()
        self._tat = -math.inf
        self._text = rate if isinstance(rate, str) else f"{self._per_second:g}/s"

    @property
    def rate(self) -> float:
        """The limit in calls per second."""
        return self._per_second

    @property
    def burst(self) -> int:
        """How many calls may start at once."""
        return self._burst

    def __repr__(self) -> str:
        return f"RateLimiter({self._text!r}, burst={self._burst})"

    def reserve(self) -> float:
        """Take the next token now and return how many seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            self._tat = tat + self._interval
            return max(0.0, tat - self._tau - now)

    def try_acquire(self) -> bool:
        """Take a token if one is free right now; never waits."""
        return self.delay() == 0.0

    def delay(self) -> float:
        """Take a token if one is free (return 0.0), else return the seconds until one is.

        Unlike :meth:`reserve` nothing is taken when the answer is not 0.
        """
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now)
            wait = tat - self._tau - now
            if wait <= 0:
                self._tat = tat + self._interval
                return 0.0
            return wait

    def acquire(self) -> None:
        """Wait (blocking) until a call may start."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)

    async def aacquire(self) -> None:
        """Wait, without blocking the event loop, until a call may start."""
        wait = self.reserve()
        if wait > 0:
            await self._async_sleep(wait)

    def __enter__(self) -> RateLimiter:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> RateLimiter:
        await self.aacquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __reduce__(self) -> tuple[object, ...]:
        # a copy for a worker process: same rate and burst, a fresh budget, the real clock
        return (RateLimiter, (self._text, self._burst))


def make_limiter(rate: object) -> RateLimiter | None:
    """The limiter for a ``rate=`` option: None, a RateLimiter as is, or a new one."""
    if rate is None:
        return None
    if isinstance(rate, RateLimiter):
        return rate
    return RateLimiter(rate)  # type: ignore[arg-type]  # parse_rate checks the type
