"""What cannot be pickled is named the same way on every backend that pickles.

The process backend, Dask and a ``concurrent.futures.ProcessPoolExecutor`` given as the
backend share one pickling module: the error names what was being sent (the function,
argument N of input #M, the result), the object (its type and a short repr) and the fix.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import anypool
from anypool._core import _pickling
from conftest import HAVE_DASK

PICKLING_BACKENDS = ["process", "executor"] + (["dask"] if HAVE_DASK else [])


def identity(x: Any) -> Any:
    return x


def add(x: int, y: Any) -> Any:
    return x


def lock_for_three(x: int) -> Any:
    """Return something that cannot be pickled for input 3."""
    return threading.Lock() if x == 3 else x


@pytest.fixture(params=PICKLING_BACKENDS)
def pickling_backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``backend=`` for a backend that pickles: a name, or an executor made here."""
    if request.param == "dask":
        request.getfixturevalue("dask_cluster")
        yield "dask"
    elif request.param == "executor":
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("forkserver")) as ex:
            yield ex
    else:
        yield request.param


def test_an_unpicklable_argument_inside_a_tuple_is_named_with_its_input(
    pickling_backend: Any,
) -> None:
    lock = threading.Lock()
    inputs: list[Any] = [1, 2, 3, 4, 5, ("data", lock)]
    with (
        anypool.Pool(pickling_backend, workers=1) as pool,
        pytest.raises(anypool.PicklingError) as info,
    ):
        list(pool.map(identity, inputs, chunksize=4))
    msg = str(info.value)
    assert "argument 1 of input #5" in msg  # #5: its place in the whole input, not the chunk
    assert "('data', <unlocked _thread.lock object" in msg
    assert "because of <unlocked _thread.lock object" in msg
    assert "(type _thread.lock)" in msg
    assert "pool.Lock()" in msg
    assert "backend='thread'" in msg


def test_the_second_argument_of_an_input_is_numbered(pickling_backend: Any) -> None:
    with (
        anypool.Pool(pickling_backend, workers=1) as pool,
        pytest.raises(anypool.PicklingError, match=r"argument 2 of input #1 .*generator"),
    ):
        list(pool.map(add, [1, 2], [2, (i for i in range(3))]))


def test_an_unpicklable_function_is_named_with_the_fix(pickling_backend: Any) -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    with (
        anypool.Pool(pickling_backend, workers=1) as pool,
        pytest.raises(anypool.PicklingError) as info,
    ):
        list(pool.map(uses_lock, [1, 2]))
    msg = str(info.value)
    assert (
        "cannot send the function test_pickling.test_an_unpicklable_function_is_named_with_"
        "the_fix.<locals>.uses_lock (function)" in msg
    )
    assert "Use a module-level function" in msg


def test_a_submitted_keyword_argument_is_named(pickling_backend: Any) -> None:
    with (
        anypool.Pool(pickling_backend, workers=1) as pool,
        pytest.raises(anypool.PicklingError, match=r"the keyword argument y= <unlocked"),
    ):
        pool.submit(add, 1, y=threading.Lock())


def test_an_unpicklable_result_names_its_input_and_the_others_arrive(
    pickling_backend: Any,
) -> None:
    with anypool.Pool(pickling_backend, workers=1) as pool:
        results = list(pool.imap(lock_for_three, range(6), chunksize=6, errors="collect"))
        assert [r.value for r in results if r.ok] == [0, 1, 2, 4, 5]
        (bad,) = [r for r in results if not r.ok]
        assert bad.index == 3
        assert isinstance(bad.error, anypool.PicklingError)
        assert "the result of lock_for_three() <unlocked _thread.lock" in str(bad.error)
        assert "back from the worker process" in str(bad.error)
        assert "Return plain data" in str(bad.error)
        with pytest.raises(anypool.PicklingError) as info:
            list(pool.map(lock_for_three, range(6), chunksize=6))
        assert "anypool: raised by the task for input #3: 3" in info.value.__notes__


def test_the_message_shortens_a_long_repr() -> None:
    big = ["x" * 1000, threading.Lock()]
    err = _pickling.cannot_send(big, "argument 1", "to a worker process", TypeError("no"))
    assert len(str(err)) < 700
    assert "because of <unlocked _thread.lock object" in str(err)
    assert "(type list)" in str(err)


def test_sharing_an_unpicklable_object_names_it_and_the_fix() -> None:
    with anypool.Pool("process", 1) as pool:
        with pytest.raises(_pickling.PicklingError, match=r"pool\.share\(\).*_thread\.lock.*Lock"):
            pool.share(threading.Lock())
        shared = pool.share({"inc": lambda x: x + 1})  # cloudpickle's, when pickle cannot
        assert list(pool.map(lambda d, x: d["inc"](x), [shared] * 2, [1, 2])) == [2, 3]
