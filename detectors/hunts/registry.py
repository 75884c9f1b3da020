"""Hunts by name, and their parameters from the config.

The CLI, the TUI's parameter screen and the run loop all read this one table, so a new
hunt shows up everywhere once ``all_detectors`` imports it.
"""

from __future__ import annotations

import dataclasses
import threading
import types
import typing
from collections.abc import Mapping
from typing import Any

from detectors.base.config import Config
from detectors.base.errors import InputError
from detectors.hunts.spec import _REGISTRY, DetectorSpec


def all_detectors() -> dict[str, DetectorSpec]:
    """Every detector, importing the built-in modules on first use."""
    # Imported here, not at the top: numpy and the statistics load only when asked for
    # (``import_in_background`` asks while the files load).
    from detectors.hunts import (  # noqa: F401  (each registers itself)
        aggregated,
        buckets,
        dns_beacons,
        intervals,
        periodicity,
        rare_destinations,
    )

    # By name, not by registration: a module imported early (a test, a plugin) must not
    # change the run order or the generated parameter reference.
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY)}


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


def params_for(config: Config, name: str) -> Any:
    """The parameters dataclass for one hunt, defaults overridden by ``[detectors.NAME]``."""
    spec = get(name)
    table = config.detectors.get(name, {})
    file = str(config.path) if config.path else None
    return params_from_table(spec.params_type, table, file=file, section=f"detectors.{name}")
