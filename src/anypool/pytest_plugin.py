"""A pytest plugin that runs your tests once per anypool backend.

Installing anypool registers this module as a ``pytest11`` entry point, so every pytest run
loads it; it does nothing until a test asks for the :func:`anypool_backend` fixture::

    import anypool

    def square(x: int) -> int:
        return x * x

    def test_squares(anypool_backend: str) -> None:
        fn = square
        if anypool_backend == "asyncio":  # the asyncio backend runs coroutine functions
            async def fn(x: int) -> int:
                return x * x
        assert anypool.map(fn, range(4), backend=anypool_backend) == [0, 1, 4, 9]

The test runs as ``test_squares[serial]``, ``test_squares[thread]``, ``test_squares[process]``,
``test_squares[asyncio]`` (and ``[dask]``, see below). Choices:

* ``"auto"`` is left out: it picks one of the other backends, which are all tested already.
  Pin it explicitly if you want it (below).
* A backend that is known but cannot run here (its optional dependencies are missing) is
  still listed, skipped with the reason, so ``-ra`` tells you what did not run.
* ``dask`` is skipped unless you pass ``--anypool-dask`` (or name it in ``--anypool-backends``):
  without a configured scheduler each ``Pool("dask")`` starts, and closes, its own
  ``LocalCluster``, which costs seconds per test. To share one cluster, start it yourself and
  set ``DASK_SCHEDULER_ADDRESS`` (Dask's ``scheduler-address`` setting) for the run.
* ``--anypool-backends=thread,process`` (or the ini setting ``anypool_backends``) chooses the
  backends for the whole run; an unknown name is a usage error.
* ``@pytest.mark.parametrize("anypool_backend", ["thread", "process"])`` pins one test to
  those backends (it overrides the fixture; the skips for unavailable backends still apply).

The module imports nothing heavy at import time (not even anypool's registry), so it costs
nothing in test runs that do not use it.

.. versionadded:: 0.2
"""

from __future__ import annotations

import pytest

__all__ = ("anypool_backend",)

_FIXTURE = "anypool_backend"
_OPTION = "--anypool-backends"
_INI = "anypool_backends"
_DASK_OPTION = "--anypool-dask"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--anypool-backends``, ``--anypool-dask`` and the ``anypool_backends`` ini setting."""
    group = parser.getgroup("anypool", "anypool backends (the anypool_backend fixture)")
    group.addoption(
        _OPTION,
        dest="anypool_backends",
        default=None,
        metavar="NAMES",
        help="comma-separated backends for the anypool_backend fixture, e.g. thread,process "
        "(default: every backend except auto)",
    )
    group.addoption(
        _DASK_OPTION,
        dest="anypool_dask",
        action="store_true",
        default=False,
        help="also run anypool_backend tests on dask (skipped otherwise)",
    )
    parser.addini(
        _INI,
        "comma- or space-separated backends for the anypool_backend fixture "
        f"(the {_OPTION} option overrides it)",
        type="args",
        default=[],
    )


def _chosen(config: pytest.Config) -> list[str] | None:
    """The backends named by the option or the ini setting, or None for the default set."""
    raw = config.getoption("anypool_backends")
    source = _OPTION
    if raw is None:
        raw = " ".join(config.getini(_INI))  # a string, or a list in pyproject.toml
        source = f"the ini setting {_INI}"
    names = [n for n in raw.replace(",", " ").split() if n]
    if not names:
        if raw.strip():
            raise pytest.UsageError(f"{source} names no backend: {raw!r}")
        return None
    from anypool._core._registry import get_all_backends

    known = get_all_backends()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise pytest.UsageError(
            f"{source}: unknown anypool backend(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(known)}"
        )
    return list(dict.fromkeys(names))


def pytest_configure(config: pytest.Config) -> None:
    """Check the backend names now, so a typo is a usage error before any test runs."""
    config.stash[_chosen_key] = _chosen(config)


_chosen_key = pytest.StashKey[list[str] | None]()


def _default_backends() -> list[str]:
    from anypool._core._registry import get_all_backends

    return [n for n in get_all_backends() if n != "auto"]


def _skip_reason(name: str, config: pytest.Config) -> str | None:
    """Why ``name`` cannot run in this session, or None."""
    from anypool._core import _registry

    if name not in _registry.get_all_backends():
        return None  # not ours to judge: the user's test will fail with anypool's own error
    if name not in _registry.get_available_backends():
        extra = _registry._EXTRA_NAMES.get(name)
        if extra is not None:  # not imported just to ask (see get_available_backends)
            return f"anypool backend {name!r} is not available here: pip install anypool[{extra}]"
        try:
            _registry.get_backend(name)
        except LookupError as exc:
            return f"anypool backend {name!r} is not available here: {exc}"
    if (
        name == "dask"
        and not config.getoption("anypool_dask")
        and "dask" not in (config.stash.get(_chosen_key, None) or ())
    ):
        return f"anypool backend 'dask' runs only with {_DASK_OPTION}"
    return None


def _pinned(metafunc: pytest.Metafunc) -> bool:
    """True if the test parametrises ``anypool_backend`` itself (a pin overrides the set)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(argnames, str):
            argnames = [a.strip() for a in argnames.split(",")]
        if _FIXTURE in argnames:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that uses ``anypool_backend`` over the chosen backends."""
    if _FIXTURE not in metafunc.fixturenames or _pinned(metafunc):
        return
    names = metafunc.config.stash.get(_chosen_key, None) or _default_backends()
    params = []
    for name in names:
        reason = _skip_reason(name, metafunc.config)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(name, id=name, marks=marks))
    metafunc.parametrize(_FIXTURE, params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip pinned ``anypool_backend`` cases whose backend cannot run here."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or _FIXTURE not in callspec.params:
            continue
        if item.get_closest_marker("skip") is not None:
            continue
        reason = _skip_reason(str(callspec.params[_FIXTURE]), config)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def anypool_backend() -> str:
    """The name of the anypool backend this test case runs on (``"thread"``, ...).

    Tests that use it are parametrised over every backend (see the module's docstring);
    ``@pytest.mark.parametrize("anypool_backend", [...])`` pins a test to some backends.

    .. versionadded:: 0.2
    """
    # pytest_generate_tests always parametrises this name, so the value comes from there
    raise pytest.UsageError("anypool_backend was not parametrised (is the plugin disabled?)")
