"""Every rule of ``anypool check``: snippets it must flag and snippets it must leave alone."""

from __future__ import annotations

import sysconfig
import textwrap
from pathlib import Path

import pytest

from anypool.checks import RULES, check_paths, check_source


def codes(source: str) -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in check_source(textwrap.dedent(source))]


WRONG: list[tuple[str, str, int]] = [
    # APC101 blocking calls in async def
    ("APC101", "import time\nasync def fetch():\n    time.sleep(5)\n", 3),
    ("APC101", "from time import sleep as zz\nasync def f():\n    zz(1)\n", 3),
    ("APC101", "import requests\nasync def f(u):\n    return requests.get(u)\n", 3),
    ("APC101", "import urllib.request\nasync def f(u):\n    urllib.request.urlopen(u)\n", 3),
    ("APC101", "import subprocess\nasync def f():\n    subprocess.run(['ls'])\n", 3),
    ("APC101", "import os\nasync def f():\n    os.system('ls')\n", 3),
    ("APC101", "import socket\nasync def f():\n    socket.create_connection(('h', 1))\n", 3),
    ("APC101", "async def f():\n    return input()\n", 2),
    ("APC101", "async def f(p):\n    return open(p).read()\n", 2),
    ("APC101", "async def f(p):\n    with open(p) as fh:\n        return fh.read()\n", 3),
    ("APC101", "from pathlib import Path\nasync def f():\n    return Path('x').read_text()\n", 3),
    (
        "APC101",
        "import threading as th\nasync def f():\n    t = th.Thread(target=print)\n"
        "    t.start()\n    t.join()\n",
        5,
    ),
    (
        "APC101",
        "from concurrent.futures import ThreadPoolExecutor\nasync def f(ex: object):\n"
        "    with ThreadPoolExecutor() as ex:\n        fut = ex.submit(print)\n"
        "        return fut.result()\n",
        5,
    ),
    # APC102 coroutine not awaited
    ("APC102", "import asyncio\nasync def main():\n    asyncio.sleep(1)\n", 3),
    ("APC102", "async def work():\n    pass\nasync def main():\n    work()\n", 4),
    (
        "APC102",
        "class C:\n    async def go(self):\n        pass\n    async def run(self):\n"
        "        self.go()\n",
        5,
    ),
    # APC103 task not kept
    ("APC103", "import asyncio\nasync def main(c):\n    asyncio.create_task(c)\n", 3),
    ("APC103", "import asyncio\nasync def main(c):\n    asyncio.ensure_future(c)\n", 3),
    (
        "APC103",
        "import asyncio\nasync def main(c):\n    loop = asyncio.get_running_loop()\n"
        "    loop.create_task(c)\n",
        4,
    ),
    # APC201 shared state without a lock (the guide's Common mistake 2, run on threads)
    (
        "APC201",
        "import threading\ncounter = 0\ndef increment():\n    global counter\n"
        "    counter += 1\nt = threading.Thread(target=increment)\nt.start()\nt.join()\n",
        5,
    ),
    (
        "APC201",
        "from concurrent.futures import ThreadPoolExecutor\ntotal = 0\ndef add(n):\n"
        "    global total\n    total = total + n\nwith ThreadPoolExecutor() as ex:\n"
        "    list(ex.map(add, range(3)))\n",
        5,
    ),
    (
        "APC201",
        "import threading\ndef main():\n    n = 0\n    def work():\n        nonlocal n\n"
        "        n += 1\n    t = threading.Thread(target=work)\n    t.start()\n    t.join()\n",
        6,
    ),
    # APC202 never joined (the guide's Common mistake 3)
    ("APC202", "import threading\nthread = threading.Thread(target=task)\nthread.start()\n", 2),
    ("APC202", "import threading\nthreading.Thread(target=task).start()\n", 2),
    (
        "APC202",
        "from multiprocessing import Process\ndef main():\n    p = Process(target=task)\n"
        "    p.start()\n",
        3,
    ),
    (
        "APC202",
        "import threading\ndef main():\n"
        "    ts = [threading.Thread(target=task) for _ in range(4)]\n"
        "    for t in ts:\n        t.start()\n",
        3,
    ),
    # APC203 threads per item (the guide's Common mistake 5)
    (
        "APC203",
        "import threading\nthreads = [threading.Thread(target=task) for _ in range(1000)]\n",
        2,
    ),
    (
        "APC203",
        "import threading\ndef main(urls):\n    for u in urls:\n"
        "        t = threading.Thread(target=get, args=(u,))\n        t.start()\n"
        "        t.join()\n",
        4,
    ),
    # APC204 processes at module level without a __main__ guard
    (
        "APC204",
        "from concurrent.futures import ProcessPoolExecutor\nwith ProcessPoolExecutor() as ex:\n"
        "    print(list(ex.map(abs, [1])))\n",
        2,
    ),
    (
        "APC204",
        "import multiprocessing as mp\np = mp.Process(target=print)\np.start()\np.join()\n",
        3,
    ),
    (
        "APC204",
        "import multiprocessing\nwith multiprocessing.Pool() as pool:\n    pool.map(abs, [1])\n",
        2,
    ),
    # APC301 executor never shut down
    (
        "APC301",
        "from concurrent.futures import ThreadPoolExecutor\nexecutor = ThreadPoolExecutor()\n"
        "executor.map(print, range(3))\n",
        2,
    ),
    (
        "APC301",
        "from concurrent.futures import ThreadPoolExecutor\nThreadPoolExecutor().map(print, [1])\n",
        2,
    ),
    # APC302 futures never retrieved
    (
        "APC302",
        "from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor() as ex:\n"
        "    ex.submit(print, 1)\n",
        3,
    ),
    (
        "APC302",
        "from concurrent.futures import ThreadPoolExecutor\ndef main():\n"
        "    with ThreadPoolExecutor() as ex:\n"
        "        fs = [ex.submit(print, i) for i in range(3)]\n",
        4,
    ),
    # APC303 CPU-bound work on threads (the guide's Common mistake 1, run on a thread)
    (
        "APC303",
        "import threading\ndef cpu_task():\n    sum(i**2 for i in range(1000000))\n"
        "t = threading.Thread(target=cpu_task)\nt.start()\nt.join()\n",
        4,
    ),
    (
        "APC303",
        "import math\nfrom concurrent.futures import ThreadPoolExecutor\ndef is_prime(n):\n"
        "    for i in range(2, math.isqrt(n) + 1):\n        if n % i == 0:\n"
        "            return False\n"
        "    return True\nwith ThreadPoolExecutor() as ex:\n"
        "    print(list(ex.map(is_prime, [7, 9])))\n",
        9,
    ),
]


@pytest.mark.parametrize(("code", "source", "line"), WRONG)
def test_wrong_snippet_is_flagged(code: str, source: str, line: int) -> None:
    assert (code, line) in codes(source)


RIGHT: list[str] = [
    # the guide's Common mistake 4, "Correct"
    "import asyncio\nasync def fetch():\n    await asyncio.sleep(5)\n",
    # blocking work handed to a thread, or inside a nested def / lambda
    "import asyncio, time\nasync def f():\n    await asyncio.to_thread(time.sleep, 1)\n",
    "import time\nasync def f(loop):\n    def g():\n        time.sleep(1)\n"
    "    await loop.run_in_executor(None, lambda: open('x').read())\n",
    "import time\ndef sync():\n    time.sleep(1)\n",
    "async def f(p):\n    return await p.read_text()\n",
    "async def f(input):\n    return input()\n",
    # Thread.join after awaiting the thread's completion (asyncio's own shutdown code)
    "import threading\nasync def f(fut):\n    t = threading.Thread(target=print)\n    t.start()\n"
    "    try:\n        await fut\n    finally:\n        t.join()\n",
    "import threading\nasync def f(fut):\n    t = threading.Thread(target=print)\n    t.start()\n"
    "    try:\n        await fut\n    except TimeoutError:\n        pass\n    else:\n"
    "        t.join()\n",
    # awaited coroutines, kept tasks, TaskGroup tasks
    "import asyncio\nasync def work():\n    pass\nasync def main():\n    await work()\n"
    "    t = asyncio.create_task(work())\n    await t\n"
    "    async with asyncio.TaskGroup() as tg:\n        tg.create_task(work())\n",
    "import asyncio\nasync def gen():\n    yield 1\nasync def main():\n    gen()\n",
    # the guide's Async with Tasks section
    "import asyncio\nasync def task(name, delay):\n    await asyncio.sleep(delay)\n"
    "    return name\nasync def main():\n    task1 = asyncio.create_task(task('A', 2))\n"
    "    results = await asyncio.gather(task1)\n    print(results)\nasyncio.run(main())\n",
    # the guide's Common mistake 2, "Correct", and the Locks section
    "import threading\ncounter = 0\nlock = threading.Lock()\ndef increment():\n"
    "    global counter\n    for _ in range(100000):\n        with lock:\n"
    "            counter += 1\n"
    "thread1 = threading.Thread(target=increment)\nthread2 = threading.Thread(target=increment)\n"
    "thread1.start()\nthread2.start()\nthread1.join()\nthread2.join()\n",
    "import threading\nn = 0\nclass C:\n    def __init__(self):\n"
    "        self._lock = threading.Lock()\n"
    "    def work(self):\n        global n\n        with self._lock:\n            n += 1\n",
    # a global changed by a function that never runs on a thread
    "counter = 0\ndef increment():\n    global counter\n    counter += 1\n",
    # the guide's Common mistake 3, "Correct"; daemon threads; threads handed on
    "import threading\nthread = threading.Thread(target=task)\nthread.start()\nthread.join()\n",
    "import threading\nt = threading.Thread(target=task, daemon=True)\nt.start()\n",
    "import threading\ndef f():\n    t = threading.Thread(target=task)\n    t.daemon = True\n"
    "    t.start()\n",
    "import threading\ndef f():\n    t = threading.Thread(target=task)\n    t.start()\n"
    "    return t\n",
    "import threading\nclass S:\n    def start(self):\n"
    "        self._t = threading.Thread(target=task)\n        self._t.start()\n",
    # the guide's Best practice 1 "Less preferred" threads list is joined in a loop
    "import threading\nthreads = [threading.Thread(target=task, args=(i,)) for i in range(10)]\n"
    "for t in threads:\n    t.start()\nfor t in threads:\n    t.join()\n",
    # the guide's Semaphores, Queues and Event sections
    "import threading\nsemaphore = threading.Semaphore(2)\ndef worker(name):\n    with semaphore:\n"
    "        print(name)\nthreads = [threading.Thread(target=worker, args=(f'T{i}',))\n"
    "           for i in range(5)]\nfor t in threads:\n    t.start()\nfor t in threads:\n"
    "    t.join()\n",
    "import threading, queue\ndef producer(q):\n    for i in range(5):\n        q.put(i)\n"
    "def consumer(q):\n    while True:\n        item = q.get()\n        if item is None:\n"
    "            break\nq = queue.Queue()\npt = threading.Thread(target=producer, args=(q,))\n"
    "ct = threading.Thread(target=consumer, args=(q,))\npt.start()\nct.start()\npt.join()\n"
    "q.put(None)\nct.join()\n",
    # the guide's Thread class section
    "import threading, time\nclass WorkerThread(threading.Thread):\n    def run(self):\n"
    "        time.sleep(2)\nthread1 = WorkerThread()\nthread1.start()\nthread1.join()\n",
    # a fixed number of workers is bounded
    "import threading\ndef main(n):\n    ts = [threading.Thread(target=task) for _ in range(n)]\n"
    "    for t in ts:\n        t.start()\n    for t in ts:\n        t.join()\n",
    # the guide's Common mistake 5 "Correct", Thread Pool, Best practices 1/5/6
    "from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(max_workers=10)"
    " as executor:\n    executor.map(task, range(1000))\n",
    "from concurrent.futures import ThreadPoolExecutor\nimport time\ndef task(n):\n"
    "    time.sleep(1)\n    return n\nwith ThreadPoolExecutor(max_workers=3) as executor:\n"
    "    futures = [executor.submit(task, i) for i in range(5)]\n    for future in futures:\n"
    "        print(future.result())\n",
    "from concurrent.futures import ThreadPoolExecutor\nexecutor = ThreadPoolExecutor()\n"
    "executor.shutdown()\n",
    "from concurrent.futures import ThreadPoolExecutor\ndef task(n):\n    if n == 5:\n"
    "        raise ValueError('Error!')\n    return n * 2\nwith ThreadPoolExecutor() as executor:\n"
    "    futures = [executor.submit(task, i) for i in range(10)]\n    for future in futures:\n"
    "        try:\n            print(future.result())\n        except Exception as e:\n"
    "            print(e)\n",
    "from concurrent.futures import ThreadPoolExecutor\ndef make():\n"
    "    return ThreadPoolExecutor()\ndef f():\n    ex = ThreadPoolExecutor()\n    return ex\n",
    # the guide's Multiprocessing sections: guarded by __main__
    "import multiprocessing\ndef worker(name):\n    print(name)\nif __name__ == '__main__':\n"
    "    p1 = multiprocessing.Process(target=worker, args=('P1',))\n    p1.start()\n"
    "    p1.join()\n",
    "from concurrent.futures import ProcessPoolExecutor\ndef compute_square(n):\n"
    "    return n * n\nif __name__ == '__main__':\n    with ProcessPoolExecutor(max_workers=3)"
    " as executor:\n        results = executor.map(compute_square, [1, 2])\n"
    "        for r in results:\n            print(r)\n",
    "import multiprocessing\ndef worker(d, v):\n    d['count'] += 1\nif __name__ == '__main__':\n"
    "    processes = []\n    for i in range(5):\n"
    "        p = multiprocessing.Process(target=worker, args=(1, 2))\n"
    "        processes.append(p)\n        p.start()\n    for p in processes:\n        p.join()\n",
    "from concurrent.futures import ProcessPoolExecutor\ndef main():\n"
    "    with ProcessPoolExecutor() as ex:\n        return list(ex.map(abs, [1]))\n",
    # the guide's Best practice 2: CPU-bound work on processes
    "from concurrent.futures import ProcessPoolExecutor\ndef cpu(n):\n"
    "    return sum(i * i for i in range(n))\nif __name__ == '__main__':\n"
    "    with ProcessPoolExecutor() as executor:\n        print(list(executor.map(cpu, [9])))\n",
    # the guide's Common mistake 1, "Correct"
    "from multiprocessing import Process\n",
    # not pure computation: I/O, unknown calls, trivial bodies
    "import threading\ndef io_task(path):\n    total = 0\n    for i in range(3):\n"
    "        total += len(open(path).read())\n    return total\n"
    "t = threading.Thread(target=io_task)\nt.start()\nt.join()\n",
    "import threading\ndef double(n):\n    return n * 2\nt = threading.Thread(target=double)\n"
    "t.start()\nt.join()\n",
    "import threading\ndef f(items):\n    return sum(fetch(i) for i in range(items))\n"
    "t = threading.Thread(target=f)\nt.start()\nt.join()\n",
    # a submit() that is expected to raise
    "import pytest\nfrom concurrent.futures import ThreadPoolExecutor\n"
    "with ThreadPoolExecutor() as ex, pytest.raises(TypeError):\n    ex.submit(42)\n",
    # a "noqa" comment silences a line
    "import time\nasync def fetch():\n    time.sleep(5)  # noqa: APC101\n",
    "import time\nasync def fetch():\n    time.sleep(5)  # noqa\n",
]


@pytest.mark.parametrize("source", RIGHT)
def test_right_snippet_is_not_flagged(source: str) -> None:
    assert codes(source) == []


def test_noqa_for_another_code_does_not_silence() -> None:
    assert codes("import time\nasync def f():\n    time.sleep(5)  # noqa: APC2\n") == [
        ("APC101", 3)
    ]


def test_noqa_inside_a_string_is_not_a_comment() -> None:
    source = 'import time\nasync def f():\n    time.sleep(5); x = "# noqa"\n'
    assert codes(source) == [("APC101", 3)]


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_documented_examples(code: str) -> None:
    rule = RULES[code]
    assert rule.code == code
    assert rule.name
    assert rule.summary
    found = {d.code for d in check_source(rule.wrong)}
    assert code in found
    assert check_source(rule.right) == []


def test_syntax_error_is_a_diagnostic() -> None:
    [diagnostic] = check_source("def f(:\n    pass\n", "bad.py")
    assert diagnostic.code == "APC000"
    assert diagnostic.path == "bad.py"
    assert diagnostic.line == 1


def test_diagnostic_fields() -> None:
    [d] = check_source("import time\nasync def f():\n    time.sleep(1)\n", "m.py")
    assert (d.path, d.line, d.col, d.code) == ("m.py", 3, 5, "APC101")
    assert "time.sleep" in d.message
    assert "asyncio.sleep" in d.fix
    assert d.format().startswith("m.py:3:5: APC101 ")


def test_select_and_ignore_prefixes() -> None:
    source = "import time, asyncio\nasync def f():\n    time.sleep(1)\n    asyncio.sleep(1)\n"
    assert [d.code for d in check_source(source, select=["APC101"])] == ["APC101"]
    assert [d.code for d in check_source(source, ignore=["APC10"])] == []
    assert [d.code for d in check_source(source, select=["APC1"], ignore=["APC102"])] == ["APC101"]


STDLIB_BOUND = 3


def test_stdlib_concurrency_packages_give_almost_no_findings() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    paths = [stdlib / name for name in ("asyncio", "concurrent", "multiprocessing")]
    found = check_paths(paths)
    assert not [d for d in found if d.code == "APC000"]
    # Known and accepted (CPython 3.11-3.13): asyncio/base_subprocess.py keeps no reference to a
    # create_task() task (APC103); multiprocessing/managers.py starts one daemon thread per
    # accepted connection (APC203). Neither is a bug in practice.
    assert len(found) <= STDLIB_BOUND, "\n".join(d.format() for d in found)
