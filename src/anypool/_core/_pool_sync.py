"""The shared-state and synchronisation factories of :class:`~anypool.Pool` (``pool.Lock()``,
``pool.Queue()``, ``pool.Counter()``, ``pool.share()``...), as a mixin.

Each asks the pool for the factory of its backend's kind (``Pool._factory``) and makes one
primitive; the table of what each backend gives is in ``docs/sync.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._options import check_whole
from ._sync import SHARE_MODES, ShareMode

if TYPE_CHECKING:
    from ._abc import Backend
    from ._sync import Counter as _Counter
    from ._sync import SyncFactory

T = TypeVar("T")


class PoolSync:
    """``Pool``'s primitive factories: each makes one primitive of the pool's kind."""

    if TYPE_CHECKING:
        _backend: Backend

        def _factory(self, kind: str | None = None) -> SyncFactory: ...

    def Lock(self) -> Any:
        """A lock of this pool's kind: ``threading.Lock``, ``asyncio.Lock``, or for processes
        a ``multiprocessing`` lock that can be passed to tasks as an argument.

        See the table in ``docs/sync.md`` for what each backend gives.

        Raises:
            ClosedPoolError: the pool was shut down.

        .. versionadded:: 0.2
        """
        return self._factory().Lock()

    def RLock(self) -> Any:
        """A re-entrant lock (``threading.RLock``; processes: ``multiprocessing.RLock``).

        Raises:
            NotImplementedError: on asyncio and Dask, which have no re-entrant lock.

        .. versionadded:: 0.2
        """
        return self._factory().RLock()

    def Semaphore(self, value: int = 1) -> Any:
        """A semaphore admitting ``value`` holders at once (this pool's kind).

        .. versionadded:: 0.2
        """
        return self._factory().Semaphore(check_whole("value", value, 0))

    def BoundedSemaphore(self, value: int = 1) -> Any:
        """A semaphore that raises ``ValueError`` when released above ``value``.

        .. versionadded:: 0.2
        """
        return self._factory().BoundedSemaphore(check_whole("value", value, 0))

    def Event(self) -> Any:
        """An event (``set``/``is_set``/``wait``/``clear``) of this pool's kind.

        .. versionadded:: 0.2
        """
        return self._factory().Event()

    def Condition(self, lock: Any = None) -> Any:
        """A condition variable (``with cond: cond.wait_for(...)``), as ``threading.Condition``.

        Args:
            lock: the lock it uses (one of this pool's, or for thread pools any lock);
                default a new re-entrant lock (a plain lock on asyncio).

        Raises:
            NotImplementedError: on Dask, which has none (use an :meth:`Event` or a
                :meth:`Queue`).

        .. versionadded:: 0.2
        """
        return self._factory().Condition(lock)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> Any:
        """A barrier that lets ``parties`` waiters through together, as ``threading.Barrier``.

        Args:
            parties: how many must wait.
            action: called by the last to arrive before all are let through (in a worker
                process on process pools: it is pickled with the barrier).
            timeout: the default timeout of ``wait()``.

        Raises:
            NotImplementedError: on Dask, which has none; on asyncio with ``action`` or
                ``timeout`` (``asyncio.Barrier`` takes neither).

        .. versionadded:: 0.2
        """
        return self._factory().Barrier(check_whole("parties", parties, 1), action, timeout)

    def Queue(self, maxsize: int = 0) -> Any:
        """A FIFO queue (``queue.Queue``, ``asyncio.Queue`` or a manager queue).

        Args:
            maxsize: at most this many items; 0 (default) for no limit.

        .. versionadded:: 0.2
        """
        return self._factory().Queue(check_whole("maxsize", maxsize, 0))

    def Value(self, typecode: str, initial: Any = 0) -> Any:
        """One shared number with ``.value`` and ``get_lock()``, as ``multiprocessing.Value``.

        Args:
            typecode: ``'i'`` (C int), ``'q'`` (64-bit int), ``'d'`` (float), or another of
                ``bBhHiIlLqQfd``.
            initial: the starting value.

        On process pools it lives in shared memory and still reads after the pool closed.
        ``v.value += 1`` is not atomic anywhere: hold ``v.get_lock()`` (or use
        :meth:`Counter`).

        .. versionadded:: 0.2
        """
        return self._factory().Value(typecode, initial)

    def Counter(self, initial: int = 0) -> _Counter:
        """An atomic counter: ``c.increment(n=1)`` returns the new value, ``c.value`` reads it.

        Works across threads, coroutines or worker processes (pass it to tasks as an
        argument); much faster than a manager dict.

        .. versionadded:: 0.2
        """
        return self._factory().Counter(initial)

    def share(self, obj: T, *, mode: ShareMode = "r") -> T:
        """Share large data with the tasks without sending it with every task.

        Thread, serial and asyncio pools return ``obj`` itself (tasks share memory). Process
        pools return a :class:`~anypool.Shared` handle: pass it to tasks as an argument and
        each worker receives the object once (it is cached in the worker), not once per task.
        ``bytes`` and NumPy arrays are mapped from shared memory with no copy at all. The
        shared memory is freed when the pool shuts down. Do not modify the object after
        sharing it: workers see the copy made here. On a process pool that has not started
        its workers yet, sharing starts them, so that they start while the object is copied.

        ``mode`` says what a worker may do with a mapped array or buffer (as numpy's
        ``memmap`` and joblib's ``mmap_mode`` name it):

        - ``"r"`` (the default): read-only. A task that writes to it gets numpy's
          "assignment destination is read-only" error.
        - ``"c"``: copy-on-write, as with ``fork``: the array is writeable, and a page a
          worker writes to becomes that worker's own copy; other workers and this process
          never see the write. Use it for libraries that need a writeable input:
          ``scipy.signal.convolve2d`` copies a read-only array on every call, and Cython
          functions with non-``const`` memoryviews refuse one ("buffer source array is
          read-only").

        Other objects are unpickled once per worker, so each worker has its own copy in both
        modes. Before ``backend="auto"`` has chosen, the handle becomes the chosen kind: the
        object itself for tasks run in this process, the process handle for worker processes.
        Dask pools scatter the object to the cluster once; each worker fetches it once (its
        own copy, in both modes).

        Raises:
            ValueError: ``mode`` is not ``"r"`` or ``"c"``.
            ClosedPoolError: the pool was shut down.

        .. versionadded:: 0.2
        .. versionchanged:: 0.2 ``mode=``; sharing on a process pool starts its workers.
        """
        if mode not in SHARE_MODES:
            raise ValueError(
                f"pool.share(mode={mode!r}): mode must be 'r' (read-only, the default) or "
                "'c' (copy-on-write: each worker's writes stay its own, as with fork)"
            )
        backend: Any = self._backend
        if backend.chosen is None:
            # auto may still choose threads (the object itself) or processes (shared memory)
            handle: T = backend.share(obj, lambda o: self._factory("process").share(o, mode))
            return handle
        return self._factory().share(obj, mode)

    def dict(self) -> Any:
        """A dict the tasks share (process pools: a manager proxy, usable until shutdown).

        Raises:
            NotImplementedError: on Dask, which has none (return results from the tasks).

        .. versionadded:: 0.2
        """
        return self._factory().dict()

    def list(self) -> Any:
        """A list the tasks share (process pools: a manager proxy, usable until shutdown).

        Raises:
            NotImplementedError: on Dask, which has none (return results from the tasks).

        .. versionadded:: 0.2
        """
        return self._factory().list()
