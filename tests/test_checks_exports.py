"""``anypool.checks`` exports exactly its ``__all__``, and every public name has a docstring."""

from __future__ import annotations

import anypool.checks as checks


def test_all_matches_public_names() -> None:
    # "@py_builtins"/"@pytest_ar": pytest rewrites the asserts of every module of a package
    # that has a pytest11 entry point (ours: anypool.pytest_plugin), as it does for any plugin
    public = {name for name in vars(checks) if not name.startswith(("_", "@"))}
    assert set(checks.__all__) == public


def test_public_names_have_docstrings() -> None:
    for name in checks.__all__:
        obj = getattr(checks, name)
        if callable(obj):
            assert obj.__doc__, name
