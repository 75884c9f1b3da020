"""The user's config TOML: detector parameters, scoring weights, CSV mappings, paths.

One file, found at ``--config FILE`` or in the user's config dir. Every section is
optional; an unknown detector, parameter or section is an error naming the file.

```toml
allowlist = "~/hunts/allow.toml"   # default allow-list path
theme = "beacon-dark"
mmdb = "/data/GeoLite2-ASN.mmdb"   # optional offline ASN/geo database

[detectors.intervals]
jitter_threshold = 30.0

[scoring]
w_periodic = 0.35

[mapping]                          # any CSV: canonical column = CSV header
timestamp = "EventTime"
remote_ip = "dst"

[cache]                            # parsed copies of big CSV/JSON inputs (detectors.load.cache)
max_mb = 2048                      # least recently used entries go beyond this
min_file_mb = 8                    # smaller files are parsed every time
min_load_s = 1.5                   # and so are files that load faster than this
enabled = true

[engine]                           # input bigger than this is split by device on disk
max_events_in_memory = 12000000    # (detectors.run.partitioned); memory then stays about
partition_events = 3000000         # one partition's worth
```
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from detectors.base.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP_NAME = "beacon-triage"
# Worker threads for hunts and the periodogram: polars and numpy release the GIL, and two
# keep both cores of a laptop busy.
DEFAULT_WORKERS = min(2, os.cpu_count() or 1)
TOP_LEVEL_KEYS = {
    "allowlist", "triage", "theme", "mmdb", "detectors", "scoring", "mapping", "cache", "engine",
}  # fmt: skip


def config_dir() -> Path:
    """Where the config, allow-list and triage files live by default (XDG on Linux)."""
    return Path(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


@dataclass
class Config:
    """The parsed config; detector parameters stay raw tables until a detector asks."""

    path: Path | None = None
    allowlist: Path | None = None
    triage: Path | None = None
    theme: str | None = None
    mmdb: Path | None = None
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=dict)
    mapping: dict[str, str] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)
    engine: dict[str, Any] = field(default_factory=dict)

    def cache_settings(self) -> CacheSettings:
        """The ``[cache]`` table as settings (defaults when absent)."""
        return cache_settings_from_table(self.cache, str(self.path) if self.path else None)

    def engine_settings(self) -> EngineSettings:
        """The ``[engine]`` table: when input is too big for memory (defaults when absent)."""
        return engine_settings_from_table(self.engine, str(self.path) if self.path else None)

    def allowlist_path(self) -> Path:
        return self.allowlist or config_dir() / "allowlist.toml"

    def triage_path(self) -> Path:
        if self.triage:
            return self.triage
        return self.allowlist_path().with_name("triage.toml")


# The load cache (``[cache]``, used by detectors.load.cache).
DEFAULT_MAX_BYTES = 2 << 30
DEFAULT_MIN_FILE_BYTES = 8 << 20
DEFAULT_MIN_LOAD_SECONDS = 1.5  # a million CSV rows load in 0.9 s: no copy for them


@dataclass(frozen=True)
class CacheSettings:
    """Where the cache lives and how big it may grow (``[cache]`` in the config)."""

    directory: Path | None = None  # None: config.cache_dir()
    max_bytes: int = DEFAULT_MAX_BYTES
    min_file_bytes: int = DEFAULT_MIN_FILE_BYTES
    min_load_seconds: float = DEFAULT_MIN_LOAD_SECONDS
    enabled: bool = True


def cache_settings_from_table(table: Mapping[str, Any], file: str | None = None) -> CacheSettings:
    """``[cache]`` of the config: ``enabled``, ``max_mb``, ``min_file_mb``, ``min_load_s``,
    ``dir``."""
    unknown = sorted(set(table) - {"enabled", "max_mb", "min_file_mb", "min_load_s", "dir"})
    if unknown:
        raise InputError(f"unknown key [cache] {unknown[0]}", file=file)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InputError("[cache] enabled must be true or false", file=file)
    sizes = {}
    for key, default in (("max_mb", DEFAULT_MAX_BYTES), ("min_file_mb", DEFAULT_MIN_FILE_BYTES)):
        value = table.get(key, default / (1 << 20))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(f"[cache] {key} must be a number of megabytes, 0 or more", file=file)
        sizes[key] = int(value * (1 << 20))
    min_load = table.get("min_load_s", DEFAULT_MIN_LOAD_SECONDS)
    if isinstance(min_load, bool) or not isinstance(min_load, (int, float)) or min_load < 0:
        raise InputError("[cache] min_load_s must be a number of seconds, 0 or more", file=file)
    directory = table.get("dir")
    if directory is not None and not isinstance(directory, str):
        raise InputError("[cache] dir must be a path string", file=file)
    return CacheSettings(
        directory=Path(directory).expanduser() if directory else None,
        max_bytes=sizes["max_mb"],
        min_file_bytes=sizes["min_file_mb"],
        min_load_seconds=float(min_load),
        enabled=enabled,
    )


# Input bigger than memory (``[engine]``, used by detectors.run.partitioned).
DEFAULT_PARTITION_EVENTS = 3_000_000
DEFAULT_MAX_EVENTS_IN_MEMORY = 12_000_000


@dataclass(frozen=True)
class EngineSettings:
    """``[engine]`` of the config: when input counts as bigger than memory."""

    max_events_in_memory: int = DEFAULT_MAX_EVENTS_IN_MEMORY
    partition_events: int = DEFAULT_PARTITION_EVENTS


def engine_settings_from_table(
    table: Mapping[str, object], file: str | None = None
) -> EngineSettings:
    """Validate ``[engine]``: both keys are positive whole numbers of events."""
    unknown = sorted(set(table) - {"max_events_in_memory", "partition_events"})
    if unknown:
        raise InputError(f"unknown key [engine] {unknown[0]}", file=file)
    values = {}
    for key, default in (
        ("max_events_in_memory", DEFAULT_MAX_EVENTS_IN_MEMORY),
        ("partition_events", DEFAULT_PARTITION_EVENTS),
    ):
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"[engine] {key} must be a whole number of events", file=file)
        values[key] = value
    return EngineSettings(**values)


def _path(value: Any, key: str, file: str) -> Path:
    if not isinstance(value, str):
        raise InputError(f"'{key}' must be a path string", file=file)
    return Path(value).expanduser()


def read_config(path: str | Path | None) -> Config:
    """Parse the config; a missing default file is an empty config, a missing named one an
    error. Feature tables (detectors, scoring, mapping) are checked by the stages that own
    them (``detectors.run.setup.load_config``), so this module imports none of them."""
    explicit = path is not None
    file_path = Path(path) if path is not None else default_config_path()
    if not file_path.exists():
        if explicit:
            raise InputError("config file not found", file=str(file_path))
        return Config()
    file = str(file_path)
    try:
        data = tomllib.loads(file_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read config: {exc}", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", file=file) from None
    unknown = set(data) - TOP_LEVEL_KEYS
    if unknown:
        raise InputError(f"unknown config key '{sorted(unknown)[0]}'", file=file)
    cfg = Config(path=file_path)
    if "allowlist" in data:
        cfg.allowlist = _path(data["allowlist"], "allowlist", file)
    if "triage" in data:
        cfg.triage = _path(data["triage"], "triage", file)
    if "mmdb" in data:
        cfg.mmdb = _path(data["mmdb"], "mmdb", file)
    if "theme" in data:
        cfg.theme = str(data["theme"])
    for section in ("detectors", "scoring", "mapping", "cache", "engine"):
        value = data.get(section, {})
        if not isinstance(value, dict):
            raise InputError(f"[{section}] must be a table", file=file)
        setattr(cfg, section, value)
    cfg.cache_settings()  # validate now
    cfg.engine_settings()
    return cfg
