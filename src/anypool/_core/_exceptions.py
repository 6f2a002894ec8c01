"""All of anypool's exceptions.

Hierarchy::

    AnypoolError
     ├── ClosedPoolError (also RuntimeError)      submit/map after shutdown
     ├── BrokenPoolError (also BrokenExecutor)    the pool can no longer run tasks
     │    └── InitializerError                    a worker's initializer raised
     ├── WorkerCrashed (also BrokenProcessPool)   a worker died while holding a task
     │    └── MemoryLimitExceeded                 ... ended: it outgrew task_memory_limit
     ├── TaskTimeoutError (also TimeoutError)     a task ran longer than task_timeout
     ├── PicklingError (also TypeError)          cannot send a function/argument/result
     ├── RemoteError                              a worker's exception that could not be pickled
     └── AnypoolInternalError                     a bug in anypool: please report it

Exceptions raised by *your* function are re-raised as themselves (same type and message); the
worker's traceback is attached as ``__cause__`` (a :class:`RemoteTraceback`) when the task ran
in another process.
"""

from __future__ import annotations

import pickle
import traceback
from concurrent.futures import BrokenExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any


class AnypoolError(Exception):
    """Base class of every error anypool raises itself."""


class ClosedPoolError(AnypoolError, RuntimeError):
    """The pool was shut down; no new work can be submitted to it."""


class BrokenPoolError(AnypoolError, BrokenExecutor):
    """The pool cannot run tasks any more (for example, an initializer failed)."""


class InitializerError(BrokenPoolError):
    """A worker's ``initializer`` raised; the original error is the ``__cause__``."""


class WorkerCrashed(AnypoolError, BrokenProcessPool):
    """A worker process died while it held a task.

    Only the task(s) that worker held fail with this error; the pool replaces the worker and
    goes on. It subclasses :class:`concurrent.futures.process.BrokenProcessPool`, so code
    written for the standard library still catches it.

    Attributes:
        pid: the dead worker's process id.
        exitcode: its exit code (negative: killed by that signal number).
        task: a short description of the task it held.
    """

    def __init__(
        self,
        message: str,
        pid: int | None = None,
        exitcode: int | None = None,
        task: str | None = None,
    ) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode
        self.task = task

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.pid, self.exitcode, self.task))


class MemoryLimitExceeded(WorkerCrashed):
    """A task's worker process grew past ``task_memory_limit``; it was ended and replaced.

    Only that task fails. It is retried only when ``retry_on`` names this class or
    :class:`WorkerCrashed` (the default ``retry_on=Exception`` does not: the same input
    would most likely outgrow the limit again).

    Attributes:
        limit: the limit, in bytes.
        reached: the worker's private resident memory when it was ended, in bytes.

    .. versionadded:: 0.3
    """

    #: retry_on must name an anypool class that includes it (see ``Retry.covers``)
    retried_only_when_named = True

    def __init__(
        self,
        message: str,
        pid: int | None = None,
        exitcode: int | None = None,
        task: str | None = None,
        limit: int = 0,
        reached: int = 0,
    ) -> None:
        super().__init__(message, pid, exitcode, task)
        self.limit = limit
        self.reached = reached

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (str(self), self.pid, self.exitcode, self.task, self.limit, self.reached),
        )


class TaskTimeoutError(AnypoolError, TimeoutError):
    """A task ran longer than its ``task_timeout``; it subclasses the builtin ``TimeoutError``."""


class PicklingError(AnypoolError, pickle.PicklingError, TypeError):
    """A function, argument or result could not be sent to or from a worker process.

    The message names the object and suggests a fix (a module-level function, plain-data
    arguments, or ``backend="thread"``, which needs no pickling).
    """


class RemoteError(AnypoolError):
    """A worker raised an exception that could not be sent back as itself.

    Raised in place of an exception that cannot be pickled or rebuilt in the caller (for
    example one whose ``__init__`` takes other arguments). It keeps the original type's
    name, the message and the worker's traceback text.

    Attributes:
        type_name: qualified name of the original exception's type.
        message: ``str()`` of the original exception.
        traceback_text: the worker's formatted traceback.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback_text))

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}\n\nWorker traceback:\n{self.traceback_text}"


class AnypoolInternalError(AnypoolError):
    """Something went wrong inside anypool itself. Please file a bug with the traceback."""


class RemoteTraceback(Exception):
    """Carries the text of a traceback from a worker process; set as ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _type_name(exc: BaseException) -> str:
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class ExceptionCarrier:
    """A picklable stand-in for an exception raised in another process (private)."""

    __slots__ = ("payload", "type_name", "message", "tb")

    def __init__(self, exc: BaseException) -> None:
        self.tb = "".join(traceback.format_exception(exc))
        self.type_name = _type_name(exc)
        try:
            self.message = str(exc)
        except Exception as str_exc:  # a broken __str__ must not take the worker down
            self.message = f"<str() of the exception failed: {type(str_exc).__name__}: {str_exc}>"
        payload: bytes | None
        try:
            payload = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.loads(payload)  # can it be rebuilt on the other side?
        except Exception:
            payload = None
        if payload is None:
            # a class that travelled by value (defined in __main__ or a function): cloudpickle
            # sends it back, and the caller gets its own class again (same object)
            try:
                import cloudpickle

                payload = bytes(cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL))
                pickle.loads(payload)
            except Exception:
                payload = None
        self.payload = payload

    def __getstate__(self) -> tuple[bytes | None, str, str, str]:
        return (self.payload, self.type_name, self.message, self.tb)

    def __setstate__(self, state: tuple[bytes | None, str, str, str]) -> None:
        self.payload, self.type_name, self.message, self.tb = state

    def rebuild(self) -> BaseException:
        """Return the original exception with the worker's traceback as ``__cause__``."""
        exc: BaseException
        if self.payload is not None:
            try:
                exc = pickle.loads(self.payload)
            except Exception:
                exc = RemoteError(self.type_name, self.message, self.tb)
        else:
            exc = RemoteError(self.type_name, self.message, self.tb)
        exc.__cause__ = RemoteTraceback(f'\n"""\n{self.tb}"""')
        return exc
