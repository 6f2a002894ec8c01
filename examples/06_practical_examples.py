"""06 - Practical examples: real work, and the guide's "Choosing the Right Approach".

1. I/O-bound: fetch many pages over HTTP from a small server this example starts itself on
   127.0.0.1 (so it needs no network). Serial, threads with urllib, asyncio with raw HTTP/1.1
   over ``asyncio.open_connection``, asyncio with ``loop.run_in_executor``, then anypool.
2. CPU-bound: count the primes below N in ranges. Serial, threads (no faster: the GIL),
   processes, then anypool with ``backend="process"``.
3. Automatic choice: ``backend="auto"`` picks for you. It is planned but not in anypool yet;
   that part is skipped with a note until it is, and then runs without edits.

    python examples/06_practical_examples.py [--fast]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anypool

#: the number of primes below N, for checking (pi(N))
PRIMES_BELOW = {200_000: 17_984, 1_000_000: 78_498}


def fact(name: str, value: object) -> None:
    """Print one machine-checkable fact (the tests read these lines)."""
    print(f"FACT {name}={json.dumps(value)}", flush=True)


def has_backend(name: str) -> bool:
    """Is anypool's backend `name` usable here? (The process and asyncio backends are new.)"""
    try:
        anypool.get_backend(name)
    except (LookupError, ImportError):
        return False
    return True


def timed(label: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    result = fn()
    print(f"  {label:<42} {time.perf_counter() - t0:6.2f}s")
    return result


# --- A small web server to fetch from ---------------------------------------------------------
def page_body(n: int) -> str:
    """What the server sends for /page/<n>: a few kilobytes of text."""
    return f"<h1>Page {n}</h1>\n" + "".join(f"<p>line {i} of page {n}</p>\n" for i in range(100))


class PageHandler(BaseHTTPRequestHandler):
    """GET /page/<n> returns page_body(n) after the server's latency (a slow remote site)."""

    def do_GET(self) -> None:
        server: PageServer = self.server  # type: ignore[assignment]
        if not self.path.startswith("/page/"):
            self.send_error(404)
            return
        # Count the requests being worked on at once. The count goes down before the answer
        # is sent, so a client that waits for each answer is always seen alone.
        with server.stats_lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            time.sleep(server.latency)  # the remote site takes a moment to answer
            body = page_body(int(self.path.removeprefix("/page/"))).encode()
        finally:
            with server.stats_lock:
                server.in_flight -= 1
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the example's output readable


class PageServer(ThreadingHTTPServer):
    # Keep track of the request threads, and join them in server_close(): nothing is left
    # running when serve() returns.
    daemon_threads = False
    block_on_close = True
    # The default listen backlog is 5: more simultaneous connects than that can be dropped and
    # retried a second later - concurrent clients would then look slower than serial ones.
    request_queue_size = 128

    def __init__(self, latency: float) -> None:
        super().__init__(("127.0.0.1", 0), PageHandler)  # port 0: the OS picks a free port
        self.latency = latency
        self.stats_lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def take_max_in_flight(self) -> int:
        """The most requests handled at once since the last call."""
        with self.stats_lock:
            most, self.max_in_flight = self.max_in_flight, 0
        return most


@contextmanager
def serve(latency: float) -> Iterator[PageServer]:
    """Run a PageServer in a background thread; shut it down on exit."""
    server = PageServer(latency)
    thread = threading.Thread(target=server.serve_forever, name="page-server")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()  # stops serve_forever
        server.server_close()
        thread.join()


# --- 1. Fetching pages: I/O-bound -------------------------------------------------------------
def fetch(url: str) -> str:
    """A blocking fetch with the standard library's urllib."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


async def fetch_async(url: str) -> str:
    """A non-blocking fetch: HTTP/1.1 GET written by hand over asyncio streams."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        request = f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        raw = await reader.read()  # until the server closes the connection
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        raise OSError(f"GET {url}: {status.decode()}")
    return body.decode()


async def fetch_all_async(urls: list[str], limit: int) -> list[str]:
    semaphore = asyncio.Semaphore(limit)  # bounded: at most `limit` connections at once

    async def bounded(url: str) -> str:
        async with semaphore:
            return await fetch_async(url)

    return await asyncio.gather(*(bounded(u) for u in urls))


async def fetch_all_in_executor(urls: list[str], limit: int) -> list[str]:
    # Reuse blocking code from asyncio: run it in a thread pool, await the futures.
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=limit) as executor:
        return await asyncio.gather(*(loop.run_in_executor(executor, fetch, u) for u in urls))


def fetch_pages(n_pages: int, latency: float, workers: int = 8) -> dict[str, object]:
    expected = [page_body(i) for i in range(n_pages)]
    out: dict[str, object] = {}
    with serve(latency) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/page/{i}" for i in range(n_pages)]
        print(f"fetching {n_pages} pages from {base} (latency {latency * 1000:.0f} ms each)")

        def check(name: str, pages: list[str]) -> None:
            out[f"{name}_ok"] = pages == expected  # every page, in order
            out[f"{name}_max_in_flight"] = server.take_max_in_flight()

        check("serial", timed("serial, urllib", lambda: [fetch(u) for u in urls]))
        with ThreadPoolExecutor(max_workers=workers) as executor:
            check(
                "threads",
                timed(
                    f"ThreadPoolExecutor({workers}), urllib",
                    lambda: list(executor.map(fetch, urls)),
                ),
            )
        check(
            "asyncio",
            timed("asyncio streams, gather", lambda: asyncio.run(fetch_all_async(urls, workers))),
        )
        check(
            "run_in_executor",
            timed(
                "asyncio + run_in_executor",
                lambda: asyncio.run(fetch_all_in_executor(urls, workers)),
            ),
        )
        # anypool: the blocking function over threads ...
        check(
            "anypool_threads",
            timed(
                f"anypool thread, workers={workers}",
                lambda: anypool.map(fetch, urls, workers=workers),
            ),
        )
        # ... or the coroutine function on asyncio, from ordinary code.
        if has_backend("asyncio"):
            check(
                "anypool_asyncio",
                timed(
                    f"anypool asyncio, workers={workers}",
                    lambda: anypool.map(fetch_async, urls, backend="asyncio", workers=workers),
                ),
            )
        else:
            print("NOTE: the 'asyncio' backend is not available in this anypool yet - skipped")
            out["anypool_asyncio_ok"] = "skipped"
    return out


# --- 2. Counting primes: CPU-bound ------------------------------------------------------------
def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def count_primes(lo: int, hi: int) -> int:
    """How many primes in [lo, hi) - pure Python arithmetic, no waiting."""
    return sum(1 for n in range(lo, hi) if is_prime(n))


def ranges(n: int, parts: int) -> tuple[list[int], list[int]]:
    bounds = [n * i // parts for i in range(parts + 1)]
    return bounds[:-1], bounds[1:]


def count_primes_below(n: int, parts: int = 16) -> dict[str, object]:
    los, his = ranges(n, parts)
    print(f"counting primes below {n:,} in {parts} ranges")
    out: dict[str, object] = {"expected": PRIMES_BELOW.get(n)}
    out["serial"] = timed("serial", lambda: sum(map(count_primes, los, his)))
    with ThreadPoolExecutor() as executor:
        out["threads"] = timed(
            "ThreadPoolExecutor (the GIL: no faster)",
            lambda: sum(executor.map(count_primes, los, his)),
        )
    with ProcessPoolExecutor() as executor:
        out["processes"] = timed(
            "ProcessPoolExecutor", lambda: sum(executor.map(count_primes, los, his))
        )
    if has_backend("process"):
        out["anypool_process"] = timed(
            "anypool process", lambda: sum(anypool.map(count_primes, los, his, backend="process"))
        )
    else:
        print("NOTE: the 'process' backend is not available in this anypool yet - skipped")
        out["anypool_process"] = "skipped"
    return out


# --- 3. Let anypool choose: backend="auto" (planned) ------------------------------------------
def auto_supported() -> bool:
    """True once this anypool accepts backend="auto"."""
    if "auto" in anypool.get_all_backends():
        return True
    try:
        anypool.map(abs, [], backend="auto")
    except LookupError:
        return False
    return True


def auto_choice(n_pages: int, latency: float, n: int) -> dict[str, object]:
    """The guide's "Choosing the Right Approach", done by anypool: threads (or asyncio) for
    the fetches, processes for the primes, decided by measuring the first tasks."""
    if not auto_supported():
        print('NOTE: backend="auto" is not available in this anypool yet - skipped')
        return {"auto": "skipped"}
    out: dict[str, object] = {}
    with serve(latency) as server:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/page/{i}" for i in range(n_pages)]
        pages = timed("auto: fetch pages", lambda: anypool.map(fetch, urls, backend="auto"))
        out["auto_pages_ok"] = pages == [page_body(i) for i in range(n_pages)]
    los, his = ranges(n, 16)
    out["auto_primes"] = timed(
        "auto: count primes", lambda: sum(anypool.map(count_primes, los, his, backend="auto"))
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Practical concurrency: HTTP and primes.")
    parser.add_argument("--fast", action="store_true", help="fewer pages, smaller N")
    args = parser.parse_args(argv)
    n_pages, latency = (24, 0.02) if args.fast else (50, 0.1)
    n = 200_000 if args.fast else 1_000_000

    print("== 1. I/O-bound: fetching pages over HTTP ==")
    for k, v in fetch_pages(n_pages, latency).items():
        fact(f"http_{k}", v)

    print("\n== 2. CPU-bound: counting primes ==")
    for k, v in count_primes_below(n).items():
        fact(f"primes_{k}", v)

    print('\n== 3. Let anypool choose: backend="auto" ==')
    for k, v in auto_choice(n_pages, latency, n).items():
        fact(k, v)


if __name__ == "__main__":
    main()
