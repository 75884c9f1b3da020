"""polars and numpy, imported on first use, so the first screen paints before them.

Importing polars, numpy and the engine takes about half a second (more on a busy
machine): longer than the whole first paint may take. The modules the first screen
needs name them through these stand-ins, which import the real module the first time
one of its attributes is read (by then, usually in the load worker). Python's import
lock makes that safe from any thread. Type checkers see the real modules::

    if TYPE_CHECKING:
        import polars as pl
    else:
        from tui.lazy import polars as pl
"""

from __future__ import annotations

import importlib
from typing import Any


class _Module:
    """Reads attributes from a module it imports on first use."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"


def module(name: str) -> Any:
    """A stand-in for module ``name``, imported the first time one of its attributes is
    read (for the engine modules the TUI needs only once data arrives)."""
    return _Module(name)


polars = _Module("polars")
numpy = _Module("numpy")


class NoRows:
    """The empty candidate list shown before anything was loaded, without polars.

    It answers what the screen asks of an empty list (``height``, ``width``, ``columns``,
    ``schema``, ``len``); anything else is asked of a real empty ``DataFrame`` (importing
    polars then), so a key pressed before the data arrives still works.
    """

    height = 0
    width = 0
    columns: tuple[str, ...] = ()
    schema: dict[str, Any] = {}  # noqa: RUF012 (read only)

    def __len__(self) -> int:
        return 0

    def __getattr__(self, attribute: str) -> Any:
        return getattr(polars.DataFrame(), attribute)


NO_ROWS: Any = NoRows()
"""The one empty list (typed ``Any``: it stands where a ``DataFrame`` goes)."""


def no_rows() -> Any:
    """``NO_ROWS``, as a reactive's default factory."""
    return NO_ROWS
