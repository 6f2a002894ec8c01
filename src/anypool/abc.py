"""Public abstract base classes: implement :class:`Backend` to add a backend."""

from ._core._abc import Backend as Backend
from ._core._abc import PoolStats as PoolStats
from ._core._abc import WorkerSpec as WorkerSpec
from ._core._tasks import ChunkResult as ChunkResult

__all__ = ("Backend", "ChunkResult", "PoolStats", "WorkerSpec")
