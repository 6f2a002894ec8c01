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
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.forkserver as mp_forkserver
import os
import sys
import threading
from typing import Any

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

_lock = threading.Lock()
#: the modules the running server preloaded (None: not started by us, or not running)
_server_has: frozenset[str] | None = None
_stats = {"starts": 0}


def enabled() -> bool:
    """False when ``ANYPOOL_PRELOAD=0`` turns preloading off."""
    return os.environ.get("ANYPOOL_PRELOAD", "1").strip().lower() not in ("0", "false", "no")


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


def prepare(ctx: Any) -> None:
    """Before a worker starts from the fork server: make the server preload what it should.

    Call it with anypool's spawn lock held (:data:`spawn_lock`), so that no other pool starts
    a worker while the server is being replaced.
    """
    global _server_has
    modules = wanted() if enabled() else frozenset()
    server: Any = getattr(mp_forkserver, "_forkserver", None)
    running = server is not None and getattr(server, "_forkserver_pid", None) is not None
    if running and _server_has is not None and modules <= _server_has:
        return
    if running:
        if _server_has is None and not modules:
            return  # a server we did not start, and nothing to add: use it as it is
        if _server_children_alive():
            return  # its children report through it: never stop it under them
        server._stop()
    preload = sorted(modules | (_server_has or frozenset()))
    ctx.set_forkserver_preload([WORKER_MODULE, *preload])
    _server_has = frozenset(preload)
    _stats["starts"] += 1


def server_has() -> frozenset[str]:
    """The modules the fork server we started preloads (empty: none started yet)."""
    return _server_has or frozenset()


#: held while a worker process starts, so the fork server is never replaced meanwhile
spawn_lock = threading.Lock()
