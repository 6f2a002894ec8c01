"""Write the code that follows from the option declaration (``OPTIONS`` in ``_options.py``).

Run ``python -m anypool._core._gen`` (``make generate``) after changing :data:`OPTIONS` or the
templates here. It rewrites only the blocks between ``# BEGIN GENERATED <name>`` and
``# END GENERATED <name>`` markers:

- ``_options.py``: the ``TypedDict`` classes (``MapKwargs``, ``ApiKwargs`` and the variants
  without ``errors`` that the overloads use);
- ``_pool.py``: the option parameters of ``Pool.__init__`` and the dict that collects them, and
  the overloads of ``Pool.imap``/``imap_unordered``/``amap``/``aimap``;
- ``_api.py``: the overloads of ``map``/``imap``/``imap_unordered``/``amap``.

``python -m anypool._core._gen --check`` (and ``tests/test_generated.py``) regenerates in memory
and fails when a file differs: the generated code is never stale on main.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ._options import API, METHOD, OPTIONS, POOL, Option

HERE = Path(__file__).resolve().parent
COMMAND = "python -m anypool._core._gen"


# -- the typed declarations -----------------------------------------------------------------
def _keys(options: list[Option], indent: str = "    ") -> str:
    return "".join(f"{indent}{o.name}: {o.annotation}\n" for o in options)


def _doc_keys(options: list[Option]) -> str:
    lines = []
    for o in options:
        doc = o.doc + (f" *Added in {o.added}.*" if o.added else "")
        lines.append(
            textwrap.fill(
                f"{o.name}: {doc}",
                width=96,
                initial_indent="        ",
                subsequent_indent="            ",
                break_on_hyphens=False,
            )
        )
    return "\n".join(lines) + "\n"


def typed_dicts() -> str:
    """The TypedDict classes of the map and pool options."""
    per_call = [o for o in OPTIONS if METHOD in o.where]
    no_errors = [o for o in per_call if o.name != "errors"]
    errors = [o for o in per_call if o.name == "errors"]
    pool = [o for o in OPTIONS if API in o.where and METHOD not in o.where]
    return f'''\
class _MapKwargsNoErrors(TypedDict, total=False):
    """:class:`MapKwargs` without ``errors``: the typed overloads take ``errors`` separately.

    Overloads on ``errors=`` (``"collect"`` gives :class:`~anypool.Result` items) need the
    other options in a TypedDict of their own; :class:`MapKwargs` adds ``errors`` back.
    """

{_keys(no_errors)}

class MapKwargs(_MapKwargsNoErrors, total=False):
    """Per-call options of ``map``, ``imap``, ``imap_unordered``, ``amap`` and ``aimap``.

    Any option not given takes the pool's setting (for the one-call functions: the default).

    Keys:
{_doc_keys(per_call)}
    .. versionadded:: 0.1
    """

{_keys(errors)}

class _PoolKwargs(TypedDict, total=False):
    """The pool options the one-call functions take (see :class:`ApiKwargs`)."""

{_keys(pool)}

class _ApiKwargsNoErrors(_MapKwargsNoErrors, _PoolKwargs, total=False):
    """:class:`ApiKwargs` without ``errors`` (for the overloads on ``errors=``)."""


class ApiKwargs(MapKwargs, _PoolKwargs, total=False):
    """Options of the one-call functions: the map options plus the pool's.

    Keys (besides :class:`MapKwargs`'s):
{_doc_keys(pool)}
    .. versionadded:: 0.1
    """
'''


# -- Pool.__init__ --------------------------------------------------------------------------
def _pool_options() -> list[Option]:
    return [o for o in OPTIONS if POOL in o.where]


def pool_params() -> str:
    """The keyword parameters of ``Pool.__init__`` that are declared options."""
    return "".join(
        f"        {o.name}: {o.annotation} = {o.default_src},\n" for o in _pool_options()
    )


def pool_option_values() -> str:
    """The dict of those parameters, as ``Pool.__init__`` hands them to the checks."""
    items = "".join(f'            "{o.name}": {o.name},\n' for o in _pool_options())
    return f"        option_values: dict[str, Any] = {{\n{items}        }}\n"


# -- overloads ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """One function or method whose results are typed by ``fn`` and ``errors=``."""

    name: str
    method: bool  # a Pool method (``self``; the per-call options) or a one-call function
    is_async: bool
    container: str  # "list", "Iterator" or "AsyncIterator"
    ordered: bool = False  # takes ``ordered: bool``


_CORO = "Callable[..., Coroutine[Any, Any, T]]"
_PLAIN = "Callable[..., T]"


def overloads(f: Family) -> str:
    """The six overloads, in the order the note in ``_api.py`` explains."""
    indent = "    " if f.method else ""
    kwargs = (
        ("_MapKwargsNoErrors", "MapKwargs") if f.method else ("_ApiKwargsNoErrors", "ApiKwargs")
    )
    c = f.container
    cases = [
        (_CORO, 'errors: Literal["collect"],', kwargs[0], f"{c}[Result[T]]"),
        (_CORO, 'errors: Literal["raise"] = ...,', kwargs[0], f"{c}[T]"),
        (_PLAIN, 'errors: Literal["collect"],', kwargs[0], f"{c}[Result[T]]"),
        (_PLAIN, 'errors: Literal["raise"] = ...,', kwargs[0], f"{c}[T]"),
        (_CORO, None, kwargs[1], f"{c}[T] | {c}[Result[T]]"),
        (_PLAIN, None, kwargs[1], f"{c}[T] | {c}[Result[T]]"),
    ]
    out = []
    for fn, errors, options, result in cases:
        params = ["self"] if f.method else []
        params += [f"fn: {fn}", "*iterables: Iterable[Any]"]
        if not f.method:
            params += ["backend: str | Executor = ...", "workers: int | None = ..."]
        if f.ordered:
            params.append("ordered: bool = ...")
        if errors is not None:
            params.append(errors.rstrip(","))
        params.append(f"**options: Unpack[{options}]")
        body = "".join(f"{indent}    {p},\n" for p in params)
        head = "async def" if f.is_async else "def"
        out.append(
            f"{indent}@overload\n{indent}{head} {f.name}(\n{body}{indent}) -> {result}: ...\n"
        )
    return "\n\n".join(out) if not f.method else "\n".join(out)


API_FAMILIES = (
    Family("map", method=False, is_async=False, container="list"),
    Family("imap", method=False, is_async=False, container="Iterator"),
    Family("imap_unordered", method=False, is_async=False, container="Iterator"),
    Family("amap", method=False, is_async=True, container="list", ordered=True),
)
POOL_FAMILIES = (
    Family("imap", method=True, is_async=False, container="Iterator"),
    Family("imap_unordered", method=True, is_async=False, container="Iterator"),
    Family("amap", method=True, is_async=True, container="list", ordered=True),
    Family("aimap", method=True, is_async=False, container="AsyncIterator", ordered=True),
)


def blocks() -> dict[Path, dict[str, str]]:
    """Every generated block: file -> {block name: its text}."""
    return {
        HERE / "_options.py": {"typed options": typed_dicts()},
        HERE / "_pool.py": {
            "Pool options": pool_params(),
            "Pool option values": pool_option_values(),
            **{f"overloads of Pool.{f.name}": overloads(f) for f in POOL_FAMILIES},
        },
        HERE / "_api.py": {f"overloads of {f.name}": overloads(f) for f in API_FAMILIES},
    }


_BLOCK = re.compile(
    r"(?P<begin>^(?P<indent>[ \t]*)# BEGIN GENERATED (?P<name>[^\n]+?) \(.*\)\n)"
    r"(?P<body>.*?)"
    r"(?P<end>^[ \t]*# END GENERATED (?P=name)\n)",
    re.MULTILINE | re.DOTALL,
)


def render(text: str, generated: dict[str, str], path: Path) -> str:
    """``text`` with each generated block replaced by its new content."""
    seen: set[str] = set()

    def replace(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in generated:
            raise LookupError(f"{path.name}: no generator for the block {name!r}")
        seen.add(name)
        body = generated[name]
        # ruff format's blank lines: two around top-level definitions, one in a class body,
        # none inside a signature or a function body
        sep = ""
        if name.startswith("overloads") or name == "typed options":
            sep = "\n" if m["indent"] else "\n\n"
        return f"{m['begin']}{sep}{body}{sep}{m['end']}"

    new = _BLOCK.sub(replace, text)
    missing = set(generated) - seen
    if missing:
        raise LookupError(
            f"{path.name}: no '# BEGIN GENERATED <name> ({COMMAND})' markers for "
            + ", ".join(sorted(missing))
        )
    return new


def stale() -> list[Path]:
    """The files whose generated blocks differ from what the declaration gives."""
    return [p for p, g in blocks().items() if render(p.read_text(), g, p) != p.read_text()]


def main(argv: list[str]) -> int:
    """Rewrite the generated blocks (``--check``: only report stale files, exit 1)."""
    check = "--check" in argv
    changed = []
    for path, generated in blocks().items():
        old = path.read_text()
        new = render(old, generated, path)
        if new != old:
            changed.append(path)
            if not check:
                path.write_text(new)
    for path in changed:
        verb = "is stale; run `make generate`" if check else "regenerated"
        print(f"{path.relative_to(HERE.parent.parent.parent)}: {verb}")
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
