"""The config, read and checked by every stage that owns a part of it.

``detectors.base.config`` parses the file and knows nothing of the features; here each
feature table is checked against its owner (the load stage's CSV mapping, the hunts'
parameters, the scoring weights), so a mistake is reported before a long run starts.
Each owner is imported only when its table is present: the TUI opens through here, and
importing every hunt first would delay its first screen by half a second.
"""

from __future__ import annotations

from pathlib import Path

from detectors.base.config import Config, read_config
from detectors.base.errors import InputError


def load_config(path: str | Path | None) -> Config:
    """Read the config (``read_config``) and check every feature table in it."""
    config = read_config(path)
    file = str(config.path) if config.path else None
    if config.mapping:
        from detectors.load.mapped_csv import check_mapping

        try:
            check_mapping(config.mapping)
        except InputError as exc:
            raise InputError(exc.message, file=file, field=exc.field) from None
    if config.detectors:
        _check_detectors(config, file)
    if config.scoring:
        from detectors.rank.scoring import weights_from_config

        weights_from_config(config)
    return config


def _check_detectors(config: Config, file: str | None) -> None:
    from detectors.hunts.registry import all_detectors, params_for

    known = all_detectors()
    for name, table in config.detectors.items():
        if name not in known:
            raise InputError(f"unknown detector [detectors.{name}]", file=file)
        if not isinstance(table, dict):
            raise InputError(f"[detectors.{name}] must be a table", file=file)
        params_for(config, name)  # validate now, not halfway through a run
