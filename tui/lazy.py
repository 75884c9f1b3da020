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

from collections.abc import Callable
from types import ModuleType
from typing import Any


class _Module:
    """Reads attributes from a module that ``load`` imports on first use (a plain
    import statement in a function: no module is ever named by a string)."""

    def __init__(self, load: Callable[[], ModuleType]) -> None:
        self._load = load

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        return f"<{self._load.__name__}: imported on first use>"


def _polars() -> ModuleType:
    import polars

    return polars


def _numpy() -> ModuleType:
    import numpy

    return numpy


def _decorate() -> ModuleType:
    from detectors.curate import decorate

    return decorate


def _session() -> ModuleType:
    from detectors.curate import session

    return session


polars: Any = _Module(_polars)
numpy: Any = _Module(_numpy)
curate_decorate: Any = _Module(_decorate)  # the allow-list and marks, once data arrives
curate_session: Any = _Module(_session)


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
