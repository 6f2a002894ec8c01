"""Backend registry: names to backend classes, resolved on first use."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable

from ._abc import Backend

#: built-in backends: name -> module that defines ``backend_class``
_BUILTIN: dict[str, str] = {
    "serial": "anypool._backends._serial",
    "thread": "anypool._backends._threads",
    "process": "anypool._backends._processes",
    "asyncio": "anypool._backends._asyncio",
    "auto": "anypool._backends._auto",
}
_EXTRAS: dict[str, str] = {"dask": "anypool._backends._dask"}
#: the pip extra that provides a backend's dependencies
_EXTRA_NAMES: dict[str, str] = {"dask": "dask"}
#: the modules an extra's backend imports (checked without importing them)
_EXTRA_REQUIRES: dict[str, tuple[str, ...]] = {"dask": ("dask", "distributed")}
_registered: dict[str, Callable[[], type[Backend]]] = {}
_lock = threading.Lock()

#: names that ``register_backend`` may not take
SPECIAL: tuple[str, ...] = ()
_RESERVED = ("auto",)


def register_backend(name: str, factory: Callable[[], type[Backend]]) -> None:
    """Make ``backend=name`` use the class ``factory()`` returns.

    Args:
        name: a short lower-case name.
        factory: called on first use; returns a :class:`anypool.abc.Backend` subclass.

    .. versionadded:: 0.1
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"backend name must be a short identifier, got {name!r}")
    if name in _RESERVED or name in _BUILTIN:
        raise ValueError(f"{name!r} is reserved")
    with _lock:
        _registered[name] = factory


def get_all_backends() -> tuple[str, ...]:
    """Names of every known backend, installed or not.

    .. versionadded:: 0.1
    """
    return tuple(dict.fromkeys([*_BUILTIN, *_EXTRAS, *_registered]))


def get_available_backends() -> tuple[str, ...]:
    """Names of the backends that can run here (their dependencies are installed).

    .. versionadded:: 0.1
    """
    out = []
    for name in get_all_backends():
        needs = _EXTRA_REQUIRES.get(name)
        if needs is not None:
            # an extra's backend is not imported just to ask: importing distributed, for
            # one, changes how every exception class pickles (it installs tblib's support)
            if all(_importable(mod) for mod in needs):
                out.append(name)
            continue
        try:
            get_backend(name)
        except LookupError:
            continue
        out.append(name)
    return tuple(out)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def get_backend(name: str) -> type[Backend]:
    """Return the backend class for ``name``.

    Raises:
        LookupError: the name is unknown (the message lists valid names), or the backend's
            optional dependency is missing (the message says what to install).

    .. versionadded:: 0.1
    """
    if not isinstance(name, str):
        raise TypeError(
            f"backend must be a name such as 'thread' or 'process', got {name!r}; valid: "
            + ", ".join(repr(n) for n in (*get_all_backends(), *SPECIAL))
        )
    factory = _registered.get(name)
    if factory is not None:
        return factory()
    module = _BUILTIN.get(name) or _EXTRAS.get(name)
    if module is None:
        raise LookupError(
            f"unknown backend {name!r}; valid backends: "
            + ", ".join(repr(n) for n in (*get_all_backends(), *SPECIAL))
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_NAMES.get(name, name)
        raise LookupError(
            f"Backend {name!r} is not available. Install it with: pip install anypool[{extra}]"
        ) from exc
    cls: type[Backend] = mod.backend_class
    return cls
