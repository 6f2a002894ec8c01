"""Data types of the checker: :class:`Diagnostic`, :class:`Rule` and the rule table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ("RULES", "SYNTAX_ERROR", "Diagnostic", "Rule")


@dataclass(frozen=True, slots=True, order=True)
class Diagnostic:
    """One problem found by ``anypool check``.

    Diagnostics sort by path, then line and column, so a sorted list reads like the source.

    Attributes:
        path: The file the problem is in, as given (or ``"<string>"``).
        line: 1-based line number.
        col: 1-based column number.
        code: The rule code, such as ``"APC101"``.
        message: What is wrong, in one sentence.
        fix: How to fix it, in one line.
    """

    path: str
    line: int
    col: int
    code: str
    message: str
    fix: str

    def format(self) -> str:
        """Return the ``path:line:col: CODE message (fix: ...)`` text form."""
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message} (fix: {self.fix})"

    def to_dict(self) -> dict[str, str | int]:
        """Return the diagnostic as a JSON-ready mapping (also carries the rule name)."""
        rule = RULES.get(self.code)
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "code": self.code,
            "name": rule.name if rule is not None else "",
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Rule:
    """A checker rule: a stable code, a name and a documented wrong/right example.

    Attributes:
        code: Stable code (``APC`` followed by three digits).
        name: Short kebab-case name.
        summary: What the rule finds, in one sentence.
        wrong: A code example the rule flags.
        right: The corrected example, which the rule does not flag.
        guide: The section of the concurrency guide the rule comes from.
    """

    code: str
    name: str
    summary: str
    wrong: str
    right: str
    guide: str


SYNTAX_ERROR = "APC000"

_RULE_LIST = (
    Rule(
        SYNTAX_ERROR,
        "syntax-error",
        "The file cannot be read or parsed, so nothing else in it was checked.",
        "def f(:\n    pass\n",
        "def f():\n    pass\n",
        "",
    ),
    Rule(
        "APC101",
        "blocking-call-in-async",
        "A blocking call (sleep, HTTP, subprocess, socket, input, whole-file read, "
        "Thread.join, Future.result) inside `async def` stops the whole event loop.",
        "import time\n\nasync def fetch():\n    time.sleep(5)\n",
        "import asyncio\n\nasync def fetch():\n    await asyncio.sleep(5)\n",
        "Common mistakes 4: Blocking in async functions",
    ),
    Rule(
        "APC102",
        "coroutine-not-awaited",
        "A coroutine is created and thrown away without `await`, so it never runs.",
        "import asyncio\n\nasync def main():\n    asyncio.sleep(1)\n",
        "import asyncio\n\nasync def main():\n    await asyncio.sleep(1)\n",
        "Asyncio and Async/Await",
    ),
    Rule(
        "APC103",
        "task-not-kept",
        "The task made by `create_task`/`ensure_future` is not kept: it can be garbage "
        "collected mid-run and its exception is never seen.",
        "import asyncio\n\nasync def main():\n    asyncio.create_task(work())\n",
        "import asyncio\n\nasync def main():\n    task = asyncio.create_task(work())\n"
        "    await task\n",
        "Async with Tasks",
    ),
    Rule(
        "APC201",
        "unlocked-shared-state",
        "A `global`/`nonlocal` variable is read-modified-written in a function that runs "
        "on threads, with no lock held: updates are lost.",
        "import threading\n\ncounter = 0\n\ndef increment():\n    global counter\n"
        "    counter += 1\n\nt = threading.Thread(target=increment)\nt.start()\nt.join()\n",
        "import threading\n\ncounter = 0\nlock = threading.Lock()\n\ndef increment():\n"
        "    global counter\n    with lock:\n        counter += 1\n\n"
        "t = threading.Thread(target=increment)\nt.start()\nt.join()\n",
        "Common mistakes 2: Not using locks for shared state",
    ),
    Rule(
        "APC202",
        "thread-not-joined",
        "A thread or process is started and never joined (and is not a daemon).",
        "import threading\n\nthread = threading.Thread(target=task)\nthread.start()\n",
        "import threading\n\nthread = threading.Thread(target=task)\nthread.start()\n"
        "thread.join()\n",
        "Common mistakes 3: Forgetting to join threads/processes",
    ),
    Rule(
        "APC203",
        "unbounded-threads",
        "A thread or process is created per item of a loop or comprehension: the number of "
        "workers grows with the data.",
        "import threading\n\nthreads = [threading.Thread(target=task) for _ in range(1000)]\n",
        "from concurrent.futures import ThreadPoolExecutor\n\n"
        "with ThreadPoolExecutor(max_workers=10) as executor:\n"
        "    executor.map(task, range(1000))\n",
        "Common mistakes 5: Creating too many threads/processes",
    ),
    Rule(
        "APC204",
        "process-start-without-main-guard",
        'Processes are started at module level without an `if __name__ == "__main__":` '
        "guard: with the spawn start method every child re-runs the module.",
        "from concurrent.futures import ProcessPoolExecutor\n\n"
        "with ProcessPoolExecutor() as executor:\n    print(list(executor.map(abs, [-1, -2])))\n",
        "from concurrent.futures import ProcessPoolExecutor\n\n"
        'if __name__ == "__main__":\n    with ProcessPoolExecutor() as executor:\n'
        "        print(list(executor.map(abs, [-1, -2])))\n",
        "Multiprocessing",
    ),
    Rule(
        "APC301",
        "executor-not-shut-down",
        "An executor or pool is created without `with` and never shut down: its workers leak.",
        "from concurrent.futures import ThreadPoolExecutor\n\nexecutor = ThreadPoolExecutor()\n"
        "executor.map(print, range(3))\n",
        "from concurrent.futures import ThreadPoolExecutor\n\n"
        "with ThreadPoolExecutor() as executor:\n    executor.map(print, range(3))\n",
        "Best practices 5: Use context managers for resources",
    ),
    Rule(
        "APC302",
        "future-never-retrieved",
        "A future's result is never retrieved, so an exception raised by the task is "
        "silently lost.",
        "from concurrent.futures import ThreadPoolExecutor\n\n"
        "with ThreadPoolExecutor() as executor:\n    executor.submit(task, 1)\n",
        "from concurrent.futures import ThreadPoolExecutor\n\n"
        "with ThreadPoolExecutor() as executor:\n    future = executor.submit(task, 1)\n"
        "    print(future.result())\n",
        "Best practices 6: Handle exceptions in threads/processes",
    ),
    Rule(
        "APC303",
        "cpu-bound-in-threads",
        "A function that is pure computation is run on threads: on a GIL build threads "
        "cannot run it in parallel.",
        "import threading\n\ndef cpu_task():\n    return sum(i**2 for i in range(1000000))\n\n"
        "t = threading.Thread(target=cpu_task)\nt.start()\nt.join()\n",
        "from multiprocessing import Process\n\ndef cpu_task():\n"
        "    return sum(i**2 for i in range(1000000))\n\n"
        'if __name__ == "__main__":\n    p = Process(target=cpu_task)\n    p.start()\n'
        "    p.join()\n",
        "Common mistakes 1: Using threading for CPU-bound tasks",
    ),
)

RULES: Mapping[str, Rule] = MappingProxyType({rule.code: rule for rule in _RULE_LIST})
"""Every rule of ``anypool check``, by code."""
