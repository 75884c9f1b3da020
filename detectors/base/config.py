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

[network]                          # detectors.pairs.topology, .proxy
internal = ["10.0.0.0/8", "203.0.113.0/24"]   # our addresses (default: private ranges)
monitored = ["198.51.100.7"]       # public hosts a sensor watches (inferred too)
proxies = ["10.0.0.5:3128"]        # explicit proxies (detected too)

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
    "network",
}  # fmt: skip

# Our own address space unless the user says otherwise: RFC 1918, RFC 6598 (carrier-grade
# NAT, 100.64/10), IPv6 unique-local (fc00::/7), link-local and loopback.
DEFAULT_INTERNAL = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128",
)  # fmt: skip


def _n(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class NetworkSettings:
    """Where the site's own network ends (``[network]``): typed settings, no behaviour.

    ``detectors.pairs.topology`` gives every connection a direction from these;
    ``detectors.pairs.proxy`` re-keys connections through explicit proxies.
    """

    enabled: bool = _n(
        True,
        "Place events in the network at all. Off: the old rule (hunt public remote addresses "
        "only, no proxies re-keyed, no inbound pairs). Inputs bigger than memory (partitioned"
        " runs) are not placed yet.",
    )
    internal: tuple[str, ...] = _n(
        DEFAULT_INTERNAL,
        "Subnets whose hosts are ours: their traffic is outbound, inbound or internal.",
    )
    monitored: tuple[str, ...] = _n(
        (),
        "Public addresses a sensor watches (a Zeek sensor on an internet-facing server): ours"
        " too, so their connections get a direction and they count as devices.",
    )
    proxies: tuple[str, ...] = _n(
        (),
        'Explicit proxies as "address:port"; their clients\' connections are re-keyed to the '
        "proxied host.",
    )
    infer_monitored: bool = _n(
        True,
        "Infer monitored hosts from the data (a public address many external sources reach "
        "that also originates traffic). Off: only ``monitored`` counts.",
    )
    monitored_min_sources: int = _n(
        1000,
        '"Many external sources": distinct non-internal originators reaching the address. '
        "Lower finds sensors on quiet servers; too low makes a busy external peer ours.",
    )
    monitored_min_destinations: int = _n(
        2, '"Originates the site\'s own traffic": distinct addresses it opens connections to.'
    )
    infer_proxies: bool = _n(
        True,
        "Detect proxies from the data (CONNECT seen, or one private address:port carrying "
        "most devices' named web traffic). Off: only ``proxies`` counts.",
    )
    proxy_min_names: int = _n(
        10, '"Many distinct names": destination names seen through one address:port.'
    )
    proxy_min_device_share: float = _n(
        0.5, '"Most devices\' web traffic": share of the devices with named traffic using it.'
    )
    proxy_port_min_domains: int = _n(
        3,
        "An internal address on a conventional proxy port (3128, 8080, 8118) is a proxy when "
        "the names sent to it span this many registered domains, however few devices use "
        "it (a web app answers under its own domain). Lower finds quieter proxies; 1 would "
        "take an internal web server on 8080 for one.",
    )
    proxy_egress_window_ms: int = _n(
        3000,
        "How long after a client's request to a proxy the proxy's own connection to the "
        "server may start and still be linked to it (same name: SNI, Host or URL). Wider "
        "links slow proxies; narrower leaves busy proxies' egress ranked as the proxy's own.",
    )

    def with_internal(self, extra: tuple[str, ...]) -> NetworkSettings:
        """These settings with more internal subnets (``--internal CIDR``), checked."""
        from dataclasses import replace

        for cidr in extra:
            check_network(cidr, "--internal", None)
        return replace(self, internal=tuple(dict.fromkeys((*self.internal, *extra))))


def network_docs() -> list[tuple[str, Any, str]]:
    """(name, default, what it trades) of every ``[network]`` setting (TUI, docs)."""
    from dataclasses import fields

    return [(f.name, f.default, f.metadata.get("doc", "")) for f in fields(NetworkSettings)]


def check_network(text: str, key: str, file: str | None) -> str:
    """``text`` if it is an address or CIDR block, else a one-line error naming ``key``."""
    import ipaddress

    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InputError(
            f"'{text}' is not an address or CIDR block", file=file, field=key
        ) from None
    return text.strip()


def check_endpoint(text: str, key: str, file: str | None) -> str:
    """``text`` if it is "address:port" (IPv6 as "[addr]:port"), else a one-line error."""
    import ipaddress

    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        ok = 0 < int(port) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise InputError(f"'{text}' is not address:port", file=file, field=key)
    return f"{host}:{int(port)}"


def network_from_table(table: dict[str, Any], file: str | None) -> NetworkSettings:
    """The ``[network]`` table as settings; an unknown key or a bad value names itself."""
    from dataclasses import fields

    known = {f.name: f for f in fields(NetworkSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        name = f"network.{key}"
        if key not in known:
            raise InputError(f"unknown setting [network] {key}", file=file, field=name)
        default = getattr(NetworkSettings(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError("must be a list of strings", file=file, field=name)
            check = check_endpoint if key == "proxies" else check_network
            values[key] = tuple(check(v, name, file) for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError("must be true or false", file=file, field=name)
            values[key] = value
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError("must be a positive integer", file=file, field=name)
            values[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise InputError("must be a number in (0, 1]", file=file, field=name)
            values[key] = float(value)
    return NetworkSettings(**values)


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
    network: dict[str, Any] = field(default_factory=dict)
    # ``--internal CIDR`` on the command line: subnets added to ``[network] internal``.
    extra_internal: tuple[str, ...] = ()

    def network_settings(self) -> NetworkSettings:
        """The ``[network]`` table as settings, with any ``--internal`` subnets added."""
        settings = network_from_table(self.network, str(self.path) if self.path else None)
        return settings.with_internal(self.extra_internal) if self.extra_internal else settings

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
    for section in ("detectors", "scoring", "mapping", "cache", "engine", "network"):
        value = data.get(section, {})
        if not isinstance(value, dict):
            raise InputError(f"[{section}] must be a table", file=file)
        setattr(cfg, section, value)
    cfg.cache_settings()  # validate now
    cfg.engine_settings()
    cfg.network_settings()
    return cfg
