"""A worker's life around its tasks: finalizer, broadcast calls, native thread pools (private).

Every backend runs these the same way; a backend only decides *where* (which thread, process
or event loop) and *when* (as a worker stops).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from typing import Any, Literal

from ._tasks import WorkerContext, call_sync, reset_current_worker, set_current_worker

log = logging.getLogger("anypool")

#: seconds a worker's finalizer may run before the worker is killed (threads: abandoned)
FINALIZER_TIMEOUT = 10.0

#: the environment variables native libraries read for the size of their thread pools
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

InnerThreads = int | Literal["auto"] | None


def check_inner_threads(value: object) -> InnerThreads:
    """Validate ``inner_threads=``: a positive int, ``"auto"`` or ``None``."""
    if value is None or value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f"inner_threads must be a positive whole number (threads per worker for BLAS and "
            f"OpenMP), 'auto' (processes: CPUs // workers) or None (leave native libraries "
            f"alone), got {value!r}"
        )
    return value


def check_finalizer_timeout(value: object) -> float:
    """Validate ``finalizer_timeout=``: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"finalizer_timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def inner_threads_for_processes(value: InnerThreads, workers: int, cpus: int) -> int | None:
    """The thread cap of each worker process: ``"auto"`` is the worker's share of the CPUs."""
    if value == "auto":
        return max(1, cpus // max(1, workers))
    return value


def limit_native_threads(n: int, *, override_env: bool) -> Any:
    """Cap BLAS/OpenMP thread pools of this process to ``n`` threads.

    The environment variables cover libraries loaded from now on; :mod:`threadpoolctl` covers
    those already loaded (a fork server may have imported numpy before this worker started),
    or, when OpenBLAS is the only one, its own C API (:meth:`OpenBLAS.limit`: ~1 ms, and a
    pool parked by the fork that started this worker stays parked).
    Without ``override_env`` (the default cap), a user who set any of the variables manages
    them: nothing is changed. Returns the limiter, if one was needed.
    """
    global _found_before_fork
    found, _found_before_fork = _found_before_fork, None  # good for this first call only
    if not override_env and user_sets_thread_vars():
        leave_native_threads()
        return None
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    if _controller is not None:  # made by the fork server this worker was forked from
        if n == SERVER_CAP:
            return None  # the libraries already have it, from the server
        return _controller.limit(limits=n)
    loaded, libs = native_pools(loaded_libraries()) if found is None else found
    if not loaded:
        return None  # importing threadpoolctl costs ~20 ms a worker: only when needed
    if libs:  # OpenBLAS alone (numpy's and scipy's wheels): its own API, no restart
        _OpenBLASControls(libs).limit(limits=n)
        return None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; the variables still apply
        return None
    return threadpool_limits(limits=n)


#: what :func:`limit_native_threads` would find in this process, found once by a program
#: about to fork its workers from itself (:func:`found_for_forks`): a worker forked meanwhile
#: takes it instead of reading its memory maps again (~4 ms of CPU each, taken from the
#: program's own start on a machine with a core per worker)
_found_before_fork: tuple[bool, list[OpenBLAS]] | None = None


def native_pools(
    paths: Collection[str] | None, libs: list[OpenBLAS] | None = None
) -> tuple[bool, list[OpenBLAS]]:
    """(Whether a BLAS or OpenMP library is loaded, the OpenBLAS libraries when they are the
    only ones) among ``paths`` (:func:`loaded_libraries`); ``libs``: their
    :func:`openblas_libraries`, if known."""
    if not _native_pools_loaded(paths):
        return False, []
    if paths is None or not _only_openblas_loaded(paths):
        return True, []
    return True, openblas_libraries(paths) if libs is None else libs


@contextlib.contextmanager
def found_for_forks(paths: Collection[str] | None, libs: list[OpenBLAS] | None) -> Iterator[None]:
    """Within: a process forked from this one caps its native thread pools with what is found
    here now (:func:`native_pools`), the same libraries at the same addresses. For a program
    that forks its workers at once, from its only thread (``ProcessBackend._prefork``)."""
    global _found_before_fork
    _found_before_fork = native_pools(paths, libs)
    try:
        yield
    finally:
        _found_before_fork = None


def user_sets_thread_vars() -> bool:
    """Whether any of :data:`THREAD_ENV_VARS` is set: then the default cap leaves the
    libraries to you."""
    return any(var in os.environ for var in THREAD_ENV_VARS)


def leave_native_threads() -> None:
    """A worker that does not cap: give the libraries back the thread counts the program had
    (the fork server capped them to :data:`SERVER_CAP` for the workers that do)."""
    if _controller is None or _server_original is None:
        return
    for lib, n in zip(_controller.lib_controllers, _server_original, strict=False):
        if lib.num_threads != n:
            lib.set_num_threads(n)


#: what a fork server that is a fork of the program caps the native thread pools to: the cap
#: of a pool with a worker per CPU, the default, so that its workers need not set it
SERVER_CAP = 1
#: a threadpoolctl controller of the libraries this process has loaded, made by a fork server
#: that is a fork of the program (see :func:`prepare_native_limits`), inherited by its workers
_controller: Any = None
#: the thread counts the libraries had in the program, before the server capped them
_server_original: list[int] | None = None


def prepare_native_limits() -> None:
    """In a fork server: find the loaded BLAS/OpenMP libraries once, and cap them, for every
    worker forked from it.

    Capping in a worker is what costs: OpenBLAS parks its thread pool at every fork, and
    setting its thread count in the new process starts the pool again, with threads that
    spin for tens of milliseconds before they sleep (two per worker with numpy's and scipy's
    copies), on CPUs the tasks need. Capped here once, before the forks, a worker with the
    default cap (one thread per worker when there is a worker per CPU) inherits the cap and
    changes nothing; another cap costs it one call with the controller made here.

    When OpenBLAS is the only such library (numpy's and scipy's wheels), it is capped through
    its own C API (~1 ms); otherwise threadpoolctl looks (~10 ms: it resolves the path of
    every loaded library). The server is not ready for its first fork until this is done.
    The server loads no library after this, so the list stays true in its workers;
    libraries a worker loads later are capped by the environment variables.
    """
    global _controller, _server_original
    loaded, libs = native_pools(loaded_libraries())
    if not loaded:
        return
    controller: Any = None
    if libs:
        controller = _OpenBLASControls(libs)
    if controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency
            return
        controller = ThreadpoolController()
    _server_original = [lib.num_threads for lib in controller.lib_controllers]
    controller.limit(limits=SERVER_CAP)
    _controller = controller


class OpenBLAS:
    """One OpenBLAS library of this process, through its own C API (no threadpoolctl)."""

    def __init__(self, get: Any, set_: Any, parallel: Any, lib: Any = None, path: str = "") -> None:
        self._get, self._set, self._parallel = get, set_, parallel
        self._lib = lib
        #: the file it was loaded from (where its code is: :func:`thread_census`)
        self.path = path

    @property
    def num_threads(self) -> int:
        """Its thread count."""
        return int(self._get())

    @property
    def pthreads(self) -> bool:
        """Whether it is the pthreads build (whose pool parks itself at fork)."""
        return int(self._parallel()) == 1

    def set_num_threads(self, n: int) -> None:
        """Set its thread count."""
        self._set(int(n))

    def limit(self, n: int) -> None:
        """Set its thread count to ``n``; lowering it never wakes a parked pool.

        After a fork, a pthreads OpenBLAS's pool is parked (its threads were stopped before
        the fork), and ``openblas_set_num_threads`` starts it again before it stores the
        count: threads that spin for tens of milliseconds on the CPUs the tasks need,
        although with one thread they are never used. Storing a lower count is all that call
        does besides, so on a parked pool the count (``blas_cpu_number``, which the library
        reads at each call) is stored directly; OpenBLAS starts its pool by itself when a
        later call asks for more threads. Anything else goes through the API.
        """
        n = int(n)
        current = self.num_threads
        if n == current:
            return
        state = self._state() if n < current else None
        if state is not None and state[0].value == 0 and state[1].value == current:
            state[1].value = n  # parked, and the count is the one the API reports
        else:
            self.set_num_threads(n)

    def threads_running(self) -> int | None:
        """How many threads its pool has running now, as the library says (none while it is
        parked; else its count less the calling thread); None where the build does not say
        (:meth:`storable`: then :func:`thread_census` looks for them)."""
        if not self.pthreads:
            return 0
        state = self._state()
        if state is None:
            return None
        return 0 if state[0].value == 0 else max(0, self.num_threads - 1)

    def storable(self) -> bool:
        """Whether :meth:`limit` can lower its count without the API once its pool is parked
        (a pthreads build that exports ``blas_server_avail`` and ``blas_cpu_number``; numpy
        2.5's copy, for one, does not)."""
        return self._state() is not None

    def _state(self) -> tuple[Any, Any] | None:
        """(``blas_server_avail``, ``blas_cpu_number``) of a pthreads build that exports them."""
        import ctypes

        if self._lib is None or not self.pthreads:
            return None
        try:
            return (
                ctypes.c_int.in_dll(self._lib, "blas_server_avail"),
                ctypes.c_int.in_dll(self._lib, "blas_cpu_number"),
            )
        except ValueError:  # a build that does not export them
            return None


#: how OpenBLAS builds name their C API (numpy's and scipy's wheels: ``scipy_…64_``)
_OPENBLAS_NAMES = (("", ""), ("", "64_"), ("scipy_", "64_"), ("scipy_", ""))


def openblas_libraries(paths: Collection[str] | None = None) -> list[OpenBLAS]:
    """The OpenBLAS libraries this process has mapped (Linux; elsewhere none), asked through
    their own C API. One that cannot be asked is left out."""
    import ctypes

    paths = loaded_libraries() if paths is None else paths
    if paths is None:
        return []
    names = ((path, path.rsplit("/", 1)[-1].lower()) for path in paths)
    libraries = [path for path, name in names if "openblas" in name and ".so" in name]
    found = []
    for path in sorted(libraries):
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        except (OSError, AttributeError):
            continue
        for prefix, suffix in _OPENBLAS_NAMES:
            fns = [
                getattr(lib, f"{prefix}openblas_{what}{suffix}", None)
                for what in ("get_num_threads", "set_num_threads", "get_parallel")
            ]
            get, set_, parallel = fns
            if get is not None and set_ is not None and parallel is not None:
                found.append(OpenBLAS(get, set_, parallel, lib, path))
                break
    return found


#: how far up a thread's stack :func:`thread_census` looks for a return address: the
#: few frames between a parked OpenBLAS thread's loop and the futex it waits on fit in 1 KiB
STACK_LOOK = 16 * 1024


def thread_census(paths: Collection[str], maps: str | None = None) -> tuple[int, int, int]:
    """This process's other threads, as (waiting in a system call with a return address into
    the code of a library of ``paths`` near the top of their stack, waiting without one,
    running), on Linux; (0, 0, 0) where ``/proc`` cannot tell.

    For an OpenBLAS that does not say whether its pool runs (numpy 2.5's copy): its parked
    threads wait in its own loop, so their stacks hold its addresses; a waiting thread of
    anyone else's (OpenMP, a C extension's, faulthandler's watchdog) does not. A running
    thread (OpenBLAS's spin for ~50 ms after each call) cannot be told apart. Each stack is
    read from ``/proc/self/mem`` (an address that is not mapped is an error there, not a
    crash). ``maps``: :func:`read_maps`, if read already (the libraries' code stays put).
    """
    targets = {os.path.realpath(path) for path in paths}  # as the kernel names them
    maps = read_maps() if maps is None else maps
    if maps is None:
        return 0, 0, 0
    ranges = [
        (lo, hi)
        for lo, hi, perms, path in _map_entries(maps.splitlines())
        if "x" in perms and path in targets
    ]
    try:
        me = str(threading.get_native_id())
        tids = [tid for tid in os.listdir("/proc/self/task") if tid != me]
        mem = os.open("/proc/self/mem", os.O_RDONLY)
    except OSError:
        return 0, 0, 0
    in_code = elsewhere = running = 0
    try:
        for tid in tids:
            try:
                with open(f"/proc/self/task/{tid}/syscall") as f:
                    fields = f.read().split()
            except OSError:  # it has just exited
                continue
            if len(fields) < 3:
                running += 1
                continue
            stack = _read_up(mem, int(fields[-2], 16), STACK_LOOK)
            words = memoryview(stack)[: len(stack) // 8 * 8].cast("Q")
            if any(lo <= word < hi for word in words for lo, hi in ranges):
                in_code += 1
            else:
                elsewhere += 1
    finally:
        os.close(mem)
    return in_code, elsewhere, running


def _read_up(mem: int, address: int, size: int) -> bytes:
    """Up to ``size`` bytes of this process's memory from ``address`` (``mem``: an open
    ``/proc/self/mem``), page by page, up to the first page that is not mapped."""
    out = bytearray()
    while len(out) < size:
        page_end = (address + len(out)) // 4096 * 4096 + 4096
        try:
            chunk = os.pread(
                mem, min(size - len(out), page_end - address - len(out)), address + len(out)
            )
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


def cap_wakes_pools(n: int, paths: Collection[str], libs: list[OpenBLAS] | None = None) -> bool:
    """Whether capping a fork of this process to ``n`` threads would start a thread pool that
    the fork parked: an OpenBLAS above ``n`` whose count cannot be stored directly
    (:meth:`OpenBLAS.storable`), or one that threadpoolctl would set (another native pool
    loaded beside it). ``libs``: :func:`openblas_libraries` of ``paths``, if known."""
    libs = openblas_libraries(paths) if libs is None else libs
    above = [lib for lib in libs if lib.pthreads and lib.num_threads > n]
    if not above:
        return False
    return not _only_openblas_loaded(paths) or not all(lib.storable() for lib in above)


class _OpenBLASControls:
    """What a fork server needs of threadpoolctl's controller, for OpenBLAS alone."""

    def __init__(self, libs: list[OpenBLAS]) -> None:
        self.lib_controllers = libs

    def limit(self, *, limits: int) -> None:
        for lib in self.lib_controllers:
            lib.limit(limits)


#: parts of the file names of the libraries threadpoolctl controls
_NATIVE_POOL_NAMES = ("blas", "libgomp", "libomp", "libiomp", "mkl_rt", "libmkl", "blis")


def read_maps() -> str | None:
    """``/proc/self/maps`` (Linux); None where it cannot be read."""
    try:
        with open("/proc/self/maps") as f:
            return f.read()
    except OSError:
        return None


def _map_entries(lines: Iterable[str]) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, permissions, path) of each line of ``/proc/self/maps`` that names a
    file."""
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6:
            start, _, end = parts[0].partition("-")
            yield int(start, 16), int(end, 16), parts[1], parts[5]


def mapped_files() -> list[str] | None:
    """The paths of the files this process has mapped: shared libraries, shared memory...
    (Linux: one read of ``/proc/self/maps``); None where that cannot be read."""
    maps = read_maps()
    if maps is None:
        return None
    return list({path for _, _, _, path in _map_entries(maps.splitlines())})


#: (``dl_iterate_phdr``, its callback type), once looked up; False where there is none
_dl_iterate: Any = None


def _loader_iterate() -> Any:
    """(``dl_iterate_phdr``, its callback type), or False where the C library has none."""
    global _dl_iterate
    import ctypes

    if _dl_iterate is not None:
        return _dl_iterate
    try:
        iterate = ctypes.CDLL(None).dl_iterate_phdr
    except (OSError, AttributeError):  # not an ELF system with that loader
        _dl_iterate = False
        return False

    class Info(ctypes.Structure):  # the start of struct dl_phdr_info
        _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]

    callback = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(Info), ctypes.c_size_t, ctypes.c_void_p
    )
    iterate.argtypes = [callback, ctypes.c_void_p]
    iterate.restype = ctypes.c_int
    _dl_iterate = (iterate, callback)
    return _dl_iterate


def loaded_libraries() -> list[str] | None:
    """The paths of the shared libraries this process has loaded: from the dynamic loader
    itself (``dl_iterate_phdr``: ~0.1 ms), else from :func:`mapped_files` (a read of
    ``/proc/self/maps``: ~2.5 ms with numpy and scipy); None where neither can tell."""
    found = _loader_iterate()
    if not found:
        return mapped_files()
    iterate, callback = found
    names: list[str] = []

    def one(info: Any, _size: int, _data: Any) -> int:
        name = info.contents.name
        if name:
            names.append(os.fsdecode(name))
        return 0

    iterate(callback(one), None)
    return names


def shm_mapped() -> int | None:
    """The bytes of ``/dev/shm`` files this process has mapped (shared arrays, semaphores,
    multiprocessing's heap); None where ``/proc/self/maps`` cannot be read."""
    maps = read_maps()
    return None if maps is None else shm_in(maps)


def shm_in(maps: str) -> int:
    """:func:`shm_mapped` of ``maps`` (:func:`read_maps`): its lines are looked at only when
    one names ``/dev/shm``."""
    if "/dev/shm/" not in maps:
        return 0
    lines = (line for line in maps.splitlines() if "/dev/shm/" in line)
    return sum(end - start for start, end, _, _ in _map_entries(lines))


def _native_pools_loaded(paths: Collection[str] | None = None) -> bool:
    """Whether a BLAS or OpenMP library is already loaded in this process (Linux: from
    the loader or ``/proc/self/maps``; elsewhere assumed, so threadpoolctl looks)."""
    paths = loaded_libraries() if paths is None else paths
    if paths is None:
        return True
    return any(part in path.lower() for path in paths for part in _NATIVE_POOL_NAMES)


def _only_openblas_loaded(paths: Collection[str]) -> bool:
    """Whether OpenBLAS is the only library with a thread pool among ``paths``: no other
    shared library (``lib*.so``, not a Python extension module) names BLAS, OpenMP, MKL or
    BLIS."""
    names = (path.rsplit("/", 1)[-1].lower() for path in paths)
    return not any(
        name.startswith("lib")
        and "openblas" not in name
        and any(part in name for part in _NATIVE_POOL_NAMES)
        for name in names
    )


def limit_in_process(n: int) -> Any:
    """Cap the BLAS/OpenMP thread pools of this process while an in-process pool is open.

    Only :mod:`threadpoolctl` (the caller's environment variables are left alone); the
    returned limiter's ``restore_original_limits()`` undoes it.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency
        return None
    return threadpool_limits(limits=n)


def run_finalizer(
    finalizer: Callable[..., object], ctx: WorkerContext | None
) -> BaseException | None:
    """Run ``finalizer()`` as worker ``ctx``; return its exception instead of raising it."""
    token = set_current_worker(ctx)
    try:
        call_sync(finalizer, (), {})
    except BaseException as exc:  # SystemExit too: the worker is stopping anyway
        return exc
    finally:
        reset_current_worker(token)
    return None


def log_finalizer_error(backend: str, worker_id: int, exc: BaseException) -> None:
    """Log a finalizer's error on the ``anypool`` logger, naming the worker."""
    log.error(
        "the finalizer of %s worker %d raised %s: %s",
        backend,
        worker_id,
        type(exc).__name__,
        exc,
        exc_info=exc,
    )


def log_finalizer_timeout(backend: str, worker_id: int, seconds: float, what: str) -> None:
    """Log a finalizer that did not return within ``finalizer_timeout``."""
    log.error(
        "the finalizer of %s worker %d did not return within finalizer_timeout=%gs; %s",
        backend,
        worker_id,
        seconds,
        what,
    )


def raise_broadcast_errors(
    backend: str, fn: Callable[..., Any], errors: dict[int, BaseException]
) -> None:
    """Raise the error of the lowest-numbered failing worker, with a note naming it."""
    if not errors:
        return
    wid = min(errors)
    exc = errors[wid]
    name = getattr(fn, "__qualname__", repr(fn))
    others = len(errors) - 1
    exc.add_note(
        f"raised by broadcast {name}() on {backend} worker {wid}"
        + (f" ({others} other worker(s) failed too: {sorted(errors)})" if others else "")
    )
    raise exc
