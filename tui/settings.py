"""Write the user's choices (theme, detector parameters) back to the config TOML.

tomlkit keeps the user's comments and layout; the write is atomic with a ``.bak`` of
the previous file, so a crash or a full disk never leaves a half-written config.
No Textual here.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from detectors.base.atomic import atomic_write_text
from detectors.base.config import Config, default_config_path
from detectors.base.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config_file(config: Config) -> Path:
    return config.path or default_config_path()


def _read(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.ParseError) as exc:
        raise InputError(f"cannot update config: {exc}", file=str(path)) from None


def _write(path: Path, doc: tomlkit.TOMLDocument) -> None:
    try:
        atomic_write_text(path, tomlkit.dumps(doc), backup=True, make_parents=True)
    except OSError as exc:
        raise InputError(f"cannot write config: {exc.strerror or exc}", file=str(path)) from None


def save_theme(config: Config, theme: str) -> Path:
    """Remember the theme (top-level key ``theme``); returns the file written."""
    path = config_file(config)
    doc = _read(path)
    doc["theme"] = theme
    _write(path, doc)
    config.theme = theme
    return path


def toml_value(value: Any) -> str:
    """A parameter's value as the user would type it in the TOML file."""
    if isinstance(value, tuple):
        value = list(value)
    if value is None:
        return ""
    return tomlkit.item(value).as_string()


def parse_toml_value(text: str, where: str) -> Any:
    """What the user typed in a parameter field, read as a TOML value."""
    text = text.strip()
    if not text:
        raise InputError(f"{where}: a value is required")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        # A bare word is probably meant as text: accept it as a string.
        if text.replace("_", "").replace("-", "").isalnum() and not text[0].isdigit():
            return text
        raise InputError(f"{where}: {text!r} is not a TOML value") from None


def save_detector_params(config: Config, overrides: Mapping[str, Mapping[str, Any]]) -> Path:
    """Replace each named detector's ``[detectors.<name>]`` table with ``overrides``.

    A detector whose overrides are empty loses its table, so the file only ever says
    what differs from the defaults. Other detectors' tables and comments are untouched.
    """
    path = config_file(config)
    doc = _read(path)
    section = doc.get("detectors")
    if not isinstance(section, Table):
        section = tomlkit.table(is_super_table=True)
        doc["detectors"] = section
    for name, values in overrides.items():
        if not values:
            if name in section:
                del section[name]
            continue
        table = section.get(name)
        if not isinstance(table, Table):
            table = tomlkit.table()
            section[name] = table
        for key in list(table.keys()):
            if key not in values:
                del table[key]
        for key, value in values.items():
            table[key] = list(value) if isinstance(value, tuple) else value
    if not section:
        del doc["detectors"]
    _write(path, doc)
    config.detectors = {
        **{k: v for k, v in config.detectors.items() if k not in overrides},
        **{k: dict(v) for k, v in overrides.items() if v},
    }
    return path


def save_network_settings(config: Config, values: Mapping[str, Any]) -> Path:
    """Replace the ``[network]`` table with ``values`` (none: the table goes).

    Only what differs from the defaults is written; comments elsewhere stay.
    """
    path = config_file(config)
    doc = _read(path)
    if not values:
        config.network = {}
        if "network" not in doc:
            return path  # nothing to change: the file (and its .bak) stay as they are
        del doc["network"]
    else:
        table = tomlkit.table()
        for key, value in values.items():
            table[key] = list(value) if isinstance(value, tuple) else value
        doc["network"] = table
    _write(path, doc)
    config.network = dict(values)
    return path
