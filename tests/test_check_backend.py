"""anypool.testing.check_backend: our backends pass; a broken one fails and says where."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import threading
from collections.abc import Callable
from typing import Any

import pytest

from anypool.testing import CHECKS, check_backend


def test_our_backends_pass(backend: str) -> None:
    check_backend(backend)


def test_auto_passes() -> None:
    check_backend("auto")


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_standard_executors_pass(kind: str) -> None:
    ex: cf.Executor
    if kind == "thread":
        ex = cf.ThreadPoolExecutor(2)
    else:
        ex = cf.ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver"))
    with ex:
        check_backend(ex)


class _SwallowsErrors(cf.ThreadPoolExecutor):
    """A broken engine: a task's exception comes back as the result None."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        def safe() -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception:
                return None

        return super().submit(safe)


def test_a_broken_engine_fails_naming_the_check() -> None:
    with (
        _SwallowsErrors(2) as ex,
        pytest.raises(AssertionError, match="check 'submit' failed: submit's future holds None"),
    ):
        check_backend(ex)


class _NeverFinishes(cf.Executor):
    """A broken engine whose futures never complete (until the test lets them go)."""

    def __init__(self) -> None:
        self.futures: list[cf.Future[Any]] = []
        self.lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        with self.lock:
            self.futures.append(fut)
        return fut

    def release(self) -> None:
        with self.lock:
            for f in self.futures:
                if not f.done():
                    f.set_exception(RuntimeError("released by the test"))


def test_a_hang_fails_within_the_deadline() -> None:
    ex = _NeverFinishes()
    try:
        with pytest.raises(AssertionError, match=r"did not finish within 1\.0 s"):
            check_backend(ex, timeout=1.0)
    finally:
        ex.release()
        for t in threading.enumerate():
            if t.name.startswith("anypool-check-backend"):
                t.join(timeout=30)


def test_skip_names_real_checks() -> None:
    assert "retries" in CHECKS
    with pytest.raises(ValueError, match="unknown check"):
        check_backend("serial", skip=("nope",))
    check_backend("serial", skip=("retries", "lazy"))
