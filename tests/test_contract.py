"""The backend contract: the core reaches backends only through what ``anypool.abc.Backend``
declares, and a backend with just the required methods is a whole backend."""

from __future__ import annotations

import ast
import concurrent.futures as cf
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import anypool
from anypool.abc import Backend, WorkerSpec
from anypool.testing import check_backend

CORE = Path(anypool.__file__).resolve().parent / "_core"
#: backend names; a comparison of a ``.name`` with one of them is a branch on a backend
NAMES = {"serial", "thread", "process", "asyncio", "dask", "auto", "executor"}


def _core_modules() -> list[tuple[str, ast.Module]]:
    return [(p.name, ast.parse(p.read_text())) for p in sorted(CORE.glob("*.py"))]


def _is_backend(node: ast.expr) -> bool:
    """``self._backend``, ``self.backend``, ``backend``, ``inner``, ``chosen``..."""
    text = ast.unparse(node)
    return "backend" in text.lower() or text in ("inner", "chosen")


def test_the_core_never_introspects_a_backend() -> None:
    found = []
    for name, tree in _core_modules():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")
                and node.args
                and _is_backend(node.args[0])
            ):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "getattr/hasattr on a backend in the core:\n" + "\n".join(found)


def test_the_core_never_branches_on_a_backend_name() -> None:
    found = []
    for name, tree in _core_modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            named = any(
                isinstance(s, ast.Attribute) and s.attr == "name" and _is_backend(s.value)
                for s in sides
            )
            literal = any(
                (isinstance(s, ast.Constant) and s.value in NAMES)
                or (
                    isinstance(s, ast.Tuple | ast.List | ast.Set)
                    and any(isinstance(e, ast.Constant) and e.value in NAMES for e in s.elts)
                )
                for s in sides
            )
            if named and literal:
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "branches on a backend's name in the core:\n" + "\n".join(found)


def test_the_core_imports_no_backend_at_module_level() -> None:
    found = []
    for name, tree in _core_modules():
        for node in tree.body:  # module level only: a lazy import inside a function is fine
            if isinstance(node, ast.ImportFrom) and "_backends" in (node.module or ""):
                found.append(f"{name}:{node.lineno}: from {node.module}")
    assert not found, "\n".join(found)


# -- a third-party backend: only the four required methods --------------------------------
class MinimalBackend(Backend):
    """Runs calls on a ThreadPoolExecutor; everything else is the contract's defaults."""

    name = "minimal_test"

    def start(self) -> None:
        self._ex = cf.ThreadPoolExecutor(self.spec.workers, thread_name_prefix="minimal")

    def submit(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        timeout: float | None = None,
    ) -> cf.Future[Any]:
        return self._ex.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        self._ex.shutdown(wait=wait, cancel_futures=cancel_pending)

    def effective_workers(self) -> int:
        return self.spec.workers


@pytest.fixture(scope="module")
def minimal() -> Iterator[str]:
    from anypool._core import _registry

    anypool.register_backend(MinimalBackend.name, lambda: MinimalBackend)
    try:
        yield MinimalBackend.name
    finally:  # later tests list every registered backend (the pytest plugin's)
        with _registry._lock:
            _registry._registered.pop(MinimalBackend.name, None)


def test_the_required_methods_are_a_whole_backend(minimal: str) -> None:
    check_backend(minimal, timeout=120)


def test_the_hooks_have_defaults(minimal: str) -> None:
    backend = MinimalBackend(WorkerSpec(workers=2))
    assert backend.chosen is backend
    assert backend.event_loop is None
    assert backend.fixed_batch is None
    assert backend.max_chunks_in_flight is None
    assert backend.explain() is None
    with anypool.Pool(minimal, 2) as pool:
        assert pool.explain().startswith(f"backend={minimal!r} with 2 worker(s)")
        lock = pool.Lock()
        assert lock.acquire(timeout=1)
        lock.release()
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
