"""A :class:`Shared` handle and its loading in a worker (private).

Kept apart from the primitives (``_process_sync``) and light to import: a worker that is
given a shared object imports only this, as it unpickles the handle of its first task.
"""

from __future__ import annotations

import importlib
import mmap
import os
import pickle
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._core._exceptions import ClosedPoolError

if TYPE_CHECKING:
    from .._core._sync import ShareMode

T = TypeVar("T")


def _gone(what: str) -> ClosedPoolError:
    return ClosedPoolError(
        f"this {what} was made by a pool that has been shut down, and its shared resources "
        "were freed with it; make primitives with the pool whose tasks use them"
    )


def _map_segment(name: str, size: int, writable: bool, private: bool = False) -> mmap.mmap:
    """Map a named segment: read-only, shared writable, or (``private``) copy-on-write: a
    writeable mapping whose written pages become this process's own copies."""
    posixshmem: Any = importlib.import_module("_posixshmem")
    flags = os.O_RDWR if writable and not private else os.O_RDONLY
    try:
        fd = posixshmem.shm_open("/" + name, flags, mode=0o600)
    except FileNotFoundError:
        raise _gone("shared object") from None
    try:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable or private else 0)
        return mmap.mmap(
            fd, size, flags=mmap.MAP_PRIVATE if private else mmap.MAP_SHARED, prot=prot
        )
    finally:
        os.close(fd)


# -- the handle -----------------------------------------------------------------------------
#: token -> the object, in a worker: loaded once per worker; the most recent few are kept
_SHARED: OrderedDict[str, Any] = OrderedDict()
SHARED_CACHE_SIZE = 8


class Shared(Generic[T]):
    """A handle for an object sent to each worker process once (see :meth:`Pool.share`).

    Pass it to tasks as an argument: in the worker it turns into the object itself, loaded
    once per worker and cached. In the parent, :attr:`value` is the original object.

    .. versionadded:: 0.2
    """

    __slots__ = ("token", "_obj", "_how", "_meta", "mode")

    def __init__(self, obj: T, name: str, how: str, meta: Any, mode: ShareMode = "r") -> None:
        #: the name of its shared-memory segment (the worker's cache key)
        self.token = name
        self._obj = obj
        self._how = how
        self._meta = meta
        #: what a worker may do with a mapped array or buffer: "r" read-only, "c" copy-on-write
        self.mode: ShareMode = mode

    @property
    def value(self) -> T:
        """The shared object (in the parent)."""
        return self._obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_load_shared, (self.token, self._how, self._meta, self.mode))

    def __repr__(self) -> str:
        return f"<anypool.Shared {type(self._obj).__name__} in {self.token}>"


def _load_shared(name: str, how: str, meta: Any, mode: str = "r") -> Any:
    obj = _SHARED.get(name)
    if obj is not None:
        _SHARED.move_to_end(name)
        return obj
    if how == "pickle":
        mm = _map_segment(name, meta, writable=False)
        try:
            obj = pickle.loads(mm)
        finally:
            mm.close()
    elif how == "bytes":
        # no copy: a view of the mapping (read-only, or copy-on-write), which lives as long
        # as the view does
        obj = memoryview(_map_segment(name, max(1, meta), False, mode == "c"))[:meta]
    else:  # "ndarray"
        np = _numpy()
        shape, dtype, nbytes = meta
        mm = _map_segment(name, max(1, nbytes), False, mode == "c")
        obj = np.frombuffer(mm, dtype=np.dtype(dtype), count=nbytes // np.dtype(dtype).itemsize)
        obj = obj.reshape(shape)
    _SHARED[name] = obj
    while len(_SHARED) > SHARED_CACHE_SIZE:
        _SHARED.popitem(last=False)
    return obj


def _numpy() -> Any:
    return importlib.import_module("numpy")
