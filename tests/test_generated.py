"""The code generated from the option declaration is current, and follows the declaration.

``python -m anypool._core._gen`` (``make generate``) writes the typed options, the option
parameters of ``Pool`` and the overloads; like trio's ``gen_exports`` check, this regenerates
them in memory and fails when a file differs.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import anypool
from anypool._core import _gen, _options
from anypool._core._options import API, METHOD, OPTIONS, POOL, STAGE, Option


def test_the_generated_code_is_current() -> None:
    stale = [p.name for p in _gen.stale()]
    assert stale == [], f"{stale} differ from the declaration in _options.py: run `make generate`"


def test_the_check_command_passes_and_puts_an_edited_block_back() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "anypool._core._gen", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # a block edited by hand is put back by the generator
    path = _gen.HERE / "_api.py"
    text = path.read_text()
    edited = text.replace("-> list[T]: ...", "-> list[int]: ...", 1)
    assert edited != text
    assert _gen.render(edited, _gen.blocks()[path], path) == text


def test_an_option_is_one_entry_in_the_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = Option(
        name="max_widgets",
        annotation="int | None",
        default=None,
        default_src="None",
        check=lambda v: _options.check_positive_int("max_widgets", v),
        doc="at most this many widgets per worker.",
        where=frozenset({POOL, API, STAGE}),
    )
    monkeypatch.setattr(_gen, "OPTIONS", (*OPTIONS, extra))
    blocks = _gen.blocks()
    typed = blocks[_gen.HERE / "_options.py"]["typed options"]
    pool = blocks[_gen.HERE / "_pool.py"]
    assert "    max_widgets: int | None\n" in typed  # ApiKwargs: the functions and stages
    assert "max_widgets: at most this many widgets per worker." in typed
    assert "        max_widgets: int | None = None,\n" in pool["Pool options"]
    assert '"max_widgets": max_widgets,' in pool["Pool option values"]


def test_the_typed_options_follow_the_declaration() -> None:
    assert set(anypool.MapKwargs.__optional_keys__) == {
        o.name for o in OPTIONS if METHOD in o.where
    }
    assert set(anypool.ApiKwargs.__optional_keys__) == {o.name for o in OPTIONS if API in o.where}
    params = inspect.signature(anypool.Pool).parameters
    for o in OPTIONS:
        if POOL in o.where:
            assert params[o.name].default == o.default, o.name
            assert params[o.name].kind is inspect.Parameter.KEYWORD_ONLY


def test_every_declared_option_has_a_check_or_a_backend() -> None:
    for o in OPTIONS:
        assert o.doc.endswith("."), o.name
        if o.backend is None and o.name != "trace":  # trace: Pool makes the Trace
            assert o.check is not None, o.name
            assert o.check(o.default) == o.default, o.name  # the default passes its check


def test_pool_documents_every_option_it_takes() -> None:
    doc = anypool.Pool.__doc__ or ""
    for o in OPTIONS:
        if POOL in o.where:
            assert f"        {o.name}: " in doc, f"Pool's docstring (Args:) does not say {o.name}="
