"""Find common concurrency mistakes: static rules (``anypool check``) and runtime warnings.

The static checker reads Python source (it never imports or runs it) and reports each
problem as a :class:`Diagnostic` with a stable rule code (see :data:`RULES`). The runtime
side, :func:`watch`, warns while a program runs when an event loop is blocked or when
CPU-bound work is sent to threads.
"""

from ._api import check_paths as check_paths
from ._api import check_source as check_source
from ._model import RULES as RULES
from ._model import Diagnostic as Diagnostic
from ._model import Rule as Rule
from ._runtime import LoopWatcher as LoopWatcher
from ._runtime import report_thread_task as report_thread_task
from ._runtime import watch as watch
from ._runtime import watch_loop as watch_loop
from ._warnings import AnypoolWarning as AnypoolWarning
from ._warnings import BlockedEventLoopWarning as BlockedEventLoopWarning
from ._warnings import CPUBoundInThreadsWarning as CPUBoundInThreadsWarning

__all__ = (
    "RULES",
    "AnypoolWarning",
    "BlockedEventLoopWarning",
    "CPUBoundInThreadsWarning",
    "Diagnostic",
    "LoopWatcher",
    "Rule",
    "check_paths",
    "check_source",
    "report_thread_task",
    "watch",
    "watch_loop",
)
