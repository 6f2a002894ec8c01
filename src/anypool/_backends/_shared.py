"""A :class:`Shared` handle and its loading in a worker (private).

Kept apart from the primitives (``_process_sync``) and light to import: a worker that is
given a shared object imports only this, as it unpickles the handle of its first task.
"""

from __future__ import annotations

import importlib
import mmap
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
#: token -> an array that processes forked from this one start with (see Shared): in the
#: parent, registered by ``share()`` until its pool shuts down; in a worker forked after that,
#: the array itself, with no copy and no shared-memory segment
_INHERITED: dict[str, Any] = {}
_collecting = threading.local()


@contextmanager
def collect() -> Iterator[list[Shared[Any]]]:
    """Pickle in here to get the handles whose copy into shared memory was put off (see
    :meth:`Shared.copy`) instead of making those copies: the process backend makes them only
    for a worker that did not start with the object."""
    found: list[Shared[Any]] = []
    outer = getattr(_collecting, "found", None)
    _collecting.found = found
    try:
        yield found
    finally:
        _collecting.found = outer


def inherited_now() -> frozenset[str]:
    """The tokens a process forked from this one now starts with."""
    return frozenset(list(_INHERITED))


class Shared(Generic[T]):
    """A handle for an object sent to each worker process once (see :meth:`Pool.share`).

    Pass it to tasks as an argument: in the worker it turns into the object itself, loaded
    once per worker and cached. In the parent, :attr:`value` is the original object.

    A large NumPy array shared before the pool's workers start, where they are forks of this
    program (forked at ``share()`` from a single-threaded program, or
    ``start_method="fork"``), is not copied at all: the workers start with it, as with
    ``fork``. Its copy into shared memory is made only if a worker that did not start with it
    needs it, or if the handle is pickled for anything else.

    .. versionadded:: 0.2
    """

    __slots__ = ("token", "_obj", "_how", "_meta", "mode", "_copy", "_lock")

    def __init__(
        self,
        obj: T,
        name: str,
        how: str,
        meta: Any,
        mode: ShareMode = "r",
        copy: Callable[[], object] | None = None,
    ) -> None:
        #: the name of its shared-memory segment (the worker's cache key)
        self.token = name
        self._obj = obj
        self._how = how
        self._meta = meta
        #: what a worker may do with a mapped array or buffer: "r" read-only, "c" copy-on-write
        self.mode: ShareMode = mode
        self._copy = copy  # makes the shared-memory segment; None once it exists
        self._lock = threading.Lock()

    @property
    def value(self) -> T:
        """The shared object (in the parent)."""
        return self._obj

    @property
    def copied(self) -> bool:
        """Whether the object is in shared memory (else only forked workers have it)."""
        return self._copy is None

    def copy(self) -> None:
        """Put the object into shared memory now, if it is not there yet."""
        if self._copy is None:
            return
        with self._lock:
            if self._copy is not None:
                self._copy()
                self._copy = None

    def __reduce__(self) -> tuple[Any, ...]:
        if self._copy is not None:
            found = getattr(_collecting, "found", None)
            if found is not None:
                found.append(self)  # the process backend copies it if a worker needs it
            else:
                self.copy()
        return (_load_shared, (self.token, self._how, self._meta, self.mode))

    def __repr__(self) -> str:
        return f"<anypool.Shared {type(self._obj).__name__} in {self.token}>"


def _load_shared(name: str, how: str, meta: Any, mode: str = "r") -> Any:
    obj = _SHARED.get(name)
    if obj is not None:
        _SHARED.move_to_end(name)
        return obj
    start = _INHERITED.get(name)
    if start is not None:  # this worker is a fork that started with the array: no copy
        if mode == "r":
            obj = start.view()
            obj.flags.writeable = False
        else:
            obj = start  # copy-on-write, as fork gives it
    elif how == "pickle":
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
