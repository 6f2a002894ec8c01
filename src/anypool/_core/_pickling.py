"""Pickling for the backends that send work to other processes, with one set of errors (private).

The process, Dask and executor backends all send a function (with cloudpickle: lambdas,
closures and ``__main__`` functions travel by value), the arguments (with the C pickler where
it can, cloudpickle where it must) and get results back. When something cannot be pickled the
error says the same thing on every backend: *what* was being sent ("the function", "argument 2
of input #5", "the result of input #3"), *which object* failed (its type and a short repr) and
*the fix* (define the function at module level, make locks and queues with the pool, pass big
or shared data with ``pool.share``, or use ``backend="thread"``, which pickles nothing).

An argument that fails is found after the fast path failed (pickling the whole call once),
so the common case pays nothing for the search. Inside a chunk the backend only knows the
item's position in the chunk; the engine, which knows where the chunk starts in the input,
calls :func:`number_inputs` to write the input's number into the message.
"""

from __future__ import annotations

import pickle
import reprlib
from collections.abc import Iterator, Sequence
from typing import Any

from ._exceptions import PicklingError

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60
_short.maxlevel = 3

#: where a result was going
_BACK = "back from the worker process"

#: the placeholder in a message for the input number, until :func:`number_inputs` fills it
_INPUT = "{input}"


def short_repr(obj: object) -> str:
    """``repr(obj)`` cut to about 60 characters (a repr that raises gives the type's name)."""
    try:
        return _short.repr(obj)
    except Exception:
        return f"<{type(obj).__qualname__} object>"


def describe_object(obj: object) -> str:
    """``<short repr> (type module.Name)``: the object named in a pickling error."""
    qualname = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(qualname, str):  # a function or class: its full name
        return f"{getattr(obj, '__module__', None) or '?'}.{qualname} ({type(obj).__name__})"
    cls = type(obj)
    module = "" if cls.__module__ == "builtins" else f"{cls.__module__}."
    return f"{short_repr(obj)} (type {module}{cls.__qualname__})"


def is_sync_object(obj: object) -> bool:
    """A lock, queue, event... of threading, queue, asyncio or multiprocessing."""
    module = type(obj).__module__
    return module in ("_thread", "threading", "queue", "_queue") or module.startswith(
        ("asyncio.", "multiprocessing.")
    )


def _culprit(obj: object) -> object:
    """The innermost object of a container that fails to pickle (``obj`` if none does alone)."""
    for _ in range(8):  # a few levels: a lock in a tuple in a dict
        if isinstance(obj, dict):
            parts: list[Any] = [*obj.keys(), *obj.values()]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            parts = list(obj)
        else:
            return obj
        for part in parts:
            try:
                _cloud_dumps(part)
            except Exception:
                obj = part
                break
        else:
            return obj
    return obj


def _fix(obj: object, what: str) -> str:
    if what.startswith("the result"):
        return (
            "Return plain data (numbers, strings, lists, dicts, dataclasses) and keep open "
            "files, connections and locks in the worker, or use backend='thread', which needs "
            "no pickling"
        )
    if is_sync_object(obj):
        return (
            "Make locks, queues and events for process tasks with the pool (pool.Lock(), "
            "pool.Queue(), pool.Event()...): those reach its workers; or use "
            "backend='thread', which needs no pickling"
        )
    if what.startswith(("the function", "the initializer", "the finalizer")):
        return (
            "Use a module-level function that takes what it needs as arguments (a closure "
            "over a lock, file or connection cannot travel), or use backend='thread', which "
            "needs no pickling"
        )
    return (
        "Make it picklable (plain data, or define __reduce__), pass big or shared data once "
        "per worker with pool.share(obj), or use backend='thread', which needs no pickling"
    )


def cannot_send(obj: object, what: str, where: str, exc: BaseException) -> PicklingError:
    """The error for ``obj`` that failed to pickle.

    ``what`` says what was being sent ("the function", "argument 2 of input #5", "the result
    of input #3"), ``where`` where to ("to a worker process", "to Dask workers").
    """
    failing = _culprit(obj)
    inner = "" if failing is obj else f", because of {describe_object(failing)} inside it"
    return PicklingError(
        f"cannot send {what} {describe_object(obj)} {where}: it cannot be pickled{inner} "
        f"({type(exc).__name__}: {exc}). {_fix(failing, what)}"
    )


def _cloud_dumps(obj: object) -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def dumps(obj: object, what: str, where: str) -> bytes:
    """``obj`` with cloudpickle (a function, ``retry_on``, an initializer...), or a clear error."""
    try:
        return _cloud_dumps(obj)
    except Exception as exc:
        raise cannot_send(obj, what, where, exc) from exc


def dumps_fast(obj: object) -> bytes | None:
    """``obj`` with the C pickler, else with cloudpickle; ``None`` when neither can.

    The C pickler is many times faster than cloudpickle on plain data; cloudpickle is for
    what only it handles (a lambda passed as an argument, a class defined in ``__main__``).
    """
    try:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    try:
        return _cloud_dumps(obj)
    except Exception:
        return None


def call_parts(args: Sequence[Any], kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(what, object)`` for each argument of one call, for :func:`find_unpicklable`."""
    for i, x in enumerate(args, 1):
        yield f"argument {i}", x
    for k, v in kwargs.items():
        yield f"the keyword argument {k}=", v


def chunk_parts(items: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """``(what, object)`` for each argument of each item of a chunk.

    The item's number is a placeholder that :func:`number_inputs` fills with the input's
    number once the caller knows where the chunk starts.
    """
    from ._tasks import item_args

    for pos in range(len(items)):
        for i, x in enumerate(item_args(items, pos), 1):
            yield f"argument {i} of input #{_INPUT}", (pos, x)


def find_unpicklable(parts: Iterator[tuple[str, Any]], where: str) -> None:
    """Raise the error naming the first part that cannot be pickled (after the whole failed).

    Parts from :func:`chunk_parts` carry the item's position in the chunk; the error keeps
    it (``exc.chunk_position``) for :func:`number_inputs`.
    """
    for what, obj in parts:
        pos: int | None = None
        if _INPUT in what:
            pos, obj = obj
        try:
            _cloud_dumps(obj)
        except Exception as exc:
            err = cannot_send(obj, what, where, exc)
            if pos is not None:
                template = str(err)
                err.args = (template.replace("#" + _INPUT, f"#{pos} of its chunk"),)
                err.template = template  # type: ignore[attr-defined]
                err.chunk_position = pos  # type: ignore[attr-defined]
            raise err from exc


def number_inputs(exc: BaseException, base: int) -> None:
    """Name the input by its number in the whole input: the chunk started at input ``base``."""
    pos = getattr(exc, "chunk_position", None)
    template = getattr(exc, "template", None)
    if isinstance(exc, PicklingError) and isinstance(pos, int) and isinstance(template, str):
        exc.args = (template.replace("#" + _INPUT, f"#{base + pos}"),)
        del exc.chunk_position  # type: ignore[attr-defined]


def dump_call_or_explain(
    body: object, parts: Iterator[tuple[str, Any]], what: str, where: str
) -> bytes:
    """``body`` pickled fast; when it cannot be, the error naming the part that fails."""
    blob = dumps_fast(body)
    if blob is not None:
        return blob
    find_unpicklable(parts, where)
    return dumps(body, what, where)  # no single part fails alone: name the whole


def cannot_load(what: str, exc: BaseException) -> PicklingError:
    """The error for a result that came back but could not be unpickled in the caller."""
    return PicklingError(
        f"{what} could not be unpickled in the parent: {type(exc).__name__}: {exc}. The "
        "object's class must be importable here, and its __reduce__/__setstate__ must work "
        "outside the worker"
    )


def salvage_chunk_result(result: Any, fn: Any) -> bool:
    """Replace each value of a chunk's result that cannot be pickled by an error naming it.

    Runs in the worker after the whole result failed to pickle; the engine adds the input's
    number to the error (its note "raised by the task for input #N"). True when one was found.
    """
    from ._tasks import ChunkResult

    if not isinstance(result, ChunkResult):
        return False
    found = False
    name = getattr(fn, "__qualname__", None) or short_repr(fn)
    for i, v in enumerate(result.values):
        if result.errors and i in result.errors:
            continue
        try:
            _cloud_dumps(v)
        except Exception as exc:
            err = cannot_send(v, f"the result of {name}()", _BACK, exc)
            if result.errors is None:
                result.errors = {}
            result.errors[i] = err
            result.values[i] = None
            found = True
    return found


def _drop(buffer: pickle.PickleBuffer) -> None:
    """A buffer_callback that keeps large buffers out of band, uncopied (a probe's)."""


def _pickles(obj: object) -> bool:
    """Whether ``obj`` pickles (C pickler, else cloudpickle), without copying big buffers."""
    try:
        pickle.dumps(obj, protocol=5, buffer_callback=_drop)
        return True
    except Exception:
        pass
    try:
        import cloudpickle

        cloudpickle.dumps(obj, protocol=5, buffer_callback=_drop)
        return True
    except Exception:
        return False


def sendable_result(value: Any, fn: Any) -> tuple[bool, Any]:
    """A worker's result, made sure to pickle, for a transport that pickles it itself (Dask).

    ``(True, value)`` when it pickles (a chunk whose values do not all pickle has those
    values replaced by errors naming them), else ``(False, the error naming it)``. The probe
    keeps big buffers (NumPy arrays) out of band, so it does not copy them.
    """
    if _pickles(value):
        return True, value
    if salvage_chunk_result(value, fn) and _pickles(value):
        return True, value
    name = getattr(fn, "__qualname__", None) or short_repr(fn)
    try:
        _cloud_dumps(value)
        return False, PicklingError(f"the result of {name}() could not be pickled")
    except Exception as exc:
        return False, cannot_send(value, f"the result of {name}()", _BACK, exc)


def dump_result(ok: bool, value: Any, fn: Any) -> tuple[bool, bytes]:
    """A worker's result or exception as bytes: ``(ok, blob)``.

    ``ok`` is False (and the blob an error) when the value could not be pickled: the error
    names the object; for a chunk each value that fails becomes that item's error instead.
    """
    from ._exceptions import ExceptionCarrier

    blob = dumps_fast(value)
    if blob is not None:
        return ok, blob
    if ok and salvage_chunk_result(value, fn):
        blob = dumps_fast(value)
        if blob is not None:
            return ok, blob
    name = getattr(fn, "__qualname__", None) or short_repr(fn)
    try:
        _cloud_dumps(value)
        err: BaseException = PicklingError(f"the result of {name}() could not be pickled")
    except Exception as exc:
        what = f"the result of {name}()" if ok else f"the exception raised by {name}()"
        err = cannot_send(value, what, _BACK, exc)
    return False, pickle.dumps(ExceptionCarrier(err), protocol=pickle.HIGHEST_PROTOCOL)
