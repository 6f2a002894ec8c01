"""The map family on every backend: order, laziness, zipping, errors, collect, progress."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

import anypool
from conftest import SHORT_TIMEOUT, adapt


def square(x: int) -> int:
    return x * x


def add(x: int, y: int) -> int:
    return x + y


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x


class TestMap:
    def test_results_in_input_order(self, backend: str) -> None:
        assert anypool.map(adapt(backend, square), range(300), backend=backend) == [
            x * x for x in range(300)
        ]

    def test_several_iterables_zip_like_builtin_map(self, backend: str) -> None:
        out = anypool.map(adapt(backend, add), [1, 2, 3, 4], (10, 20, 30), backend=backend)
        assert out == [11, 22, 33]

    def test_empty_input(self, backend: str) -> None:
        assert anypool.map(adapt(backend, square), [], backend=backend) == []

    def test_generator_input(self, backend: str) -> None:
        gen = (i for i in range(50))
        assert anypool.map(adapt(backend, square), gen, backend=backend) == [
            i * i for i in range(50)
        ]

    def test_imap_is_ordered_and_lazy(self, backend: str) -> None:
        seen = [0]

        def source() -> Iterator[int]:
            for i in itertools.count():
                seen[0] = i
                yield i

        it = anypool.imap(adapt(backend, square), source(), backend=backend)
        first = list(itertools.islice(it, 20))
        assert first == [i * i for i in range(20)]
        # the endless input was read only a bounded distance ahead of the consumer
        assert seen[0] < 70_000
        it.close()  # type: ignore[attr-defined]

    def test_imap_unordered_gives_every_result_once(self, backend: str) -> None:
        out = list(anypool.imap_unordered(adapt(backend, square), range(200), backend=backend))
        assert sorted(out) == [i * i for i in range(200)]

    def test_amap_from_async_code(self, backend: str) -> None:
        async def main() -> list[int]:
            return await anypool.amap(adapt(backend, square), range(40), backend=backend)

        assert asyncio.run(main()) == [i * i for i in range(40)]

    def test_explicit_chunksize(self, backend: str) -> None:
        out = anypool.map(adapt(backend, square), range(100), backend=backend, chunksize=7)
        assert out == [i * i for i in range(100)]


class TestErrors:
    def test_raise_keeps_type_and_message_and_shows_the_worker_traceback(
        self, backend: str
    ) -> None:
        with pytest.raises(ValueError, match="bad input 3") as info:
            anypool.map(adapt(backend, fail_on_three), range(10), backend=backend)
        text = "".join(traceback.format_exception(info.value))
        assert "fail_on_three" in text  # the worker's frame is shown
        assert any("input #3" in n for n in getattr(info.value, "__notes__", []))

    def test_first_error_in_input_order_is_raised(self, backend: str) -> None:
        def fail_from_five(x: int) -> int:
            if x >= 5:
                raise KeyError(x)
            return x

        fn = fail_from_five
        if backend == "process":
            pytest.skip("closure: covered by the module-level variant")
        with pytest.raises(KeyError) as info:
            anypool.map(adapt(backend, fn), range(40), backend=backend, chunksize=1)
        assert info.value.args == (5,)

    def test_collect_gives_results(self, backend: str) -> None:
        out = anypool.map(
            adapt(backend, fail_on_three), range(6), backend=backend, errors="collect"
        )
        assert [r.ok for r in out] == [True, True, True, False, True, True]
        assert [r.index for r in out] == list(range(6))
        assert out[2].unwrap() == 2
        assert isinstance(out[3].error, ValueError)
        with pytest.raises(ValueError, match="bad input 3"):
            out[3].unwrap()

    def test_errors_value_is_checked(self, backend: str) -> None:
        with pytest.raises(ValueError, match="'raise' or 'collect'"):
            anypool.map(adapt(backend, square), [1], backend=backend, errors="ignore")  # type: ignore[arg-type]

    def test_input_iterable_that_raises(self, backend: str) -> None:
        def source() -> Iterator[int]:
            yield 1
            yield 2
            raise OSError("the input broke")

        with pytest.raises(OSError, match="the input broke"):
            anypool.map(adapt(backend, square), source(), backend=backend)


class TestRetries:
    def test_retries_then_succeeds(self, backend: str) -> None:
        def flaky(x: int) -> int:
            st = anypool.current_worker().state
            st[x] = st.get(x, 0) + 1
            if st[x] < 3:
                raise ConnectionError("try again")
            return x

        if backend == "process":
            fn = flaky_module_level
        else:
            fn = flaky
        out = anypool.map(
            adapt(backend, fn),
            range(4),
            backend=backend,
            workers=1,
            retries=2,
            retry_on=ConnectionError,
            chunksize=1,
        )
        assert out == [0, 1, 2, 3]

    def test_final_error_says_how_many_attempts(self, backend: str) -> None:
        with pytest.raises(ValueError, match="always 1") as info:
            anypool.map(
                adapt(backend, always_fails), [1], backend=backend, retries=2, retry_on=ValueError
            )
        assert any("3 attempts" in n for n in info.value.__notes__)

    def test_other_errors_are_not_retried(self, backend: str) -> None:
        with pytest.raises(ValueError, match="always 1") as info:
            anypool.map(
                adapt(backend, always_fails), [1], backend=backend, retries=2, retry_on=KeyError
            )
        assert not any("attempts" in n for n in getattr(info.value, "__notes__", []))


def flaky_module_level(x: int) -> int:
    st = anypool.current_worker().state
    st[x] = st.get(x, 0) + 1
    if st[x] < 3:
        raise ConnectionError("try again")
    return x


def always_fails(x: int) -> int:
    raise ValueError(f"always {x}")


def test_progress_counts_finished_tasks(backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = anypool.map(adapt(backend, square), range(25), backend=backend, progress=True)
    assert out == [i * i for i in range(25)]
    err = capsys.readouterr().err
    assert "25/25" in err


def test_coroutine_function_on_thread_and_process_backends_is_awaited(backend: str) -> None:
    if backend == "asyncio":
        pytest.skip("the asyncio backend runs coroutines natively")
    out = anypool.map(async_double, range(5), backend=backend)
    assert out == [0, 2, 4, 6, 8]


async def async_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def interrupt_on_three(x: int) -> int:
    if x == 3:
        raise KeyboardInterrupt("raised by the task")
    return x


def test_keyboard_interrupt_raised_by_a_task_reaches_the_caller_as_itself(backend: str) -> None:
    # on the process backend it used to kill the worker and come back as WorkerCrashed
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt, match="raised by the task"):
        anypool.map(adapt(backend, interrupt_on_three), range(6), backend=backend, workers=2)
    # an interrupt stops the pool without waiting (as Ctrl-C does); its threads end by
    # themselves right after
    for t in set(threading.enumerate()) - before:
        t.join(timeout=SHORT_TIMEOUT)
        assert not t.is_alive(), t


# -- retries= covers task_timeout too ------------------------------------------------------
RELEASE = threading.Event()  # frees abandoned thread tasks at the end of a test


def hang_the_first_time(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        RELEASE.wait(SHORT_TIMEOUT)  # "hangs" until the task times out
    return "done"


SEEN: set[str] = set()  # the asyncio tasks run in this process: no marker files needed


async def ahang_the_first_time(marker: str) -> str:
    if marker not in SEEN:
        SEEN.add(marker)
        await asyncio.Event().wait()  # hangs until the timeout cancels it
    return "done"


@pytest.mark.parametrize("backend", ["thread", "process", "asyncio"])
@pytest.mark.parametrize("ordered", [True, False])
def test_a_timed_out_task_is_retried_when_retries_allow(
    backend: str, ordered: bool, tmp_path: Any
) -> None:
    fn = ahang_the_first_time if backend == "asyncio" else hang_the_first_time
    markers = [str(tmp_path / f"m{i}") for i in range(4)]
    # a fresh process worker imports this test module (and pytest) before it runs the task:
    # that must fit in the timeout on a loaded machine
    timeout = 5.0 if backend == "process" else 0.5
    RELEASE.clear()
    try:
        with anypool.Pool(backend, workers=4) as pool:
            imap = pool.imap if ordered else pool.imap_unordered
            out = list(imap(fn, markers, task_timeout=timeout, retries=1))
            assert out == ["done"] * 4  # every input timed out once, then succeeded
            # without retries the timeout is the result, as before
            fresh = [str(tmp_path / "again")]
            with pytest.raises(anypool.TaskTimeoutError):
                list(pool.imap(fn, fresh, task_timeout=timeout))
            # retry_on that excludes timeouts keeps them failures
            other = [str(tmp_path / "other")]
            with pytest.raises(anypool.TaskTimeoutError):
                list(pool.imap(fn, other, task_timeout=timeout, retries=2, retry_on=ValueError))
    finally:
        RELEASE.set()
        for t in threading.enumerate():
            if t.name.startswith("anypool-thread"):
                t.join(SHORT_TIMEOUT)


class _ChunkedBackend:
    """What the Chunker reads of a backend: a process-like one, 2 workers."""

    def __init__(self, longest: float | None) -> None:
        self.target_chunk_seconds = 0.02
        self.max_chunk_seconds = longest
        self.fixed_batch = None

    def effective_workers(self) -> int:
        return 2


def _chunk_sizes(longest: float | None, total: int | None, per_item: float) -> list[int]:
    """The sizes a Chunker hands out over a whole input once it knows the time per item."""
    from anypool._core._engine import Chunker
    from anypool._core._tasks import ChunkResult

    chunker = Chunker(None, _ChunkedBackend(longest), total)  # type: ignore[arg-type]
    chunker.observe(ChunkResult([None], None, per_item, per_item), 1)
    sizes: list[int] = []
    end = total or 4000
    while chunker.taken < end:  # the last chunk holds what is left, as the input runs out
        sizes.append(min(chunker.next_size(), end - chunker.taken))
        chunker.took(sizes[-1])
    return sizes


def test_long_maps_grow_their_chunks_then_shrink_them_to_the_target() -> None:
    # 2,000 items of 1 ms on 2 workers: 2 s of work
    guided = _chunk_sizes(0.2, 2000, 0.001)
    fixed = _chunk_sizes(None, 2000, 0.001)
    assert fixed == [20] * 100  # every chunk holds target_chunk_seconds
    top = guided.index(max(guided))
    assert guided[: top + 1] == [20, 40, 80, 160, 200]  # doubling up to max_chunk_seconds
    assert guided[top:] == sorted(guided[top:], reverse=True)  # then a share of what is left
    assert max(guided[-3:]) == 20  # down to the target: the workers end together
    assert sum(guided) == 2000
    assert len(guided) < len(fixed) / 2  # far fewer round trips through the parent
    # the cap still holds: never more than a quarter of the input per worker
    assert max(_chunk_sizes(0.2, 2000, 1e-6)) == 250
    # an input of unknown length keeps the target throughout
    assert set(_chunk_sizes(0.2, None, 0.001)) == {20}
