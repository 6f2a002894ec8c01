"""Memory limits of process workers: parsing the options and measuring a worker (private).

``max_memory_per_worker=`` and ``task_memory_limit=`` take a number of bytes or a string
such as ``"2GB"``, ``"500MB"`` or ``"1.5GiB"`` (decimal units are powers of 1000, binary
ones powers of 1024). A worker's size is its *private resident memory*: on Linux the
resident pages of ``/proc/<pid>/statm`` minus the file-backed and shared ones, that is the
anonymous memory the process itself wrote (its heap, its arrays); memory-mapped files and
shared memory (``pool.share``) are not counted, as the kernel can drop or share those pages.
Elsewhere it is psutil's resident set size.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._abc import Backend

#: seconds between two samples of a busy worker's size (the task_memory_limit watchdog)
WATCH_INTERVAL: Final = 0.02

_UNITS: Final = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*")


def parse_size(option: str, value: object) -> int | None:
    """``value`` of the option ``option`` as a number of bytes (``None`` stays ``None``).

    Accepts a positive int, or a string: a number and an optional unit (``B``, ``KB``,
    ``MB``, ``GB``, ``TB``, ``KiB``, ``MiB``, ``GiB``, ``TiB``; case-insensitive).
    """
    if value is None:
        return None
    example = f'{option}="2GB" (or "500MB", "1.5GiB", or a number of bytes)'
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(
            f"{option} must be a number of bytes or a size string, got {value!r}; "
            f"for example {example}"
        )
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.fullmatch(value)
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _UNITS:
            raise ValueError(
                f"{option}={value!r} is not a size; use a number and a unit (B, KB, MB, GB, TB, "
                f"KiB, MiB, GiB, TiB), for example {example}"
            )
        n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise ValueError(
            f"{option} must be more than 0 bytes, got {value!r}; for example {example}"
        )
    return n


def check_memory_options(cls: type[Backend], given: set[str]) -> None:
    """Refuse memory options the backend ``cls`` cannot honour, naming the process backend."""
    refused = sorted(given - cls.memory_options)
    if not refused:
        return
    names = " and ".join(f"{n}=" for n in refused)
    if cls.shares_memory:
        why = (
            "its tasks share one process (the caller's), so there is no per-worker or "
            "per-task memory to limit"
        )
    else:
        why = "anypool does not watch the memory of that backend's workers"
    raise ValueError(
        f"{names} cannot be used with backend={cls.name!r}: {why}. Memory limits need the "
        "process backend: use backend='process' (or 'auto', which then runs on processes)"
    )


def format_size(n: int) -> str:
    """``n`` bytes for a message: ``"312.4 MB"``."""
    if n >= 1000**3:
        return f"{n / 1000**3:.2f} GB"
    return f"{n / 1000**2:.1f} MB"


_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_HAS_PROC: Final = sys.platform.startswith("linux") and os.path.exists("/proc/self/statm")


def private_rss(pid: int | None = None) -> int | None:
    """The private resident memory of process ``pid`` (default: this one) in bytes.

    ``None`` when the process is gone (or cannot be read).
    """
    if _HAS_PROC:
        path = "/proc/self/statm" if pid is None else f"/proc/{pid}/statm"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fields = os.read(fd, 128).split()
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(fields) < 3:
            return None
        return (int(fields[1]) - int(fields[2])) * _PAGE
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except (psutil.Error, OSError):
        return None
