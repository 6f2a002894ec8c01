"""Reading ``[tool.anypool.check]`` from ``pyproject.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ("CheckConfig", "ConfigError", "find_config", "load_config")

_KEYS = frozenset({"select", "ignore", "exclude"})


class ConfigError(ValueError):
    """The ``[tool.anypool.check]`` table is malformed (wrong key or value type)."""


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Settings read from a ``[tool.anypool.check]`` table.

    Attributes:
        path: The ``pyproject.toml`` the settings come from.
        select: Rule code prefixes to report (``None``: every rule).
        ignore: Rule code prefixes not to report.
        exclude: Glob patterns of files and folders to skip, relative to the file's folder.
    """

    path: Path
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def root(self) -> Path:
        """The folder holding the ``pyproject.toml``; ``exclude`` patterns are relative to it."""
        return self.path.parent


def _codes(value: object, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [str(item).strip() for item in value]
    else:
        raise ConfigError(f"{path}: [tool.anypool.check] {key} must be a list of strings")
    return tuple(item for item in items if item)


def load_config(path: Path) -> CheckConfig | None:
    """Read the ``[tool.anypool.check]`` table of one ``pyproject.toml``.

    Args:
        path: The ``pyproject.toml`` file.

    Returns:
        The settings, or ``None`` when the file has no such table.

    Raises:
        ConfigError: The file is not valid TOML or the table has an unknown key or a value of
            the wrong type.
    """
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    table = data.get("tool", {}).get("anypool", {}).get("check")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.anypool.check] must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) in [tool.anypool.check]: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_KEYS))})"
        )
    select = _codes(table["select"], "select", path) if "select" in table else None
    return CheckConfig(
        path=path,
        select=select,
        ignore=_codes(table.get("ignore", []), "ignore", path),
        exclude=_codes(table.get("exclude", []), "exclude", path),
    )


def find_config(start: Path) -> CheckConfig | None:
    """Find the settings that apply to ``start``.

    Walks up from ``start`` (a file or a folder) and returns the settings of the nearest
    ``pyproject.toml`` that has a ``[tool.anypool.check]`` table, like ruff does for
    ``[tool.ruff]``.

    Args:
        start: A file or folder being checked.

    Returns:
        The settings, or ``None`` when no such table is found.

    Raises:
        ConfigError: The nearest table is malformed.
    """
    here = start.resolve()
    if not here.is_dir():
        here = here.parent
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            config = load_config(candidate)
            if config is not None:
                return config
    return None
