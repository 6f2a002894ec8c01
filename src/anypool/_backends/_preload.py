"""The fork server's preload: workers start with the modules this program has imported.

A process worker started from the fork server is a fork of that server, so it starts with
whatever the server imported. By default the server imports only anypool's worker module,
and every new worker then imports numpy, scipy, pandas... again (scipy alone takes ~0.7 s).
Here the server is made to preload the packages the parent has imported: the first pool
after ``import scipy`` starts (or restarts) the server with scipy in it, and every worker
after that starts with scipy already imported, in milliseconds.

Safety limits, which the README's process-backend section repeats:

- The server is restarted only while no process started from it is alive (ours or the
  program's own ``forkserver`` processes): a running server's children report their exit
  through it, so stopping it under them would make them look crashed. While one is alive,
  new workers come from the server as it is, and import what they need themselves.
- Only third-party packages are preloaded (not the standard library, ``__main__`` or
  private modules), up to two levels deep (``scipy.signal``, not every submodule), and never
  a package known to start threads, open connections or initialise MPI at import
  (:data:`NEVER`). A package that starts a thread at import anyway would make the server a
  threaded process that forks: set ``ANYPOOL_PRELOAD=0`` to turn preloading off.
- Preloading happens once per new set of packages, in the server: it costs the program
  those imports once, not once per worker or per pool.

A faster way to the same server, taken when it is safe (:func:`fork_server`): when a process
pool starts in a program that is single-threaded, the server is made by forking the program
itself, as Android's zygote is. It then has every module the program has imported, at the
cost of one fork instead of importing them again (scipy: ~0.5 s), and serves workers with
multiprocessing's own fork-server protocol. It is taken only when:

- the platform is Linux and Python is 3.11-3.13 (whose fork server this module knows);
- the calling thread is the main thread and the only Python thread, and every other thread of
  the process belongs to OpenBLAS's own thread pool, which parks itself at fork (pthreads
  build, ``pthread_atfork``). Any other native thread (OpenMP, MKL, a C extension's) rules
  it out; where OpenBLAS does not say whether its pool runs, its waiting threads are told
  apart by their stacks (:func:`_others_than_openblas`);
- no more than :data:`SHM_ALLOWANCE` of shared memory (``/dev/shm``) is mapped: the server
  would keep a shared array alive after the program freed it (semaphores and
  multiprocessing's heap, a page each, are allowed).

In the server, inherited sockets and pipes other than standard input/output/error are
replaced by ``/dev/null`` at once, so the server never keeps a connection or a pipe of the
program open. Workers then start from a snapshot of the program taken at that moment:
modules are as they were then (as with ``fork``), and ``__main__`` is not run again.
``ANYPOOL_PRELOAD=import`` keeps the importing server only; ``ANYPOOL_PRELOAD=0`` turns both
off.

Under the same conditions a pool that starts its workers before its first task
(``pool.share()``) forks them straight from the program (:class:`ForkedWorker`), as the
``fork`` start method does: each lets go of the program's sockets and pipes as the server
does, and forgets the program's server. Where a worker's BLAS cap would wake OpenBLAS's
parked thread pool (a build that does not export its thread count), the server is forked
again instead (:func:`refork`) and caps once for the workers it forks.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import multiprocessing.forkserver as mp_forkserver
import os
import socket
import stat
import sys
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .._core._lifecycle import OpenBLAS

#: what the server always preloads: the worker's own code
WORKER_MODULE = "anypool._backends._process_worker"
#: packages never preloaded: they start threads or connections, initialise MPI, hold
#: terminal or kernel state, or are tooling that a worker does not need
NEVER: frozenset[str] = frozenset(
    {
        "anypool",
        "IPython",
        "ipykernel",
        "ipywidgets",
        "jupyter_client",
        "jupyter_core",
        "zmq",
        "tornado",
        "traitlets",
        "debugpy",
        "comm",
        "prompt_toolkit",
        "pytest",
        "_pytest",
        "pluggy",
        "pip",
        "setuptools",
        "pkg_resources",
        "_distutils_hack",
        "mpi4py",
        "parsl",
        "distributed",
        "playwright",
        "greenlet",
        "gevent",
        "eventlet",
        "tqdm",
        "psutil",
        "coverage",
        "hypothesis",
        "mypy",
        "ruff",
    }
)

#: the shared memory (``/dev/shm``) a program may have mapped and still be forked into the
#: server or workers: semaphores and multiprocessing's heap (each worker's progress slot),
#: a page each; not a shared array, which the fork would keep after the program freed it
SHM_ALLOWANCE = 2**20
#: a thread Python has just joined (a closed pool's dispatcher) can still be leaving the
#: system's list of this process's threads for a moment: before a stranger thread rules a
#: fork out, the threads are looked at again this many times, this many seconds apart
SETTLE_TRIES, SETTLE_WAIT = 3, 0.001

_lock = threading.Lock()
#: the modules the running server preloaded (None: not started by us, or not running)
_server_has: frozenset[str] | None = None
_stats = {"starts": 0, "forked": 0}
#: the running server is a fork of this program (replaced only by another fork)
_forked = False
#: (the forked server's pid, the shared arrays it started with: see _shared._INHERITED)
_inherits: tuple[int | None, frozenset[str]] = (None, frozenset())


def _setting() -> str:
    return os.environ.get("ANYPOOL_PRELOAD", "1").strip().lower()


def enabled() -> bool:
    """False when ``ANYPOOL_PRELOAD=0`` turns preloading off."""
    return _setting() not in ("0", "false", "no")


def fork_enabled() -> bool:
    """False when ``ANYPOOL_PRELOAD`` is ``0`` or ``import`` (import in a fresh server only)."""
    return enabled() and _setting() != "import"


def wanted() -> frozenset[str]:
    """The third-party modules this program has imported that a worker should start with."""
    stdlib = sys.stdlib_module_names
    out = set()
    for name, mod in list(sys.modules.items()):
        if mod is None or name.count(".") > 1:
            continue
        parts = name.split(".")
        top = parts[0]
        if top in stdlib or top in NEVER or any(p.startswith("_") for p in parts):
            continue
        if getattr(mod, "__file__", None) is None:  # namespace packages, built-ins
            continue
        out.add(name)
    return frozenset(out)


def _server_children_alive() -> bool:
    """Whether a process started from the fork server (by anyone here) is still running."""
    from multiprocessing import popen_forkserver

    return any(
        isinstance(getattr(p, "_popen", None), popen_forkserver.Popen) for p in mp.active_children()
    )


def _server() -> tuple[Any, bool]:
    server: Any = getattr(mp_forkserver, "_forkserver", None)
    running = server is not None and getattr(server, "_forkserver_pid", None) is not None
    return server, running


def _others_than_openblas(libs: list[OpenBLAS], threads: int, maps: str | None = None) -> bool:
    """Whether, of this process's ``threads`` OS threads, one besides the caller is not one
    of OpenBLAS's own (its pthreads pools park at fork: the fork stops them).

    Each OpenBLAS library this process has mapped is asked through its own C API (~1 ms;
    threadpoolctl would resolve every loaded library's path first, ~10 ms on the program's
    critical path). Where a build does not say whether its pool runs (numpy 2.5's copy), the
    threads are looked at (:func:`~anypool._core._lifecycle.thread_census`): one waiting
    outside OpenBLAS's code is another's; a running one, which cannot be told apart, is
    taken for OpenBLAS's up to that library's thread count. A library that cannot be asked
    counts as none: then threads are left unaccounted for, and the program is not forked.
    ``maps``: ``/proc/self/maps``, if read already.
    """
    from .._core._lifecycle import thread_census

    others = threads - 1
    told = [lib.threads_running() for lib in libs]
    known = sum(n for n in told if n is not None)
    untold = [lib for lib, n in zip(libs, told, strict=True) if n is None]
    if not untold or others <= known:
        return others > known
    in_code, elsewhere, running = thread_census([lib.path for lib in libs], maps)
    most = known + sum(max(0, lib.num_threads - 1) for lib in untold)
    return elsewhere > 0 or in_code + running > most


def _settles(libs: list[OpenBLAS] | None, maps: str | None = None) -> bool:
    """Whether the threads besides OpenBLAS's were leaving: gone within a few looks."""
    for _ in range(SETTLE_TRIES):
        _pause_to_settle()
        try:
            os_threads = len(os.listdir("/proc/self/task"))
        except OSError:
            return False
        if os_threads == 1 or not _others_than_openblas(libs or [], os_threads, maps):
            return True
    return False


def _pause_to_settle() -> None:
    time.sleep(SETTLE_WAIT)


def fork_safe(cap: int | None = None) -> str | None:
    """Why this process must not be forked into a fork server now (None: it may).

    With ``cap``, for workers forked from it that cap native thread pools to ``cap``: also
    when that cap would start a thread pool the fork parked (see
    :func:`~anypool._core._lifecycle.cap_wakes_pools`).
    """
    return fork_check(cap)[0]


def fork_check(
    cap: int | None = None,
) -> tuple[str | None, list[str] | None, list[OpenBLAS] | None]:
    """:func:`fork_safe`'s answer, with what it found to give it: the shared libraries this
    process has loaded and, where it asked them, its OpenBLAS libraries (None: not asked)."""
    if sys.platform != "linux" or not (3, 11) <= sys.version_info[:2] < (3, 14):
        return "not Linux with Python 3.11-3.13", None, None
    if threading.current_thread() is not threading.main_thread():
        return "not called from the main thread", None, None
    if threading.active_count() != 1:
        return "the program runs other Python threads", None, None
    from .._core._lifecycle import (
        cap_wakes_pools,
        loaded_libraries,
        openblas_libraries,
        read_maps,
        shm_in,
    )

    maps = read_maps()  # once: for shared memory, and for the threads' stacks below
    try:
        os_threads = len(os.listdir("/proc/self/task"))
    except OSError:
        maps = None
    if maps is None:
        return "/proc is not readable", None, None
    paths = loaded_libraries()
    if paths is None:
        return "the loaded libraries cannot be listed", None, None
    if shm_in(maps) > SHM_ALLOWANCE:
        return "shared memory is mapped", paths, None
    libs = openblas_libraries(paths) if os_threads > 1 or cap is not None else None
    if (
        os_threads > 1
        and _others_than_openblas(libs or [], os_threads, maps)
        and not _settles(libs, maps)
    ):
        return "native threads other than OpenBLAS's are running", paths, libs
    if cap is not None and cap_wakes_pools(cap, paths, libs):
        return "capping OpenBLAS in a forked worker would start its thread pool", paths, libs
    return None, paths, libs


def _keep(running: bool, modules: frozenset[str]) -> bool:
    """Whether the running server stays as it is (the rule both ways of replacing it follow)."""
    if not running:
        return False
    if _server_has is None and not modules:
        return True  # a server we did not start, and nothing to add: use it as it is
    if _server_has is not None and modules <= _server_has:
        return True  # it has what this program imported
    return _server_children_alive()  # its children report through it: never stop it under them


def fork_server(ctx: Any) -> bool:
    """Make the fork server a fork of this program, when that is safe and needed.

    Called as a process pool starts, in the caller's thread. True when a server was forked.
    The common case, a server that has what the program imported, costs one pass over
    ``sys.modules``.
    """
    if not fork_enabled() or ctx.get_start_method() != "forkserver":
        return False
    server, running = _server()
    if server is None:
        return False
    _import_for_workers()
    modules = wanted()
    if _keep(running, modules) or fork_safe() is not None:
        return False
    _fork_now(server, running, modules)
    return True


def refork(ctx: Any) -> bool:
    """Fork the fork server again now, so that workers started from it from now on have what
    the program holds now (an array ``pool.share()`` has just registered).

    Done only where :func:`fork_server` would fork the program, and only while no process of
    the running server lives (they report through it). False when it was not done. Taken
    where the workers cannot be forked from the program itself (see
    ``ProcessBackend._prefork``).
    """
    if not fork_enabled() or ctx.get_start_method() != "forkserver":
        return False
    server, running = _server()
    if server is None or (running and _server_children_alive()) or fork_safe() is not None:
        return False
    _import_for_workers()
    _fork_now(server, running, wanted())
    return True


def _import_for_workers() -> None:
    """What every worker uses, imported here first so that a forked server has it too."""
    import cloudpickle  # noqa: F401 - every pool pickles with it

    importlib.import_module(WORKER_MODULE)


def _fork_now(server: Any, running: bool, modules: frozenset[str]) -> None:
    """Replace the server (none of its processes lives) by a fork of this program, which has
    imported ``modules`` (:func:`wanted`)."""
    global _server_has, _forked
    if running:
        _stop_without_waiting(server)
    _start_forked(server)
    _server_has = modules
    _forked = True
    _stats["starts"] += 1
    _stats["forked"] += 1


#: servers asked to stop and not reaped yet (see _stop_without_waiting)
_stopping: list[int] = []


def _stop_without_waiting(server: Any) -> None:
    """``ForkServer._stop``, without waiting for the old server to exit.

    It exits as soon as it sees its "alive" pipe closed, once it is done with what it was
    doing (a server forked a moment ago is still capping thread pools: ~10 ms the program
    would wait for). It is reaped at the next start of a server, or by the system at exit.
    """
    from multiprocessing import util

    with server._lock:
        if server._forkserver_pid is None:
            return
        os.close(server._forkserver_alive_fd)
        _stopping.append(server._forkserver_pid)
        address = server._forkserver_address
        server._forkserver_alive_fd = None
        server._forkserver_pid = None
        server._forkserver_address = None
        if address is not None and not util.is_abstract_socket_namespace(address):
            try:
                os.unlink(address)
            except OSError:  # pragma: no cover - already gone
                pass


def _reap() -> None:
    """Reap the stopped servers that have exited."""
    for pid in list(_stopping):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _stopping.remove(pid)


def inherits() -> tuple[int | None, frozenset[str]]:
    """(The running server's pid, the shared arrays its workers start with): empty unless
    the server is the fork of this program that :func:`fork_server` or :func:`refork` made."""
    server, running = _server()
    pid = getattr(server, "_forkserver_pid", None) if running else None
    if not _forked or pid is None or pid != _inherits[0]:
        return (pid, frozenset())
    return _inherits


def _start_forked(server: Any) -> None:
    """multiprocessing's ``ForkServer.ensure_running``, with a fork of this process."""
    global _inherits
    from multiprocessing import connection, resource_tracker, util

    from ._shared import inherited_now

    _reap()

    resource_tracker.ensure_running()
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    with socket.socket(socket.AF_UNIX) as listener:
        address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):
            os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()
        tokens = inherited_now()  # before the fork: the server has at least these
        try:
            with warnings.catch_warnings():
                # Python 3.12+ warns of fork with threads: the only others are OpenBLAS's
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                _serve(listener.fileno(), alive_r, alive_w)
        except BaseException:
            os.close(alive_w)
            raise
        finally:
            os.close(alive_r)
        server._forkserver_address = address
        server._forkserver_alive_fd = alive_w
        server._forkserver_pid = pid
        _inherits = (pid, tokens)


def _serve(listener_fd: int, alive_r: int, alive_w: int) -> NoReturn:
    """The forked server: let go of the program's connections, then serve forks."""
    code = 0
    try:
        os.close(alive_w)
        _let_go(keep={0, 1, 2, listener_fd, alive_r})
        _get_ready()
        mp_forkserver.main(listener_fd, alive_r, [])
    except SystemExit:
        pass
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _get_ready() -> None:
    """What every worker would otherwise do as it starts, done once here while the program
    goes on: find the native thread pools to cap, import the shared-object loader."""
    from .._core._lifecycle import prepare_native_limits

    try:
        prepare_native_limits()
        importlib.import_module("anypool._backends._shared")
    except Exception:  # pragma: no cover - each worker then does it itself
        pass


def _open_fds() -> frozenset[int]:
    """The descriptors this process has open."""
    try:
        return frozenset(int(name) for name in os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - no /proc: nothing is let go of
        return frozenset()


def _let_go(keep: set[int], only: frozenset[int] | None = None) -> None:
    """Point inherited sockets and pipes (of ``only``, if given) at /dev/null (numbers stay
    taken: nothing reuses one under a Python object that still holds it)."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in _open_fds() if only is None else only:
            if fd in keep or fd == null:
                continue
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
                    os.dup2(null, fd, inheritable=False)
            except OSError:
                continue  # the listing's own descriptor, already closed
    finally:
        os.close(null)


def prepare(ctx: Any) -> None:
    """Before a worker starts from the fork server: make the server preload what it should.

    Call it with anypool's spawn lock held (:data:`spawn_lock`), so that no other pool starts
    a worker while the server is being replaced.
    """
    global _server_has, _forked
    modules = wanted() if enabled() else frozenset()
    server, running = _server()
    if running and _forked:
        return  # a forked server is replaced only by another fork, from the main thread
    if _keep(running, modules):
        return
    if running:
        server._stop()
    _forked = False
    preload = sorted(modules | (_server_has or frozenset()))
    ctx.set_forkserver_preload([WORKER_MODULE, *preload])
    _server_has = frozenset(preload)
    _stats["starts"] += 1


class ForkedWorker(mp.process.BaseProcess):
    """A worker forked straight from this program (see ``ProcessBackend._prefork``).

    multiprocessing's ``fork`` start method, without making ``fork`` the child's default
    start method: pools the worker starts use the program's default, as a worker started
    from the fork server does.
    """

    _start_method = None
    #: the descriptors the program had open as the worker was forked, bar the worker's own
    #: pipe (what the worker lets go of: not the pipes ``Popen`` makes for the fork itself)
    program_fds: frozenset[int] = frozenset()

    @staticmethod
    def _Popen(process_obj: Any) -> Any:  # multiprocessing's name for it
        from multiprocessing.popen_fork import Popen

        process_obj.program_fds = _open_fds()
        with warnings.catch_warnings():
            # Python 3.12+ warns of fork with threads: the only others are OpenBLAS's
            warnings.simplefilter("ignore", DeprecationWarning)
            return Popen(process_obj)


def forked_worker(conn: Any, *args: Any) -> None:
    """The start of a :class:`ForkedWorker`: let go of what belongs to the program, as the
    forked fork server does, then run the worker."""
    global _server_has, _forked, _inherits
    server, _ = _server()
    if server is not None:  # the program's fork server: a pool started here starts its own
        server._forkserver_pid = None
        server._forkserver_address = None
        server._forkserver_alive_fd = None
    _server_has, _forked, _inherits = None, False, (None, frozenset())
    _stopping.clear()
    keep = {0, 1, 2, conn.fileno()}
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_fd", None)
    if isinstance(tracker, int):
        keep.add(tracker)  # shared memory the worker makes is registered with the program's
    this = mp.current_process()
    _let_go(keep, getattr(this, "program_fds", None))
    from ._process_worker import main

    main(conn, *args)


def server_has() -> frozenset[str]:
    """The modules the fork server we started preloads (empty: none started yet)."""
    return _server_has or frozenset()


#: held while a worker process starts, so the fork server is never replaced meanwhile
spawn_lock = threading.Lock()
