"""Detectors by name, and their parameters from the config TOML.

A detector module registers itself with ``register``; the CLI, the TUI's parameter
screen and the engine all read this one table, so a new detector shows up everywhere.
"""

from __future__ import annotations

import dataclasses
import threading
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from detectors.dataset import Dataset
from detectors.errors import InputError
from detectors.progress import Progress

RunFunction = Callable[[Dataset, Any, Progress], pl.DataFrame]
PartialFunction = Callable[[Dataset, Any, Progress], Any]
CombineFunction = Callable[[list[Any], Dataset, Any, Progress], pl.DataFrame]


@dataclass(frozen=True)
class Stages:
    """A detector split for input bigger than memory (``detectors.partitioned``).

    ``partial`` runs on one device partition (a ``Dataset`` whose ``everyone()`` answers
    for the whole input) and returns something small; ``combine`` turns the partials of
    every partition into the detector's output, applying what needs all devices at once
    (prevalence across devices, a false-discovery rate over every pair, the final
    order). A detector's ``run`` is ``combine([partial(dataset)], dataset)``, so both
    paths compute the same thing.
    """

    partial: PartialFunction
    combine: CombineFunction


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: its name, what it is, its parameters and its entry point."""

    name: str
    summary: str
    params_type: type
    run: RunFunction
    cost: int = 1  # relative run time: the engine starts the costliest first
    stages: Stages | None = None  # how to run it partition by partition
    sorts_connections: bool = False  # waits for the shared sorted connection table


_REGISTRY: dict[str, DetectorSpec] = {}


def register(
    name: str, summary: str, params_type: type, cost: int = 1, sorts_connections: bool = False
) -> Callable[[RunFunction], RunFunction]:
    """Decorator: ``@register("intervals", "...", IntervalParams)`` on a ``run`` function.

    ``cost`` is a hint (relative run time on big inputs): detectors run two at a time
    and the costliest start first, so the longest one does not start last.
    ``sorts_connections`` says the detector starts with ``Dataset.connection_table()``
    (the one big sort): the engine keeps the other worker busy with detectors that do
    not need it until the table is built.
    """

    def wrap(run: RunFunction) -> RunFunction:
        _REGISTRY[name] = DetectorSpec(
            name, summary, params_type, run, cost, sorts_connections=sorts_connections
        )
        return run

    return wrap


def register_stages(name: str, partial: PartialFunction, combine: CombineFunction) -> None:
    """Declare how detector ``name`` (already registered) runs over partitions."""
    _REGISTRY[name] = dataclasses.replace(_REGISTRY[name], stages=Stages(partial, combine))


def all_detectors() -> dict[str, DetectorSpec]:
    """Every detector, importing the built-in modules on first use."""
    import detectors.builtin  # noqa: F401  (registers the built-in detectors)

    return dict(_REGISTRY)


def import_in_background() -> None:
    """Import the built-in detectors (numpy, the statistics) in a thread while the
    caller loads files: polars holds no GIL then, so the ~0.1 s of imports is hidden.

    Not a daemon: a run that ends early still finishes the import before it exits.
    """
    threading.Thread(target=all_detectors, name="import-detectors").start()


def get(name: str) -> DetectorSpec:
    specs = all_detectors()
    if name not in specs:
        known = ", ".join(sorted(specs))
        raise InputError(f"unknown detector '{name}' (known: {known})")
    return specs[name]


def param_docs(params_type: type) -> list[tuple[str, Any, str]]:
    """(name, default, description) for each parameter, description from field metadata."""
    rows = []
    for f in dataclasses.fields(params_type):
        default: Any = f.default
        if default is dataclasses.MISSING and callable(f.default_factory):
            default = f.default_factory()
        rows.append((f.name, default, str(f.metadata.get("doc", ""))))
    return rows


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a TOML value against a dataclass field type; ints are accepted as floats."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except InputError:
                continue
        raise InputError(f"{where}: {value!r} is not a valid value")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{where}: expected a whole number, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InputError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise InputError(f"{where}: expected text, got {value!r}")
        return value
    return value


def params_from_table(
    params_type: type, table: Mapping[str, Any], *, file: str | None = None, section: str = ""
) -> Any:
    """Build a parameters dataclass from a TOML table; unknown keys name the key."""
    hints = typing.get_type_hints(params_type)
    names = {f.name for f in dataclasses.fields(params_type)}
    values = {}
    for key, value in table.items():
        where = f"[{section}] {key}" if section else key
        if key not in names:
            raise InputError(f"unknown parameter {where}", file=file)
        try:
            values[key] = _coerce(value, hints[key], where)
        except InputError as exc:
            raise InputError(exc.message, file=file) from None
    return params_type(**values)
