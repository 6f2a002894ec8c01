"""One watcher thread per pool that fires callbacks at deadlines (task timeouts)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class DeadlineWatcher:
    """Calls ``callback()`` at ``deadline`` unless the returned handle was cancelled first."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, list[Callable[[], None] | None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, delay: float, callback: Callable[[], None]) -> list[Callable[[], None] | None]:
        """Schedule ``callback`` in ``delay`` seconds; ``handle[0] = None`` cancels it."""
        handle: list[Callable[[], None] | None] = [callback]
        with self._cond:
            if self._closed:
                return handle
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    @staticmethod
    def cancel(handle: list[Callable[[], None] | None]) -> None:
        """Cancel a scheduled callback (safe to call more than once)."""
        handle[0] = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._heap and self._heap[0][2][0] is None:
                        heapq.heappop(self._heap)
                        continue
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        _, _, handle = heapq.heappop(self._heap)
                        cb = handle[0]
                        handle[0] = None
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else None)
            if cb is not None:
                cb()

    def close(self) -> None:
        """Stop the watcher thread; pending callbacks never fire."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
