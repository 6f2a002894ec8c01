"""The asyncio backend from sync code and from async code, and the one mistake to avoid.

Run: ``python examples/asyncio_backend.py``
"""

from __future__ import annotations

import asyncio

import anypool


async def fetch(page: int) -> str:
    """Stands in for an HTTP request: waits without blocking the event loop."""
    await asyncio.sleep(0.01)
    return f"page {page}"


def from_sync_code() -> list[str]:
    # No event loop here: the pool runs one in its own thread (uvloop when installed).
    return anypool.map(fetch, range(200), backend="asyncio", workers=50)


async def from_async_code() -> list[str]:
    # A loop is running: the pool uses it. Await the results; never block on them.
    return await anypool.amap(fetch, range(200), workers=50)


async def the_mistake() -> None:
    async with anypool.Pool("asyncio", workers=50) as pool:
        try:
            list(pool.map(fetch, range(10)))  # blocks the loop the tasks need: refused
        except RuntimeError as exc:
            print("refused:", str(exc).split(":")[0])
        pages = await pool.amap(fetch, range(10))  # the fix
        print("fixed:", len(pages), "pages")


def main() -> None:
    print(len(from_sync_code()), "pages from sync code")
    print(len(asyncio.run(from_async_code())), "pages from async code")
    asyncio.run(the_mistake())


if __name__ == "__main__":
    main()
