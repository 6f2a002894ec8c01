"""Tools for testing backends: :func:`check_backend` proves that a backend behaves as anypool's do.

A third-party backend (a :class:`anypool.abc.Backend` registered with
:func:`anypool.register_backend`, or any ``concurrent.futures.Executor``) can show that
anypool's policy holds on it, in its own test suite::

    from anypool.testing import check_backend

    def test_my_backend():
        check_backend("mybackend")             # a registered name
        check_backend(MyExecutor(4))           # or an executor

The checks use only the public API. The first behaviour that does not hold raises
:class:`AssertionError` naming the check and what was seen. Every check runs under a deadline,
so a backend that hangs fails instead of wedging the test run.

.. versionadded:: 0.3
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from ._core._pool import Pool
from ._core._registry import get_backend
from ._core._tasks import current_worker

__all__ = ["CHECKS", "check_backend"]


# -- the task functions: module-level, so every backend can pickle them by reference -----------
def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


def _fail_once(marker_dir: str, x: int) -> int:
    """Fail the first attempt at input 2 (a marker file remembers it across workers)."""
    marker = os.path.join(marker_dir, f"failed-{x}")
    if x == 2 and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        raise _Flaky("first attempt fails")
    return x


class _Flaky(Exception):
    """Raised by the first attempt of a task that succeeds when retried."""


async def _asquare(x: int) -> int:
    return x * x


async def _afail_on_three(x: int) -> int:
    return _fail_on_three(x)


async def _afail_once(marker_dir: str, x: int) -> int:
    return _fail_once(marker_dir, x)


class _Kit:
    """The task functions in the shape the backend runs (``async def`` for asyncio)."""

    def __init__(self, coroutines: bool) -> None:
        self.square: Callable[..., Any] = _asquare if coroutines else _square
        self.fail_on_three: Callable[..., Any] = _afail_on_three if coroutines else _fail_on_three
        self.fail_once: Callable[..., Any] = _afail_once if coroutines else _fail_once
        self.coroutines = coroutines


# -- the checks ---------------------------------------------------------------------------
def _check_map_order(pool: Pool, kit: _Kit) -> None:
    got = list(pool.map(kit.square, range(100)))
    assert list(got) == [x * x for x in range(100)], f"map gave {list(got)[:10]}..."


def _check_chunked_order(pool: Pool, kit: _Kit) -> None:
    got = list(pool.imap(kit.square, range(50), chunksize=7))
    assert got == [x * x for x in range(50)], f"imap(chunksize=7) gave {got[:10]}..."


def _check_unordered(pool: Pool, kit: _Kit) -> None:
    got = sorted(pool.imap_unordered(kit.square, range(50)))
    assert got == [x * x for x in range(50)], f"imap_unordered gave {got[:10]}..."


def _check_lazy(pool: Pool, kit: _Kit) -> None:
    read = itertools.count()

    def endless() -> Iterator[int]:
        for i in itertools.count():
            next(read)
            yield i

    it = pool.imap(kit.square, endless(), chunksize=1)
    try:
        assert next(it) == 0, "the first result of imap was not the first input's"
        ahead = next(read)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    assert ahead < 10_000, f"imap read {ahead} inputs to give one result: it is not lazy"


def _check_error_raised(pool: Pool, kit: _Kit) -> None:
    try:
        list(pool.map(kit.fail_on_three, range(6)))
    except ValueError as exc:
        message = str(exc)
    else:
        raise AssertionError("a task's ValueError was not raised in the caller")
    if "bad input 3" not in message:
        raise AssertionError(f"the task's error lost its message: {message!r}")


def _check_errors_collected(pool: Pool, kit: _Kit) -> None:
    got = list(pool.imap(kit.fail_on_three, range(6), errors="collect"))
    oks = [r.ok for r in got]
    assert oks == [True, True, True, False, True, True], f"errors='collect' gave {oks}"
    assert isinstance(got[3].error, ValueError), f"the collected error is {got[3].error!r}"
    assert got[4].value == 4, f"the collected value is {got[4].value!r}"


def _check_retries(pool: Pool, kit: _Kit) -> None:
    with tempfile.TemporaryDirectory() as d:
        import functools

        fn = functools.partial(kit.fail_once, d)
        got = list(pool.imap(fn, range(4), retries=1, retry_on=_Flaky))
        assert list(got) == [0, 1, 2, 3], f"retries=1 gave {got}"
        assert os.path.exists(os.path.join(d, "failed-2")), "the failing attempt never ran"


def _check_submit(pool: Pool, kit: _Kit) -> None:
    fut = pool.submit(kit.square, 7)
    assert isinstance(fut, cf.Future), f"submit returned {type(fut).__name__}, not a Future"
    assert fut.result(timeout=60) == 49, "submit's future has the wrong result"
    bad = pool.submit(kit.fail_on_three, 3)
    exc = bad.exception(timeout=60)
    assert isinstance(exc, ValueError), f"submit's future holds {exc!r}, not the ValueError"


def _check_shutdown(make: Callable[[], Pool], kit: _Kit) -> None:
    pool = make()
    futs = [pool.submit(kit.square, i) for i in range(20)]
    pool.shutdown(wait=True)
    assert all(f.done() for f in futs), "shutdown(wait=True) returned with work unfinished"
    assert [f.result() for f in futs] == [i * i for i in range(20)], "queued work was lost"
    try:
        pool.submit(kit.square, 1)
    except RuntimeError:
        pass
    else:
        raise AssertionError("a pool that was shut down accepted new work")


def _check_coroutines(pool: Pool, kit: _Kit) -> None:
    got = list(pool.map(_asquare, range(5)))
    assert list(got) == [0, 1, 4, 9, 16], f"a coroutine function gave {got}"


def _count_broadcast() -> tuple[int, int]:
    state = current_worker().state
    state["anypool_check_broadcast"] = state.get("anypool_check_broadcast", 0) + 1
    return current_worker().id, state["anypool_check_broadcast"]


def _check_broadcast(pool: Pool, kit: _Kit) -> None:
    """Optional: a backend whose ``broadcast`` raises NotImplementedError passes."""
    try:
        got = pool.broadcast(_count_broadcast)
    except NotImplementedError:
        return
    assert isinstance(got, dict), f"broadcast returned {got!r}, not {{worker id: result}}"
    assert got, "broadcast reached no worker"
    for wid, (ran_on, calls) in got.items():
        assert wid == ran_on, f"broadcast's entry {wid} ran on worker {ran_on}"
        assert calls == 1, f"broadcast ran {calls} times on worker {wid}, not once"


#: every check by name, in the order they run; ``check_backend(skip=...)`` leaves some out
CHECKS: tuple[str, ...] = (
    "map_order",
    "chunked_order",
    "unordered",
    "lazy",
    "error_raised",
    "errors_collected",
    "retries",
    "submit",
    "coroutines",
    "broadcast",
    "shutdown",
)

_ON_POOL: dict[str, Callable[[Pool, _Kit], None]] = {
    "map_order": _check_map_order,
    "chunked_order": _check_chunked_order,
    "unordered": _check_unordered,
    "lazy": _check_lazy,
    "error_raised": _check_error_raised,
    "errors_collected": _check_errors_collected,
    "retries": _check_retries,
    "submit": _check_submit,
    "coroutines": _check_coroutines,
    "broadcast": _check_broadcast,
}


def check_backend(
    backend: str | cf.Executor,
    *,
    workers: int = 2,
    skip: tuple[str, ...] = (),
    timeout: float = 120.0,
    **options: Any,
) -> None:
    """Run anypool's shared behaviour checks on ``backend``; raise on the first that fails.

    Args:
        backend: a backend name (built in or registered) or a ``concurrent.futures.Executor``.
        workers: the pool's workers.
        skip: names from :data:`CHECKS` to leave out (``"retries"`` needs the workers to see
            this machine's temporary directory).
        timeout: seconds the whole run may take; past it the run fails with
            :class:`AssertionError` instead of hanging.
        **options: passed to :class:`anypool.Pool` (backend options such as ``address=``).

    Raises:
        AssertionError: a behaviour does not hold; the message names the check.
        ValueError: ``skip`` names a check that does not exist.

    .. versionadded:: 0.3
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown check(s) {unknown}; the checks are: {', '.join(CHECKS)}")
    coroutines = isinstance(backend, str) and get_backend(backend).runs_coroutines
    kit = _Kit(coroutines)
    name = backend if isinstance(backend, str) else type(backend).__name__

    def make() -> Pool:
        return Pool(backend, workers, **options)

    def run_all() -> None:
        with make() as pool:
            for check in CHECKS:
                if check in skip or check == "shutdown":
                    continue
                if check == "coroutines" and kit.coroutines:
                    continue  # the whole run is coroutines already
                _run_one(name, check, lambda c=check: _ON_POOL[c](pool, kit))  # type: ignore[misc]
        if "shutdown" not in skip:
            _run_one(name, "shutdown", lambda: _check_shutdown(make, kit))

    # a deadline: the checks run in a helper thread, so a hang fails here instead of wedging
    runner = cf.ThreadPoolExecutor(1, thread_name_prefix="anypool-check-backend")
    hung = False
    try:
        runner.submit(run_all).result(timeout=timeout)
    except cf.TimeoutError:
        hung = True
        raise AssertionError(
            f"backend {name}: the checks did not finish within {timeout} s (a hang?)"
        ) from None
    finally:
        runner.shutdown(wait=not hung)


def _run_one(name: str, check: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except AssertionError as exc:
        raise AssertionError(f"backend {name}: check {check!r} failed: {exc}") from exc
    except Exception as exc:
        raise AssertionError(
            f"backend {name}: check {check!r} raised {type(exc).__name__}: {exc}"
        ) from exc
