"""Bad input gets a clear error that names the problem and the fix."""

from __future__ import annotations

import threading

import pytest

import anypool
from anypool._core import _options


def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize("workers", [0, -1, 1.5, "2", True])
def test_workers_must_be_a_positive_int(backend: str, workers: object) -> None:
    with pytest.raises(ValueError, match="workers must be a positive whole number"):
        anypool.Pool(backend, workers=workers)  # type: ignore[arg-type]


def test_non_callable_is_named(backend: str) -> None:
    with pytest.raises(TypeError, match="must be callable.*not the result of calling it"):
        anypool.map(42, [1, 2], backend=backend)  # type: ignore[arg-type]
    with anypool.Pool(backend) as pool, pytest.raises(TypeError, match="callable"):
        pool.submit("square")  # type: ignore[arg-type]


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(LookupError, match="unknown backend 'proces'.*'thread'.*'process'"):
        anypool.Pool("proces")


def test_backend_must_be_a_name() -> None:
    with pytest.raises(TypeError, match="backend must be a name"):
        anypool.Pool(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunksize": 0}, "chunksize must be a positive"),
        ({"task_timeout": -1}, "task_timeout must be a positive number"),
        ({"retries": -1}, "retries must be 0 or more"),
        ({"progress": "yes"}, "progress must be"),
        ({"retry_on": (int,)}, "retry_on must hold exception types"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        anypool.map(square, [1], backend="thread", **kwargs)  # type: ignore[arg-type]


def test_no_iterables() -> None:
    with pytest.raises(TypeError, match="at least one iterable"):
        anypool.map(square, backend="thread")


def test_not_iterable() -> None:
    with pytest.raises(TypeError, match="must be iterable"):
        anypool.map(square, 5, backend="thread")  # type: ignore[arg-type]


def test_unpicklable_argument_is_named_for_processes() -> None:
    lock = threading.Lock()
    with pytest.raises(anypool.PicklingError, match="argument.*lock.*backend='thread'"):
        anypool.map(square, [lock], backend="process")
    with anypool.Pool("process", workers=1) as pool, pytest.raises(TypeError, match="pickled"):
        pool.submit(square, lock)


def test_unpicklable_function_is_named_for_processes() -> None:
    lock = threading.Lock()

    def uses_lock(x: int) -> int:
        with lock:
            return x

    with pytest.raises(anypool.PicklingError, match="the function.*uses_lock.*module-level"):
        anypool.map(uses_lock, [1], backend="process")


def test_unknown_process_option() -> None:
    with pytest.raises(TypeError, match="unknown option.*start_method"):
        anypool.Pool("process", start_methd="spawn")


def test_bad_start_method() -> None:
    with pytest.raises(ValueError, match="not available here"):
        anypool.Pool("process", start_method="teleport")


@pytest.mark.parametrize("backend_name", ["thread", "serial", "auto"])
def test_a_misspelt_option_is_named_not_ignored(backend_name: str) -> None:
    with pytest.raises(TypeError, match="unknown option.*chunksze=.*chunksize"):
        anypool.map(square, [1], backend=backend_name, chunksze=3)  # type: ignore[call-arg]


def test_a_misspelt_map_option_on_a_pool_is_named() -> None:
    with anypool.Pool("thread") as pool, pytest.raises(TypeError, match="unknown option retry="):
        pool.imap(square, [1], retry=3)  # type: ignore[call-arg]


def test_the_unknown_option_error_names_the_nearest_valid_ones() -> None:
    with pytest.raises(TypeError) as info:
        anypool.map(square, [1], backend="process", start_methd="spawn", retry=2)  # type: ignore[call-arg]
    msg = str(info.value)
    assert msg.startswith("unknown options retry=, start_methd= for backend='process'")
    assert "start_methd=: did you mean start_method=?" in msg
    assert "retry=: did you mean retry_on= or retries=?" in msg
    # the lists of valid names come from the one declaration of the options
    for name in _options.MAP_KEYS | _options.POOL_KEYS:
        assert name in msg


def test_every_entry_point_checks_an_option_the_same_way() -> None:
    # Pool, a map call on it, the one-call functions and a Pipeline stage share the checks
    with pytest.raises(ValueError, match="task_timeout must be a positive number of seconds"):
        anypool.Pool("thread", task_timeout=0)
    timeout_error = "task_timeout must be a positive number of seconds"
    with anypool.Pool("thread") as pool, pytest.raises(ValueError, match=timeout_error):
        pool.imap(square, [1], task_timeout=0)
    with pytest.raises(ValueError, match="task_timeout must be a positive number of seconds"):
        anypool.Pipeline([1]).map(square, backend="thread", task_timeout=0).run()
    with pytest.raises(TypeError, match="retry_on must be an exception type or a tuple"):
        anypool.map(square, [1], backend="thread", retry_on=ValueError())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="initializer must be callable"):
        anypool.Pool("thread", initializer=3)  # type: ignore[arg-type]


_CHECKED = [o for o in _options.OPTIONS if o.backend is None]


def _give(where: str, name: str, value: object) -> None:
    if where == _options.POOL:
        anypool.Pool("serial", **{name: value}).shutdown()
    elif where == _options.API:
        anypool.map(square, [1], backend="serial", **{name: value})
    elif where == _options.METHOD:
        with anypool.Pool("serial") as pool:
            list(pool.imap(square, [1], **{name: value}))
    else:
        anypool.Pipeline([1]).map(square, backend="serial", **{name: value}).run()


@pytest.mark.parametrize(
    ("where", "name"),
    [(w, o.name) for o in _CHECKED for w in sorted(o.where)],
)
def test_every_declared_option_refuses_a_bad_value_by_name(where: str, name: str) -> None:
    # every entry point that takes an option checks it, and the error names the option
    with pytest.raises((TypeError, ValueError), match=rf"^{name}\b"):
        _give(where, name, object())


@pytest.mark.parametrize(
    ("where", "name"),
    [(w, o.name) for o in _CHECKED for w in sorted(o.where)],
)
def test_every_declared_option_takes_its_default(where: str, name: str) -> None:
    default = _options.BY_NAME[name].default
    _give(where, name, default)  # no error: the declared default passes the declared check
