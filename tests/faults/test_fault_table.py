"""A crash, a hard exit or an error at every step of a task's trip on the process backend.

Each case ends in a clear error (never a hang: every wait has a deadline), only the faulty
task fails, and the pool stays usable. Each case runs twice: through ``submit`` (one call,
one task) and through ``map`` with good neighbours (the chunk path, ``errors="collect"``).
"""

from __future__ import annotations

import concurrent.futures as cf
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faultkit as fk
import pytest

import anypool
from conftest import SHORT_TIMEOUT


@dataclass(frozen=True)
class Case:
    id: str
    fn: Callable[..., Any]
    arg: Callable[[], Any]  # builds the argument in the parent
    error: type[BaseException]
    match: str  # a regex the error's text must contain
    at_submit: bool = False  # the parent rejects it before it is sent


CASES = [
    # -- sending the arguments: pickled in the parent ---------------------------------------
    Case(
        "args: pickling raises (parent)",
        fk.identity,
        fk.DumpRaises,
        anypool.PicklingError,
        r"cannot be pickled.*cannot pickle me",
        at_submit=True,
    ),
    # -- receiving the arguments: unpickled in the worker -----------------------------------
    Case("args: unpickling raises", fk.identity, fk.LoadRaises, ValueError, r"cannot rebuild me"),
    Case(
        "args: __setstate__ raises",
        fk.identity,
        fk.SetstateRaises,
        ValueError,
        r"__setstate__ refused",
    ),
    Case(
        "args: unpickling calls os._exit",
        fk.identity,
        fk.LoadExits,
        anypool.WorkerCrashed,
        r"exited with code 7",
    ),
    Case(
        "args: unpickling gets SIGKILL",
        fk.identity,
        fk.LoadKilled,
        anypool.WorkerCrashed,
        r"SIGKILL",
    ),
    Case("args: unpickling raises SystemExit", fk.identity, fk.LoadSystemExit, SystemExit, r"6"),
    # -- running ---------------------------------------------------------------------------
    Case(
        "run: os._exit",
        fk.do,
        lambda: "os._exit",
        anypool.WorkerCrashed,
        r"'os._exit'.*exited with code 3",
    ),
    Case("run: SIGKILL", fk.do, lambda: "sigkill", anypool.WorkerCrashed, r"SIGKILL"),
    Case("run: segfault", fk.do, lambda: "segfault", anypool.WorkerCrashed, r"segmentation fault"),
    Case("run: raises", fk.do, lambda: "raise", ValueError, r"plain error"),
    Case("run: sys.exit is an ordinary error", fk.do, lambda: "sys.exit", SystemExit, r"4"),
    # -- the result: pickled in the worker -------------------------------------------------
    Case(
        "result: unpicklable (a lock)",
        fk.do,
        lambda: "return-lock",
        TypeError,
        r"the result of \w+\(\) <unlocked _thread\.lock.*cannot be pickled.*plain data",
    ),
    Case(
        "result: pickling raises",
        fk.do,
        lambda: "return-dump-raises",
        TypeError,
        r"the result of \w+\(\) <faultkit\.DumpRaises.*cannot be pickled.*cannot pickle me",
    ),
    Case(
        "result: pickling calls os._exit",
        fk.do,
        lambda: "return-dump-exits",
        anypool.WorkerCrashed,
        r"exited with code 8",
    ),
    # -- the result: unpickled in the parent -----------------------------------------------
    Case(
        "result: unpickling raises (parent)",
        fk.do,
        lambda: "return-load-raises",
        anypool.PicklingError,
        r"could not be unpickled in the parent.*cannot rebuild me",
    ),
    Case(
        "result: unpickling raises SystemExit (parent)",
        fk.do,
        lambda: "return-load-system-exit",
        anypool.PicklingError,
        r"could not be unpickled in the parent.*SystemExit",
    ),
    # -- exceptions that cannot travel as themselves ---------------------------------------
    Case(
        "error: cannot be pickled",
        fk.do,
        lambda: "raise-unpicklable",
        anypool.RemoteError,
        r"faultkit\.UnpicklableError: has a lock.*Worker traceback.*raise UnpicklableError",
    ),
    Case(
        "error: cannot be rebuilt (other __init__ args)",
        fk.do,
        lambda: "raise-needs-two-args",
        anypool.RemoteError,
        r"faultkit\.NeedsTwoArgs: needs 1 and 2.*Worker traceback.*raise NeedsTwoArgs",
    ),
    Case("error: its __str__ raises", fk.do, lambda: "raise-bad-str", fk.BadStrError, r""),
    Case(
        "error: pickling it calls os._exit",
        fk.do,
        lambda: "raise-exits-when-pickled",
        anypool.WorkerCrashed,
        r"exited with code 9",
    ),
    # -- a large payload in flight ---------------------------------------------------------
    Case(
        "50 MB args, then unpickling calls os._exit",
        fk.first,
        lambda: (b"a" * fk.BIG, fk.LoadExits()),
        anypool.WorkerCrashed,
        r"exited with code 7",
    ),
    Case(
        "50 MB result, then unpickling raises (parent)",
        fk.do,
        lambda: "return-big-then-load-raises",
        anypool.PicklingError,
        r"could not be unpickled in the parent.*cannot rebuild me",
    ),
]


def _call(pool: anypool.Pool, case: Case) -> BaseException | None:
    arg = case.arg()
    args = (arg[0], arg[1]) if case.fn is fk.first else (arg,)
    try:
        fut = pool.submit(case.fn, *args)
    except BaseException as exc:
        return exc
    return fut.exception(timeout=SHORT_TIMEOUT)


def _check(err: BaseException | None, case: Case) -> None:
    assert isinstance(err, case.error), f"{case.id}: got {err!r}"
    text = "" if isinstance(err, fk.BadStrError) else str(err)
    assert re.search(case.match, text, re.S), f"{case.id}: {text!r}"
    if isinstance(err, anypool.RemoteError):
        assert err.type_name.startswith("faultkit.")
        assert "Traceback" in err.traceback_text


def _usable(pool: anypool.Pool) -> None:
    assert pool.submit(fk.identity, 5).result(timeout=SHORT_TIMEOUT) == 5
    assert list(pool.map(fk.identity, range(4), timeout=SHORT_TIMEOUT)) == [0, 1, 2, 3]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_ends_in_a_clear_error_and_the_pool_goes_on(case: Case) -> None:
    with anypool.Pool("process", workers=2) as pool:
        # one task through submit
        err = _call(pool, case)
        _check(err, case)
        if case.at_submit:
            assert err is not None
            assert err.__traceback__ is not None
        _usable(pool)
        if case.fn is fk.first:
            return  # two arguments per call: the one-argument map below does not apply
        # the same fault in the middle of a map: only its input fails
        bad = case.arg()
        fn: Callable[..., Any] = fk.identity if case.fn is fk.identity else _do_or_echo
        inputs = ["echo:before", bad, "echo:after"]
        if case.at_submit:
            with pytest.raises(case.error):
                pool.map(fn, inputs, chunksize=1, timeout=SHORT_TIMEOUT).__next__()
        else:
            out = list(pool.imap(fn, inputs, chunksize=1, errors="collect"))
            assert out[0].ok
            assert out[2].ok
            _check(out[1].error, case)
        _usable(pool)


def _do_or_echo(kind: str) -> Any:
    if kind.startswith("echo:"):
        return kind
    return fk.do(kind)


def test_a_crashed_task_is_retried_on_a_fresh_worker(tmp_path: Any) -> None:
    with anypool.Pool("process", workers=2, retries=2) as pool:
        fut = pool.submit(fk.crash_until, str(tmp_path), "m", 2)
        assert fut.result(timeout=SHORT_TIMEOUT) == "ok"  # two crashes, the third try runs


def test_a_task_that_always_crashes_fails_after_its_retries(tmp_path: Any) -> None:
    with anypool.Pool("process", workers=1, retries=2) as pool:
        out = list(
            pool.imap(fk.crash_until, [str(tmp_path)], ["m"], [99], chunksize=1, errors="collect")
        )
        err = out[0].error
        assert isinstance(err, anypool.WorkerCrashed)
        assert isinstance(err, cf.process.BrokenProcessPool)
        assert "gave up after 3 attempts" in str(err)
        _usable(pool)


def test_a_segfaults_stack_reaches_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    # spawn: a fresh worker inherits this test's captured stderr (the fork server's workers
    # inherit the stderr the fork server was started with, which may belong to another test)
    with anypool.Pool("process", workers=1, start_method="spawn") as pool:
        err = pool.submit(fk.do, "segfault").exception(timeout=SHORT_TIMEOUT)
        assert isinstance(err, anypool.WorkerCrashed)
        assert err.exitcode is not None
        assert err.exitcode < 0
        _usable(pool)
    captured = capfd.readouterr().err
    assert "Fatal Python error" in captured or "Segmentation fault" in captured
    assert "faultkit.py" in captured  # the stack names the crashing function's file


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.02])
def test_a_worker_killed_while_sending_a_50_mb_result(delay: float) -> None:
    # the kill lands before, during or after the transfer: the task gets its value or
    # WorkerCrashed, never a hang, and the pool goes on
    with anypool.Pool("process", workers=1) as pool:
        fut = pool.submit(fk.big_result_then_killed, delay)
        err = fut.exception(timeout=SHORT_TIMEOUT)
        if err is None:
            assert len(fut.result()) == fk.BIG
        else:
            assert isinstance(err, anypool.WorkerCrashed)
            assert "SIGKILL" in str(err)
        _usable(pool)


def test_a_50_mb_argument_and_result_arrive_whole() -> None:
    with anypool.Pool("process", workers=2) as pool:
        data = b"a" * fk.BIG
        assert pool.submit(len, data).result(timeout=SHORT_TIMEOUT) == fk.BIG
        assert len(pool.submit(fk.do, "return-big").result(timeout=SHORT_TIMEOUT)) == fk.BIG
