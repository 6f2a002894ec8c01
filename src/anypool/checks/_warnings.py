"""Warning categories of anypool's runtime checks.

Hierarchy::

    UserWarning
     └── AnypoolWarning
          ├── BlockedEventLoopWarning
          └── CPUBoundInThreadsWarning

Filter them all with ``warnings.simplefilter("ignore", anypool.AnypoolWarning)``.
"""

from __future__ import annotations

__all__ = ("AnypoolWarning", "BlockedEventLoopWarning", "CPUBoundInThreadsWarning")


class AnypoolWarning(UserWarning):
    """Base class of every warning anypool issues."""


class BlockedEventLoopWarning(AnypoolWarning):
    """An asyncio event loop was blocked longer than the threshold given to ``watch()``."""


class CPUBoundInThreadsWarning(AnypoolWarning):
    """CPU-bound work runs on threads of a GIL build, where threads cannot speed it up."""
