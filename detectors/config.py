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

[cache]                            # parsed copies of big CSV/JSON inputs (detectors.cache)
max_mb = 2048                      # least recently used entries go beyond this
min_file_mb = 8                    # smaller files are parsed every time
min_load_s = 1.5                   # and so are files that load faster than this
enabled = true

[engine]                           # input bigger than this is split by device on disk
max_events_in_memory = 12000000    # (detectors.partitioned); memory then stays about
partition_events = 3000000         # one partition's worth
```
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from detectors.errors import InputError

if TYPE_CHECKING:
    from detectors.cache import CacheSettings
    from detectors.partitioned import EngineSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP_NAME = "beacon-triage"
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

    def detector_params(self, name: str) -> Any:
        """The parameters dataclass for one detector, defaults overridden by the config."""
        from detectors.registry import get, params_from_table

        spec = get(name)
        table = self.detectors.get(name, {})
        file = str(self.path) if self.path else None
        return params_from_table(spec.params_type, table, file=file, section=f"detectors.{name}")

    def cache_settings(self) -> CacheSettings:
        """The ``[cache]`` table as settings (defaults when absent)."""
        from detectors.cache import settings_from_table

        return settings_from_table(self.cache, str(self.path) if self.path else None)

    def engine_settings(self) -> EngineSettings:
        """The ``[engine]`` table: when input is too big for memory (defaults when absent)."""
        from detectors.partitioned import settings_from_table

        return settings_from_table(self.engine, str(self.path) if self.path else None)

    def allowlist_path(self) -> Path:
        return self.allowlist or config_dir() / "allowlist.toml"

    def triage_path(self) -> Path:
        if self.triage:
            return self.triage
        return self.allowlist_path().with_name("triage.toml")


def _path(value: Any, key: str, file: str) -> Path:
    if not isinstance(value, str):
        raise InputError(f"'{key}' must be a path string", file=file)
    return Path(value).expanduser()


def load_config(path: str | Path | None) -> Config:
    """Read the config; a missing default file is an empty config, a missing named one an error."""
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
    if cfg.mapping:
        from detectors.load.mapped_csv import check_mapping

        try:
            check_mapping(cfg.mapping)
        except InputError as exc:
            raise InputError(exc.message, file=file, field=exc.field) from None
    from detectors.registry import all_detectors

    known = all_detectors()
    for name, table in cfg.detectors.items():
        if name not in known:
            raise InputError(f"unknown detector [detectors.{name}]", file=file)
        if not isinstance(table, dict):
            raise InputError(f"[detectors.{name}] must be a table", file=file)
        cfg.detector_params(name)  # validate now, not halfway through a run
    from detectors.scoring import weights_from_config

    weights_from_config(cfg)
    cfg.cache_settings()  # validate now
    cfg.engine_settings()
    return cfg
