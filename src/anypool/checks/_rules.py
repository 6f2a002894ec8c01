"""The static analyser behind ``anypool check``.

The analyser reads one module's syntax tree (it never imports or runs the code). A small
per-module symbol table resolves imports and aliases (``import threading as th``,
``from time import sleep``), and a per-scope table remembers what a local name was made from
(``t = Thread(...)`` makes ``t`` a thread). Rules are deliberately conservative: when the code
could be correct, nothing is reported.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterator
from dataclasses import dataclass, field

from ._model import Diagnostic

__all__ = ("analyse",)

_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_ELEMENT_COMPS = (ast.ListComp, ast.SetComp)
_BUILTIN_NAMES = frozenset(dir(builtins))

# Different import paths of the same object.
_CANONICAL = {
    "concurrent.futures.thread.ThreadPoolExecutor": "concurrent.futures.ThreadPoolExecutor",
    "concurrent.futures.process.ProcessPoolExecutor": "concurrent.futures.ProcessPoolExecutor",
    "multiprocessing.pool.Pool": "multiprocessing.Pool",
    "multiprocessing.context.Process": "multiprocessing.Process",
    "multiprocessing.dummy.Pool": "multiprocessing.pool.ThreadPool",
    "multiprocessing.dummy.Process": "threading.Thread",
    "anypool._core._pool.Pool": "anypool.Pool",
    "asyncio.tasks.create_task": "asyncio.create_task",
    "asyncio.tasks.ensure_future": "asyncio.ensure_future",
    "asyncio.tasks.sleep": "asyncio.sleep",
}

# What calling a (canonical) name makes.
_CONSTRUCTOR_KINDS = {
    "threading.Thread": "thread",
    "threading.Timer": "thread",
    "multiprocessing.Process": "process",
    "concurrent.futures.ThreadPoolExecutor": "thread_pool",
    "concurrent.futures.ProcessPoolExecutor": "process_pool",
    "multiprocessing.Pool": "mp_pool",
    "multiprocessing.pool.ThreadPool": "mp_thread_pool",
    "anypool.Pool": "any_pool",
    "asyncio.get_event_loop": "loop",
    "asyncio.get_running_loop": "loop",
    "asyncio.new_event_loop": "loop",
    "multiprocessing.get_context": "mp_context",
    "builtins.open": "file",
    "threading.Lock": "lock",
    "threading.RLock": "lock",
    "threading.Semaphore": "lock",
    "threading.BoundedSemaphore": "lock",
    "threading.Condition": "lock",
    "multiprocessing.Lock": "lock",
    "multiprocessing.RLock": "lock",
}
_WORKER_KINDS = frozenset({"thread", "process"})
_EXECUTOR_KINDS = frozenset(
    {"thread_pool", "process_pool", "mp_pool", "mp_thread_pool", "any_pool"}
)
_SUBMIT_KINDS = frozenset({"thread_pool", "process_pool", "any_pool"})
_MP_POOL_KINDS = frozenset({"mp_pool", "mp_thread_pool"})
_THREAD_POOL_KINDS = frozenset({"thread_pool", "mp_thread_pool"})
_SHUTDOWN_ATTRS = frozenset({"shutdown", "close", "terminate", "__exit__", "join"})

_SLEEP_FIX = "use `await asyncio.sleep(...)`"
_THREAD_FIX = "run it in a worker thread: `await asyncio.to_thread(...)`"
_BLOCKING_CALLS = {
    "time.sleep": _SLEEP_FIX,
    "urllib.request.urlopen": "use an async HTTP client (aiohttp, httpx.AsyncClient) or "
    "`await asyncio.to_thread(...)`",
    "subprocess.run": "use `await asyncio.create_subprocess_exec(...)`",
    "subprocess.call": "use `await asyncio.create_subprocess_exec(...)`",
    "subprocess.check_call": "use `await asyncio.create_subprocess_exec(...)`",
    "subprocess.check_output": "use `await asyncio.create_subprocess_exec(...)`",
    "os.system": "use `await asyncio.create_subprocess_shell(...)`",
    "socket.create_connection": "use `await asyncio.open_connection(...)`",
    "builtins.input": _THREAD_FIX,
    "concurrent.futures.wait": "use `await asyncio.wait([asyncio.wrap_future(f) for f in fs])`",
}
_HTTP_MODULES = frozenset({"requests", "httpx"})
_HTTP_VERBS = frozenset({"get", "post", "put", "patch", "delete", "head", "options", "request"})
_PATH_IO = frozenset({"read_text", "read_bytes", "write_text", "write_bytes"})

_COROUTINE_FUNCTIONS = frozenset(
    {
        "asyncio.sleep",
        "asyncio.wait",
        "asyncio.wait_for",
        "asyncio.to_thread",
        "asyncio.open_connection",
        "asyncio.start_server",
        "asyncio.open_unix_connection",
        "asyncio.start_unix_server",
        "asyncio.create_subprocess_exec",
        "asyncio.create_subprocess_shell",
    }
)
_TASK_FUNCTIONS = frozenset({"asyncio.create_task", "asyncio.ensure_future"})
_LOOP_NAMES = frozenset({"loop", "_loop", "event_loop"})
_LOCK_WORDS = ("lock", "mutex", "cond", "sem")

# A thread per item of `range(N)` is fine up to this N; beyond it, use a pool.
_MAX_FIXED_WORKERS = 32

# Calls a pure computation may make (APC303).
_PURE_BUILTINS = frozenset(
    {
        "abs",
        "all",
        "any",
        "bool",
        "divmod",
        "enumerate",
        "float",
        "int",
        "len",
        "max",
        "min",
        "pow",
        "range",
        "reversed",
        "round",
        "sorted",
        "sum",
        "zip",
        "complex",
        "list",
        "tuple",
        "set",
        "frozenset",
        "dict",
    }
)
_PURE_MODULES = ("math.", "cmath.", "operator.")
_PURE_METHODS = frozenset({"append", "extend", "add", "insert", "sort", "reverse", "copy"})
_PURE_NODES: tuple[type[ast.AST], ...] = (
    ast.Return,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.For,
    ast.While,
    ast.If,
    ast.Break,
    ast.Continue,
    ast.Pass,
    ast.Expr,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.Subscript,
    ast.Slice,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.comprehension,
    ast.Call,
    ast.Attribute,
    ast.keyword,
    ast.Starred,
    ast.expr_context,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
)


def _is_main_guard(test: ast.expr) -> bool:
    """Return whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main


def _terminal_name(expr: ast.expr) -> str | None:
    """Return the last name of ``a.b.c`` (``c``), or ``a`` for a plain name."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def _is_lock_like(expr: ast.expr, kind: str | None) -> bool:
    """Return whether a ``with`` item looks like it acquires a lock."""
    if kind == "lock":
        return True
    if isinstance(expr, ast.Call):  # with lock_for(key):
        expr = expr.func
    name = _terminal_name(expr)
    return name is not None and any(word in name.lower() for word in _LOCK_WORDS)


def _call_attr(node: ast.AST) -> tuple[ast.expr, str] | None:
    """For ``x.attr(...)`` return ``(x, "attr")``."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.value, node.func.attr
    return None


def _is_method_call(node: ast.AST, name: str, method: str) -> bool:
    """Return whether ``node`` is the call ``name.method(...)``."""
    attr = _call_attr(node)
    return (
        attr is not None
        and attr[1] == method
        and isinstance(attr[0], ast.Name)
        and attr[0].id == name
    )


def _has_true_kw(call: ast.Call, name: str) -> bool:
    return any(
        kw.arg == name and isinstance(kw.value, ast.Constant) and kw.value.value is True
        for kw in call.keywords
    )


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


@dataclass(eq=False)
class _Scope:
    """A function (or the module) body, without the bodies of functions nested in it."""

    node: ast.AST
    parent: _Scope | None
    is_async: bool = False
    class_name: str | None = None
    nodes: list[ast.AST] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)
    defs: dict[str, _FunctionNode] = field(default_factory=dict)
    inner_names: set[str] = field(default_factory=set)

    def lookup_kind(self, name: str) -> str | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.kinds:
                return scope.kinds[name]
            if name in scope.bound:
                return None
            scope = scope.parent
        return None

    def lookup_def(self, name: str) -> _FunctionNode | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.defs:
                return scope.defs[name]
            if name in scope.bound:
                return None
            scope = scope.parent
        return None

    def shadows(self, name: str) -> bool:
        """Return whether a function scope (not the module) binds ``name`` locally."""
        scope: _Scope | None = self
        while scope is not None and scope.parent is not None:
            if name in scope.bound or name in scope.defs:
                return True
            scope = scope.parent
        return False


def _body_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Yield every node of a scope's body, not entering nested functions or classes."""
    if isinstance(node, ast.Lambda):
        roots: list[ast.AST] = [node.body]
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
        roots = list(node.body)
    else:  # pragma: no cover - defensive
        roots = []
    stack = list(reversed(roots))
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, _SCOPE_NODES):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(current))))


class _Analyser(ast.NodeVisitor):
    """Walks a module, builds its scopes and runs every rule over them."""

    def __init__(self, tree: ast.Module, path: str) -> None:
        self.tree = tree
        self.path = path
        self.found: list[Diagnostic] = []
        self.aliases: dict[str, str] = {}
        self.module_bound: set[str] = set()
        self.parents: dict[ast.AST, ast.AST] = {}
        self.scopes: list[_Scope] = []
        self.scope_of: dict[ast.AST, _Scope] = {}
        self.worker_classes: dict[str, str] = {}
        self.async_methods: dict[str, set[str]] = {}
        self._stack: list[_Scope] = []
        self._class_stack: list[str] = []

    # -- building ---------------------------------------------------------------------------

    def run(self) -> list[Diagnostic]:
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        self._collect_imports()
        self.visit(self.tree)
        for scope in self.scopes:
            self._collect_kinds(scope)
        for scope in self.scopes:
            self._check_scope(scope)
        self._check_thread_targets()
        return self.found

    def _collect_imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for stmt in self.tree.body:
            for target in self._bound_by(stmt):
                self.module_bound.add(target)

    @staticmethod
    def _bound_by(stmt: ast.AST) -> Iterator[str]:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield stmt.name
        elif isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        yield sub.id

    def _new_scope(self, node: ast.AST, *, is_async: bool = False) -> _Scope:
        parent = self._stack[-1] if self._stack else None
        class_name = self._class_stack[-1] if self._class_stack else None
        scope = _Scope(node, parent, is_async=is_async, class_name=class_name)
        scope.nodes = list(_body_nodes(node))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                scope.bound.add(arg.arg)
            for extra in (args.vararg, args.kwarg):
                if extra is not None:
                    scope.bound.add(extra.arg)
        for sub in scope.nodes:
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                scope.bound.add(sub.id)
            elif isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                scope.defs[sub.name] = sub
            elif isinstance(sub, ast.ClassDef):
                scope.bound.add(sub.name)
        if parent is not None:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name):
                    parent.inner_names.add(sub.id)
        self.scopes.append(scope)
        self.scope_of[node] = scope
        return scope

    def visit_Module(self, node: ast.Module) -> None:
        self._stack.append(self._new_scope(node))
        self.generic_visit(node)
        self._stack.pop()

    def _visit_function(self, node: ast.AST, *, is_async: bool) -> None:
        self._stack.append(self._new_scope(node, is_async=is_async))
        saved, self._class_stack = self._class_stack, []
        self.generic_visit(node)
        self._class_stack = saved
        self._stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node, is_async=False)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node, is_async=True)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_function(node, is_async=False)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            base_kind = self._constructor_kind(base, None)
            if base_kind in _WORKER_KINDS:
                self.worker_classes[node.name] = base_kind
        self.async_methods[node.name] = {
            stmt.name
            for stmt in node.body
            if isinstance(stmt, ast.AsyncFunctionDef) and not _is_generator(stmt)
        }
        # A class body is not a scope for our rules; its methods are.
        self._class_stack.append(node.name)
        self.generic_visit(node)
        self._class_stack.pop()

    # -- name resolution --------------------------------------------------------------------

    def qualname(self, expr: ast.expr, scope: _Scope | None) -> str | None:
        """Return the dotted name ``expr`` refers to, resolved through imports, or None."""
        if isinstance(expr, ast.Name):
            if scope is not None and scope.shadows(expr.id):
                return None
            if expr.id in self.aliases:
                name = self.aliases[expr.id]
            elif expr.id in self.module_bound:
                return None
            elif expr.id in _BUILTIN_NAMES:
                name = f"builtins.{expr.id}"
            else:
                return None
            return _CANONICAL.get(name, name)
        if isinstance(expr, ast.Attribute):
            base = self.qualname(expr.value, scope)
            if base is None:
                return None
            name = f"{base}.{expr.attr}"
            return _CANONICAL.get(name, name)
        return None

    def _constructor_kind(self, func: ast.expr, scope: _Scope | None) -> str | None:
        """Return what calling ``func`` makes (``"thread"``, ``"thread_pool"``, ...)."""
        name = self.qualname(func, scope)
        if name is not None and name in _CONSTRUCTOR_KINDS:
            return _CONSTRUCTOR_KINDS[name]
        if (
            isinstance(func, ast.Name)
            and func.id in self.worker_classes
            and (scope is None or not scope.shadows(func.id))
        ):
            return self.worker_classes[func.id]
        if isinstance(func, ast.Attribute) and scope is not None:
            owner = self.kind_of(func.value, scope)
            if owner == "mp_context":
                return {"Process": "process", "Pool": "mp_pool"}.get(func.attr)
            if owner in _SUBMIT_KINDS and func.attr == "submit":
                return "future"
        return None

    def kind_of(self, expr: ast.expr, scope: _Scope) -> str | None:
        """Return what ``expr`` evaluates to, as far as the module tells."""
        if isinstance(expr, ast.Call):
            return self._constructor_kind(expr.func, scope)
        if isinstance(expr, ast.Name):
            return scope.lookup_kind(expr.id)
        return None

    def _collect_kinds(self, scope: _Scope) -> None:
        for node in scope.nodes:
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                kind = self.kind_of(node.value, scope)
                if kind is None and isinstance(node.value, _ELEMENT_COMPS):
                    element = self.kind_of(node.value.elt, scope)
                    kind = f"{element}_list" if element else None
                for target in targets:
                    if isinstance(target, ast.Name) and kind is not None:
                        scope.kinds[target.id] = kind
            elif isinstance(node, ast.With | ast.AsyncWith):
                for item in node.items:
                    kind = self.kind_of(item.context_expr, scope)
                    if kind is not None and isinstance(item.optional_vars, ast.Name):
                        scope.kinds[item.optional_vars.id] = kind
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                kind = self.kind_of(node.iter, scope)
                if kind is not None and kind.endswith("_list"):
                    scope.kinds[node.target.id] = kind.removesuffix("_list")
            elif (attr := _call_attr(node)) is not None and attr[1] == "append":
                owner, _ = attr
                call = node
                assert isinstance(call, ast.Call)
                if isinstance(owner, ast.Name) and len(call.args) == 1:
                    element = self.kind_of(call.args[0], scope)
                    if element in _WORKER_KINDS or element == "future":
                        scope.kinds.setdefault(owner.id, f"{element}_list")

    # -- helpers ----------------------------------------------------------------------------

    def report(self, node: ast.AST, code: str, message: str, fix: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        self.found.append(Diagnostic(self.path, line, col, code, message, fix))

    def _ancestors(self, node: ast.AST, scope: _Scope) -> Iterator[tuple[ast.AST, ast.AST]]:
        """Yield ``(ancestor, child)`` pairs from ``node`` up to the scope's node."""
        child = node
        while child is not scope.node and child in self.parents:
            parent = self.parents[child]
            yield parent, child
            child = parent

    def _under_lock(self, node: ast.AST, scope: _Scope) -> bool:
        for parent, _ in self._ancestors(node, scope):
            if isinstance(parent, ast.With | ast.AsyncWith):
                for item in parent.items:
                    if _is_lock_like(item.context_expr, self.kind_of(item.context_expr, scope)):
                        return True
        return False

    def _under_main_guard(self, node: ast.AST, scope: _Scope) -> bool:
        for parent, child in self._ancestors(node, scope):
            if isinstance(parent, ast.If) and _is_main_guard(parent.test):
                return child in parent.body
        return False

    def _per_item_loop(self, node: ast.AST, scope: _Scope) -> ast.AST | None:
        """Return the loop that runs ``node`` once per item of data, if any."""
        for parent, child in self._ancestors(node, scope):
            if isinstance(parent, ast.While) and child is not parent.test:
                return parent
            if (
                isinstance(parent, ast.For | ast.AsyncFor)
                and child in parent.body
                and not self._bounded_iter(parent.iter, scope)
            ):
                return parent
            if (
                isinstance(parent, _COMPREHENSIONS)
                and child is not parent.generators[0]
                and not self._bounded_iter(parent.generators[0].iter, scope)
            ):
                return parent
        return None

    def _bounded_iter(self, expr: ast.expr, scope: _Scope) -> bool:
        """Return whether iterating ``expr`` gives a count fixed in the source."""
        if isinstance(expr, ast.Tuple | ast.List | ast.Set):
            return True
        if isinstance(expr, ast.Call) and self.qualname(expr.func, scope) == "builtins.range":
            args = expr.args
            if any(
                isinstance(a, ast.Call) and self.qualname(a.func, scope) == "builtins.len"
                for a in args
            ):
                return False
            if all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in args):
                values = [
                    a.value
                    for a in args
                    if isinstance(a, ast.Constant) and isinstance(a.value, int)
                ]
                count = len(range(*values)) if values else 0
                return count <= _MAX_FIXED_WORKERS
            return True  # range(n_workers): a bound chosen by the caller
        return False

    def _other_uses(self, name: str, scope: _Scope, allowed: set[str]) -> bool:
        """Return whether ``name`` is used other than as ``name.<allowed attr>`` or a store."""
        if name in scope.inner_names:
            return True
        for node in scope.nodes:
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
                parent = self.parents.get(node)
                if isinstance(parent, ast.Attribute) and parent.attr in allowed:
                    continue
                return True
        return False

    # -- per-scope rules --------------------------------------------------------------------

    def _check_scope(self, scope: _Scope) -> None:
        for node in scope.nodes:
            if isinstance(node, ast.Call):
                if scope.is_async:
                    self._check_blocking(node, scope)
                self._check_loop_workers(node, scope)
                if scope.parent is None:
                    self._check_main_guard(node, scope)
                self._check_chained(node, scope)
            elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
                self._check_discarded(node.value, scope)
        self._check_lifecycles(scope)

    def _check_blocking(self, call: ast.Call, scope: _Scope) -> None:
        """APC101: blocking calls inside ``async def``."""
        if isinstance(self.parents.get(call), ast.Await):
            return
        name = self.qualname(call.func, scope)
        what: str | None = None
        fix = _THREAD_FIX
        if name in _BLOCKING_CALLS:
            what, fix = f"{name.removeprefix('builtins.')}()", _BLOCKING_CALLS[name]
        elif name is not None and name.count(".") == 1:
            module, verb = name.split(".")
            if module in _HTTP_MODULES and verb in _HTTP_VERBS:
                what = f"{name}()"
                fix = "use an async HTTP client (httpx.AsyncClient, aiohttp)"
        if what is None and (attr := _call_attr(call)) is not None:
            owner, method = attr
            owner_kind = self.kind_of(owner, scope)
            if method in {"read", "readlines"} and owner_kind == "file" and not call.args:
                what = f"whole-file {method}()"
            elif method in _PATH_IO:
                what = f"Path.{method}()"
            elif self._after_awaited_try(call, scope):
                pass  # `try: await done finally: t.join()`: the wait already happened
            elif method == "join" and owner_kind in _WORKER_KINDS:
                what = f"{owner_kind.capitalize()}.join()"
            elif method == "result" and owner_kind == "future":
                what = "Future.result()"
                fix = "use `await asyncio.wrap_future(future)`"
        if what is not None:
            func = scope.node
            fname = getattr(func, "name", "<lambda>")
            self.report(
                call,
                "APC101",
                f"blocking call {what} inside `async def {fname}` stops the event loop",
                fix,
            )

    def _expects_error(self, node: ast.AST, scope: _Scope) -> bool:
        """Return whether ``node`` is inside ``with pytest.raises(...)``/``assertRaises``."""
        for parent, _ in self._ancestors(node, scope):
            if isinstance(parent, ast.With):
                for item in parent.items:
                    expr = item.context_expr
                    if isinstance(expr, ast.Call):
                        name = _terminal_name(expr.func) or ""
                        if name == "raises" or name.startswith("assertRaises"):
                            return True
        return False

    def _after_awaited_try(self, node: ast.AST, scope: _Scope) -> bool:
        """Return whether ``node`` is in the ``else:``/``finally:`` of a ``try:`` that awaits."""
        for parent, child in self._ancestors(node, scope):
            if isinstance(parent, ast.Try) and (
                child in parent.orelse or child in parent.finalbody
            ):
                return any(
                    isinstance(sub, ast.Await) for stmt in parent.body for sub in ast.walk(stmt)
                )
        return False

    def _check_discarded(self, call: ast.Call, scope: _Scope) -> None:
        """APC102, APC103, APC302: results thrown away by an expression statement."""
        name = self.qualname(call.func, scope)
        func = call.func
        coroutine: str | None = None
        if name in _COROUTINE_FUNCTIONS:
            coroutine = name
        elif isinstance(func, ast.Name) and not scope.shadows(func.id):
            target = self.tree_async_defs().get(func.id)
            if target is not None:
                coroutine = func.id
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in {"self", "cls"}
        ):
            owner = self._enclosing_class(scope)
            if owner is not None and func.attr in self.async_methods.get(owner, set()):
                coroutine = f"{func.value.id}.{func.attr}"
        if coroutine is not None:
            self.report(
                call,
                "APC102",
                f"coroutine {coroutine}() is created but never awaited, so it never runs",
                f"`await {coroutine}(...)`, or keep it: `task = asyncio.create_task(...)`",
            )
            return
        is_task = name in _TASK_FUNCTIONS
        if not is_task and isinstance(func, ast.Attribute) and func.attr == "create_task":
            owner_kind = self.kind_of(func.value, scope)
            is_task = owner_kind == "loop" or (
                owner_kind is None and _terminal_name(func.value) in _LOOP_NAMES
            )
        if is_task:
            self.report(
                call,
                "APC103",
                "task is not kept: it may be garbage collected mid-run and its exception "
                "is never seen",
                "keep a reference and await it (`task = asyncio.create_task(...)`), or use "
                "`asyncio.TaskGroup`",
            )
            return
        if (attr := _call_attr(call)) is not None:
            receiver, method = attr
            kind = self.kind_of(receiver, scope)
            if (
                (kind in _SUBMIT_KINDS and method == "submit")
                or (
                    kind in _MP_POOL_KINDS
                    and method in {"apply_async", "map_async", "starmap_async"}
                )
            ) and not self._expects_error(call, scope):
                self.report(
                    call,
                    "APC302",
                    f"the result of {method}() is thrown away, so an exception in the task is "
                    "silently lost",
                    "keep the future and call `.result()` on it (or use `executor.map`)",
                )

    def tree_async_defs(self) -> dict[str, ast.AsyncFunctionDef]:
        """Module-level ``async def`` functions that are coroutine functions."""
        return {
            stmt.name: stmt
            for stmt in self.tree.body
            if isinstance(stmt, ast.AsyncFunctionDef) and not _is_generator(stmt)
        }

    def _enclosing_class(self, scope: _Scope) -> str | None:
        return scope.class_name

    def _check_loop_workers(self, call: ast.Call, scope: _Scope) -> None:
        """APC203: a thread or process per item of a loop."""
        kind = self._constructor_kind(call.func, scope)
        if kind not in _WORKER_KINDS:
            return
        if self._per_item_loop(call, scope) is not None:
            self.report(
                call,
                "APC203",
                f"a new {kind} is created for every item of a loop: the number of "
                f"{kind}es grows with the data".replace("threades", "threads"),
                "use a bounded pool: `with ThreadPoolExecutor(max_workers=N) as ex: "
                "ex.map(fn, items)` (or ProcessPoolExecutor)",
            )

    def _check_main_guard(self, call: ast.Call, scope: _Scope) -> None:
        """APC204: processes started at module level without a ``__main__`` guard."""
        kind = self._constructor_kind(call.func, scope)
        what: str | None = None
        if kind in {"process_pool", "mp_pool"}:
            what = "a process pool is created"
        elif (
            (attr := _call_attr(call)) is not None
            and attr[1] == "start"
            and self.kind_of(attr[0], scope) == "process"
        ):
            what = "a process is started"
        if what is not None and not self._under_main_guard(call, scope):
            self.report(
                call,
                "APC204",
                f'{what} at module level without an `if __name__ == "__main__":` guard; '
                "child processes re-import the module",
                'move it under `if __name__ == "__main__":` (or into a function called there)',
            )

    def _check_chained(self, call: ast.Call, scope: _Scope) -> None:
        """APC202/APC301 for objects that are used without ever being named."""
        attr = _call_attr(call)
        if attr is None or not isinstance(attr[0], ast.Call):
            return
        owner, method = attr
        kind = self.kind_of(owner, scope)
        assert isinstance(owner, ast.Call)
        if kind in _WORKER_KINDS and method == "start" and not _has_true_kw(owner, "daemon"):
            self.report(
                owner,
                "APC202",
                f"this {kind} is started but can never be joined",
                f"keep it and call `.join()`: `t = {ast.unparse(owner.func)}(...); t.start(); "
                "...; t.join()` (or pass daemon=True if it may be killed at exit)",
            )
        elif kind in _EXECUTOR_KINDS and method not in _SHUTDOWN_ATTRS:
            self.report(
                owner,
                "APC301",
                "this executor is never shut down: its workers leak",
                f"use `with {ast.unparse(owner.func)}(...) as executor:`",
            )

    def _check_lifecycles(self, scope: _Scope) -> None:
        """APC202, APC301, APC302 for named threads, executors and futures."""
        assigned: dict[str, ast.Call] = {}
        for node in scope.nodes:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                name = node.targets[0].id
                value = node.value
                if isinstance(value, ast.Call):
                    assigned[name] = value
                elif isinstance(value, _ELEMENT_COMPS) and isinstance(value.elt, ast.Call):
                    assigned[name] = value.elt
        for name, kind in scope.kinds.items():
            if kind in _WORKER_KINDS and name in assigned:
                self._check_worker(name, kind, assigned[name], scope)
            elif kind in _EXECUTOR_KINDS and name in assigned:
                self._check_executor(name, assigned[name], scope)
            elif kind == "future" and name in assigned:
                if not self._other_uses(name, scope, set()):
                    self._future_lost(assigned[name])
            elif kind.endswith("_list") and kind.removesuffix("_list") in _WORKER_KINDS:
                self._check_worker_list(name, kind.removesuffix("_list"), assigned, scope)
            elif kind == "future_list" and not self._other_uses(name, scope, {"append"}):
                where = assigned.get(name) or self._first_append(name, scope)
                if where is not None:
                    self._future_lost(where)

    def _first_append(self, name: str, scope: _Scope) -> ast.AST | None:
        for node in scope.nodes:
            if _is_method_call(node, name, "append"):
                return node
        return None

    def _future_lost(self, node: ast.AST) -> None:
        self.report(
            node,
            "APC302",
            "these futures are never used afterwards, so an exception in a task is silently lost",
            "call `.result()` on each future (or iterate `concurrent.futures.as_completed`)",
        )

    def _daemon_set(self, name: str, scope: _Scope) -> bool:
        for node in scope.nodes:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and target.attr == "daemon"
                        and isinstance(target.value, ast.Name)
                        and target.value.id == name
                    ):
                        return True
            elif _is_method_call(node, name, "setDaemon"):
                return True
        return False

    def _method_called(self, name: str, method: str, scope: _Scope) -> bool:
        return any(_is_method_call(node, name, method) for node in scope.nodes)

    def _check_worker(self, name: str, kind: str, ctor: ast.Call, scope: _Scope) -> None:
        if self.kind_of(ctor, scope) != kind or _has_true_kw(ctor, "daemon"):
            return
        if self._daemon_set(name, scope) or not self._method_called(name, "start", scope):
            return
        # Any use other than t.start()/t.join()/t.name... (returned, stored, put in a list that
        # is handed on) means it may be joined elsewhere: stay quiet.
        allowed = {"start", "join", "name", "is_alive", "ident", "pid", "exitcode", "daemon"}
        if self._method_called(name, "join", scope):
            return
        if self._other_uses(name, scope, allowed):
            return
        self.report(
            ctor,
            "APC202",
            f"{kind} {name!r} is started but never joined (and is not a daemon)",
            f"call `{name}.join()` before the end of this scope",
        )

    def _check_worker_list(
        self, name: str, kind: str, assigned: dict[str, ast.Call], scope: _Scope
    ) -> None:
        """A list of threads: joined when a loop over it joins its items."""
        if self._list_escapes(name, scope):
            return
        started = joined = daemon = False
        for node in scope.nodes:
            if isinstance(node, ast.For | ast.comprehension) and isinstance(node.iter, ast.Name):
                if node.iter.id != name or not isinstance(node.target, ast.Name):
                    continue
                var = node.target.id
                loop = node if isinstance(node, ast.For) else self.parents[node]
                for sub in ast.walk(loop):
                    started |= _is_method_call(sub, var, "start")
                    joined |= _is_method_call(sub, var, "join")
                daemon |= self._daemon_set(var, scope)
        ctor = assigned.get(name)
        if ctor is None:
            # Built with .append(t): the items were made (and maybe started) one by one.
            for node in scope.nodes:
                if not (_is_method_call(node, name, "append") and isinstance(node, ast.Call)):
                    continue
                item = node.args[0] if node.args else None
                if isinstance(item, ast.Name):
                    started |= self._method_called(item.id, "start", scope)
                    daemon |= self._daemon_set(item.id, scope)
                    joined |= self._method_called(item.id, "join", scope)
                    if item.id in assigned:
                        ctor = ctor or assigned[item.id]
                elif isinstance(item, ast.Call):
                    ctor = ctor or item
        if ctor is None or _has_true_kw(ctor, "daemon") or daemon or joined or not started:
            return
        self.report(
            ctor,
            "APC202",
            f"the {kind}es in {name!r} are started but never joined".replace("threades", "threads"),
            f"join them: `for t in {name}: t.join()`",
        )

    def _list_escapes(self, name: str, scope: _Scope) -> bool:
        """Return whether a list is used other than appended to, iterated or measured."""
        if name in scope.inner_names:
            return True
        for node in scope.nodes:
            if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load):
                parent = self.parents.get(node)
                if isinstance(parent, ast.Attribute) and parent.attr == "append":
                    continue
                if isinstance(parent, ast.For | ast.comprehension) and parent.iter is node:
                    continue
                if isinstance(parent, ast.Call) and self.qualname(parent.func, scope) == (
                    "builtins.len"
                ):
                    continue
                return True
        return False

    def _check_executor(self, name: str, ctor: ast.Call, scope: _Scope) -> None:
        if self._constructor_kind(ctor.func, scope) not in _EXECUTOR_KINDS:
            return
        for node in scope.nodes:
            if (
                isinstance(node, ast.Attribute)
                and node.attr in _SHUTDOWN_ATTRS
                and isinstance(node.value, ast.Name)
                and node.value.id == name
            ):
                return
            if isinstance(node, ast.With | ast.AsyncWith):
                for item in node.items:
                    if isinstance(item.context_expr, ast.Name) and item.context_expr.id == name:
                        return
        allowed = {
            "submit",
            "map",
            "imap",
            "imap_unordered",
            "starmap",
            "apply",
            "apply_async",
            "map_async",
            "starmap_async",
            "amap",
        }
        if self._other_uses(name, scope, allowed):
            return
        self.report(
            ctor,
            "APC301",
            f"executor {name!r} is created without `with` and never shut down: its workers leak",
            f"use `with {ast.unparse(ctor.func)}(...) as {name}:` "
            f"(or call `{name}.shutdown()` in a `finally:`)",
        )

    # -- thread targets (APC201, APC303) ----------------------------------------------------

    def _thread_targets(self) -> Iterator[tuple[ast.Call, ast.expr, _Scope]]:
        """Yield ``(call, fn)`` for every function handed to a thread."""
        for scope in self.scopes:
            for node in scope.nodes:
                if not isinstance(node, ast.Call):
                    continue
                if self._constructor_kind(node.func, scope) == "thread":
                    target = _kw(node, "target")
                    if target is not None:
                        yield node, target, scope
                    continue
                name = self.qualname(node.func, scope)
                if name == "asyncio.to_thread" and node.args:
                    yield node, node.args[0], scope
                    continue
                attr = _call_attr(node)
                if attr is None:
                    continue
                owner, method = attr
                kind = self.kind_of(owner, scope)
                if kind in _THREAD_POOL_KINDS and node.args:
                    if method in {"submit", "map"} or (
                        kind == "mp_thread_pool"
                        and method
                        in {"apply", "apply_async", "imap", "imap_unordered", "map_async"}
                    ):
                        yield node, node.args[0], scope
                elif method == "run_in_executor" and len(node.args) >= 2:
                    executor = node.args[0]
                    if (
                        isinstance(executor, ast.Constant) and executor.value is None
                    ) or self.kind_of(executor, scope) in _THREAD_POOL_KINDS:
                        yield node, node.args[1], scope

    def _resolve_function(self, fn: ast.expr, scope: _Scope) -> ast.FunctionDef | None:
        if isinstance(fn, ast.Call) and self.qualname(fn.func, scope) == "functools.partial":
            if not fn.args:
                return None
            fn = fn.args[0]
        if isinstance(fn, ast.Name):
            found = scope.lookup_def(fn.id)
            if isinstance(found, ast.FunctionDef):
                return found
        return None

    def _check_thread_targets(self) -> None:
        seen_shared: set[ast.AST] = set()
        for call, fn, scope in self._thread_targets():
            func = self._resolve_function(fn, scope)
            if func is None:
                continue
            if func not in seen_shared:
                seen_shared.add(func)
                self._check_shared_state(func)
            if _PurityCheck(self, func).is_cpu_bound():
                self.report(
                    call,
                    "APC303",
                    f"{func.name}() is pure computation (CPU-bound) but runs on a thread; on "
                    "a GIL build threads cannot run it in parallel",
                    'use processes: `ProcessPoolExecutor` (or `anypool.Pool(backend="process")`)',
                )

    def _check_shared_state(self, func: ast.FunctionDef) -> None:
        """APC201: global/nonlocal read-modify-write without a lock in a thread target."""
        scope = self.scope_of[func]
        shared: set[str] = set()
        for node in scope.nodes:
            if isinstance(node, ast.Global | ast.Nonlocal):
                shared.update(node.names)
            elif (attr := _call_attr(node)) is not None and attr[1] == "acquire":
                return  # explicit acquire()/release(): too hard to follow, stay quiet
        if not shared:
            return
        for node in scope.nodes:
            name: str | None = None
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                name = node.target.id
            elif (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                target = node.targets[0].id
                if any(
                    isinstance(sub, ast.Name) and sub.id == target for sub in ast.walk(node.value)
                ):
                    name = target
            if name in shared and not self._under_lock(node, scope):
                self.report(
                    node,
                    "APC201",
                    f"shared variable {name!r} is changed without a lock in {func.name}(), "
                    "which runs on threads: updates can be lost",
                    f"guard it with a lock: `with lock: {name} += ...` "
                    "(lock = threading.Lock() made once, outside the function)",
                )


def _is_generator(func: _FunctionNode) -> bool:
    return any(
        isinstance(node, ast.Yield | ast.YieldFrom)
        for node in _body_nodes(func)
        if not isinstance(node, _SCOPE_NODES)
    )


class _PurityCheck:
    """Decides whether a function is pure, CPU-bound computation (APC303)."""

    def __init__(self, analyser: _Analyser, func: ast.FunctionDef) -> None:
        self.analyser = analyser
        self.func = func

    def is_cpu_bound(self) -> bool:
        """Pure (allow-listed operations only) and doing real work (a loop or recursion)."""
        return self._pure(self.func, set()) and self._heavy(self.func)

    def _heavy(self, func: ast.FunctionDef) -> bool:
        scope = self.analyser.scope_of[func]
        for node in scope.nodes:
            if isinstance(node, ast.While):
                return True
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == func.name:  # recursion
                    return True
                if self.analyser.qualname(node.func, scope) == "builtins.range":
                    return True
        return False

    def _pure(self, func: ast.FunctionDef, visiting: set[ast.AST]) -> bool:
        if func in visiting:
            return True
        visiting.add(func)
        if func.decorator_list or func.args.defaults or func.args.kw_defaults:
            return False
        scope = self.analyser.scope_of[func]
        local_containers: set[str] = set()
        for node in scope.nodes:
            if isinstance(node, ast.Assign) and isinstance(
                node.value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.SetComp
            ):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        local_containers.add(target.id)
        for node in scope.nodes:
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call | ast.Constant):
                return False
            if isinstance(node, ast.AnnAssign):
                continue
            if not isinstance(node, _PURE_NODES):
                return False
            if isinstance(node, ast.Attribute):
                parent = self.analyser.parents.get(node)
                if not (isinstance(parent, ast.Call) and parent.func is node):
                    name = self.analyser.qualname(node, scope)
                    if name is None or not name.startswith(_PURE_MODULES):
                        return False
            if isinstance(node, ast.Call) and not self._pure_call(
                node, scope, local_containers, visiting
            ):
                return False
        return True

    def _pure_call(
        self, call: ast.Call, scope: _Scope, local_containers: set[str], visiting: set[ast.AST]
    ) -> bool:
        func = call.func
        name = self.analyser.qualname(func, scope)
        if name is not None:
            if name.startswith("builtins."):
                return name.removeprefix("builtins.") in _PURE_BUILTINS
            return name.startswith(_PURE_MODULES)
        if isinstance(func, ast.Name):
            target = scope.lookup_def(func.id)
            return isinstance(target, ast.FunctionDef) and self._pure(target, visiting)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.value.id in local_containers and func.attr in _PURE_METHODS
        return False


def analyse(tree: ast.Module, path: str) -> list[Diagnostic]:
    """Run every rule over a parsed module and return what they find (unsorted).

    Args:
        tree: The module, as returned by :func:`ast.parse`.
        path: The path to put in each diagnostic.

    Returns:
        The diagnostics, one per problem found.
    """
    return _Analyser(tree, path).run()
