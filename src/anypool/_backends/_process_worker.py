"""The code a worker process runs (private). Kept small: it is imported in every worker."""

from __future__ import annotations

import faulthandler
import os
import pickle
import signal
import sys
import threading
from typing import Any

from .._core._exceptions import ExceptionCarrier
from .._core._pickling import dump_result
from .._core._tasks import (
    WorkerContext,
    call_sync,
    run_chunk,
    set_cpu_share,
    set_current_worker,
    set_progress_slot,
)

#: first byte of a message from a worker
RESULT_OK = b"o"
RESULT_ERR = b"e"
INIT_FAILED = b"i"
READY = b"r"
FINALIZER_FAILED = b"f"  # the finalizer's error, sent as the worker stops
#: before a result, with a memory limit: 8 bytes of this worker's size, then the result
MEMORY_STAYS = b"m"
MEMORY_LEAVING = b"M"  # ... and the worker leaves after it (over its memory limit)
#: kinds of task message
CALL = 0
CHUNK = 1
BROADCAST = 2  # a CALL that is not counted as a task (pool.broadcast)
DEFINE = 3  # (DEFINE, key, the pickled function, None): later tasks name the function by key
ADOPT = 4  # (ADOPT, new id, None, None): a kept-warm worker joins a new pool (see _warm)
#: (PARK, seconds, None, None): the pool kept this worker warm (see _warm); unused that long,
#: it ends itself (the program needs no thread to stop it)
PARK = 5


def _watch_parent(parent_pid: int) -> None:
    """Exit when the process that started the pool is gone (no orphans)."""
    import time

    while True:
        time.sleep(0.5)
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid was reused by another user's process
            os._exit(1)


def _dump_result(ok: bool, value: Any, fn: Any) -> bytes:
    ok, blob = dump_result(ok, value, fn)
    return (RESULT_OK if ok else RESULT_ERR) + blob


def _limit_threads(inner_threads: tuple[int, bool] | None) -> None:
    """Cap native thread pools before the first task (and before the initializer)."""
    from .._core._lifecycle import leave_native_threads, limit_native_threads

    if inner_threads is None:
        leave_native_threads()
        return

    n, explicit = inner_threads
    try:
        limit_native_threads(n, override_env=explicit)
    except Exception as exc:  # never keep a worker from starting: say so, run uncapped
        print(f"anypool: could not cap native thread pools to {n}: {exc!r}", file=sys.stderr)


def _finalizer_overran() -> None:
    """The finalizer ran past its timeout: say where it was stuck (stderr), then leave."""
    try:
        faulthandler.dump_traceback(all_threads=True)
    finally:
        os._exit(1)


def _finalize(conn: Any, ctx: WorkerContext, fin_blob: bytes | None, timeout: float) -> None:
    """Run the finalizer as the worker stops; send its error to the parent (else log it).

    A finalizer still running after ``timeout`` seconds ends the worker (faulthandler prints
    where it was stuck to stderr), so a hung finalizer never keeps a pool from stopping.
    """
    if fin_blob is None:
        return
    from .._core._lifecycle import log_finalizer_error, run_finalizer

    # not faulthandler.dump_traceback_later: its watchdog's state is inherited through a
    # fork, and a program forked while one was armed (pytest's faulthandler_timeout) leaves
    # it looking busy for ever here
    timer = threading.Timer(timeout, _finalizer_overran)
    timer.daemon = True
    timer.start()
    try:
        err = run_finalizer(pickle.loads(fin_blob), ctx)
    except BaseException as exc:  # unpickling failed
        err = exc
    finally:
        timer.cancel()
    if err is None:
        return
    try:
        conn.send_bytes(FINALIZER_FAILED + pickle.dumps(ExceptionCarrier(err)))
    except (OSError, ValueError):  # the parent is gone: log it here (stderr)
        log_finalizer_error("process", ctx.id, err)


def _allow_nested_pools(cpu_share: int | None) -> None:
    """Let a task start a process pool of its own, sized to this worker's share of the CPUs.

    multiprocessing refuses children to a daemonic process. This worker is daemonic in its
    parent's eyes (it is ended with the parent), but its own children are safe to have: they
    are anypool workers too, which exit when this process is gone (their parent watch), and
    pools started here are shut down by this process's exit handlers.
    """
    import multiprocessing as mp

    try:
        mp.current_process().daemon = False
    except (AssertionError, AttributeError):  # pragma: no cover - not a multiprocessing child
        pass
    if cpu_share is not None:
        set_cpu_share(cpu_share)


def main(
    conn: Any,
    worker_id: int,
    init_blob: bytes | None,
    parent_pid: int,
    max_tasks: int | None,
    lifecycle: tuple[bytes | None, float, tuple[int, bool] | None] = (None, 0.0, None),
    cpu_share: int | None = None,
    progress: Any = None,
    memory_limit: int | None = None,
) -> None:
    """Run tasks sent over ``conn`` until told to stop (an empty message) or the pipe closes.

    ``lifecycle`` is (the pickled finalizer, its timeout, (inner threads, explicit));
    ``cpu_share`` is this worker's share of the CPUs, which pools it starts size themselves to.
    ``memory_limit``: after each task the worker measures itself and, above this many bytes,
    says so with its result; the parent gives it no more tasks and stops it (then starts
    another). Each result then carries the worker's size.
    """
    measure: Any = None
    if memory_limit is not None:
        from .._core._memory import private_rss as measure
    fin_blob, fin_timeout, inner_threads = lifecycle
    _allow_nested_pools(cpu_share)
    if progress is not None:  # the index of the chunk's running item, for the parent
        set_progress_slot(progress)
    _limit_threads(inner_threads)
    faulthandler.enable()
    # Ctrl-C is the parent's business: it cancels work and ends the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    ctx = WorkerContext(id=worker_id, backend="process")
    set_current_worker(ctx)
    if init_blob is not None:
        try:
            initializer, initargs = pickle.loads(init_blob)
            initializer(*initargs)
        except BaseException as exc:
            conn.send_bytes(INIT_FAILED + pickle.dumps(ExceptionCarrier(exc)))
            conn.close()
            return
    recv = conn.recv_bytes
    send = conn.send_bytes
    send(READY)
    last_blob = b""
    last_fn: Any = None
    fn_key = -1  # the function defined by the last DEFINE message (one at a time)
    key_fn: Any = None
    key_error: BaseException | None = None  # why that function could not be unpickled
    parked: float | None = None  # kept warm: how long to wait for a pool (see PARK)
    while True:
        try:
            if parked is not None and not conn.poll(parked):
                return  # unused while kept warm: the parent reaps it (nothing to finalize)
            data = recv()
        except (EOFError, OSError):
            _finalize(conn, ctx, fin_blob, fin_timeout)
            return
        if not data:
            _finalize(conn, ctx, fin_blob, fin_timeout)
            return
        fn: Any = None
        kind = CALL
        try:
            kind, blob, args, extra = pickle.loads(data)
            del data
            if kind == PARK:
                parked = blob
                continue
            if kind == ADOPT:  # a fresh start for the new pool: its id, empty state, no keys
                parked = None
                ctx = WorkerContext(id=blob, backend="process")
                set_current_worker(ctx)
                fn_key, key_fn, key_error, last_blob, last_fn = -1, None, None, b"", None
                send(READY)
                continue
            if kind == DEFINE:
                fn_key, key_fn, key_error = blob, None, None
                try:
                    key_fn = pickle.loads(args)
                except BaseException as exc:  # reported by each task that uses it
                    key_error = exc
                continue
            if isinstance(blob, int):
                if blob != fn_key:  # pragma: no cover - the parent always defines first
                    raise RuntimeError(f"anypool internal error: function {blob} not defined")
                if key_error is not None:
                    raise key_error
                fn = key_fn
            else:
                if blob != last_blob:
                    last_fn = pickle.loads(blob)
                    last_blob = blob
                fn = last_fn
            if kind == CHUNK:
                if isinstance(extra, bytes):  # a cloudpickled Retry (see _dumps_call)
                    extra = pickle.loads(extra)
                result = run_chunk(fn, args, extra)
            else:
                result = call_sync(fn, args, extra)
            out = _dump_result(True, result, fn)
            del result
        except BaseException as exc:  # KeyboardInterrupt too: SIGINT is ignored here, so
            # it can only come from the task itself, and goes back to the caller like any error
            out = _dump_result(False, ExceptionCarrier(exc), fn)
        del fn
        leaving = False
        if measure is not None and kind != BROADCAST:
            size = measure() or 0
            leaving = memory_limit is not None and size > memory_limit
            out = (MEMORY_LEAVING if leaving else MEMORY_STAYS) + size.to_bytes(8) + out
        try:
            send(out)
        except (OSError, ValueError):
            return
        del out
        if kind == BROADCAST:
            continue
        ctx.tasks_done += 1
        if max_tasks is not None and ctx.tasks_done >= max_tasks:
            _finalize(conn, ctx, fin_blob, fin_timeout)
            return
        # leaving (over the memory limit): the parent sends the broadcast calls meant for this
        # worker, if any, then the empty message that stops it (and runs the finalizer)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("this module is run by anypool's process backend")
