"""Infrastructure services recognised in evidence: NTP, DNS forwarding, monitoring agents.

These are periodic by design (chrony polls a pool address every 1,024 s, a domain
controller forwards DNS all day, an agent reports every minute), so every timing hunt
finds them. They are not hidden: a candidate that matches an entry of the editable
data file (``data/infrastructure.toml``, the same idea as the known-benign list) gets
the evidence "infrastructure service" with the entry's reason and a discount, and an
analyst can still open it.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.pairs.population import DEVICE_KEY

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

RESOURCE = "data/infrastructure.toml"
F_INFRASTRUCTURE = "infrastructure"  # the matching entry's "name: reason", else null

# Per-candidate inputs ``infrastructure_facts`` reads.
I_PROTOCOL = "_protocol"
I_LOCAL_IP = "_local_ip"
I_DIRECTION = "_direction"


@dataclass(frozen=True)
class Service:
    """One entry of the data file (see its header for the matching rules)."""

    name: str
    reason: str
    protocol: str | None = None
    ports: tuple[int, ...] = ()
    direction: str = S.DIR_OUTBOUND
    processes: frozenset[str] = frozenset()
    resolver: bool = False
    unknown_process: bool = False


@dataclass(frozen=True)
class Infrastructure:
    services: tuple[Service, ...]
    resolver_min_clients: int = 3


def _service(entry: Any, index: int, file: str) -> Service:
    field = f"service[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InputError("each [[service]] needs a name", file=file, field=field)
    ports = entry.get("ports", [])
    if not isinstance(ports, list) or not all(isinstance(p, int) for p in ports):
        raise InputError("ports must be a list of integers", file=file, field=f"{field}.ports")
    direction = entry.get("direction", S.DIR_OUTBOUND)
    if direction not in (S.DIR_OUTBOUND, S.DIR_INBOUND):
        raise InputError("direction must be outbound or inbound", file=file, field=field)
    return Service(
        name=entry["name"],
        reason=str(entry.get("reason", entry["name"])),
        protocol=entry.get("protocol"),
        ports=tuple(ports),
        direction=direction,
        processes=frozenset(str(p).lower() for p in entry.get("processes", [])),
        resolver=bool(entry.get("resolver", False)),
        unknown_process=bool(entry.get("unknown_process", False)),
    )


def parse(data: dict[str, Any], file: str) -> Infrastructure:
    entries = data.get("service", [])
    if not isinstance(entries, list):
        raise InputError("[[service]] must be an array of tables", file=file, field="service")
    minimum = data.get("resolver_min_clients", 3)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 1:
        raise InputError("must be a positive integer", file=file, field="resolver_min_clients")
    return Infrastructure(tuple(_service(e, i, file) for i, e in enumerate(entries)), minimum)


@functools.lru_cache(maxsize=8)
def load(path: str | None = None) -> Infrastructure:
    """The shipped list (``path`` None), a user's file, or nothing (``path`` "")."""
    if path == "":
        return Infrastructure(())
    if path is None:
        resource = resources.files("detectors.rank").joinpath(RESOURCE)
        text, file = resource.read_text(encoding="utf-8"), "infrastructure.toml (shipped)"
    else:
        file = str(Path(path).expanduser())
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", file=file) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", file=file) from None
    return parse(data, file)


def resolvers_query(events: pl.LazyFrame, placed: bool, min_clients: int) -> pl.LazyFrame:
    """Our DNS resolvers: internal addresses that ``min_clients`` of our hosts send DNS to."""
    if not placed:
        return pl.LazyFrame(schema={S.REMOTE_IP: pl.String()})
    return (
        events.filter((pl.col(S.DIRECTION) == S.DIR_INTERNAL) & (pl.col(S.REMOTE_PORT) == 53))
        .group_by(S.REMOTE_IP)
        .agg(DEVICE_KEY.n_unique().alias("_clients"))
        .filter(pl.col("_clients") >= min_clients)
        .select(S.REMOTE_IP)
    )


def infrastructure_facts(
    facts: pl.DataFrame, infra: Infrastructure, resolvers: pl.Series
) -> pl.Series:
    """Per candidate row of ``facts`` (key columns plus ``I_PROTOCOL``, ``I_LOCAL_IP``,
    ``I_DIRECTION``), the first matching service as "name: reason", else null."""
    process = pl.col(S.C_PROCESS).str.to_lowercase()
    is_resolver = pl.col(I_LOCAL_IP).is_in(resolvers.implode()) | pl.col(S.C_DEVICE).is_in(
        resolvers.implode()
    )
    result = pl.lit(None, pl.String)
    for service in reversed(infra.services):  # the first entry that matches wins
        cond = pl.col(I_DIRECTION).fill_null(S.DIR_OUTBOUND) == service.direction
        if service.protocol:
            protocol = pl.col(I_PROTOCOL).str.to_lowercase().str.replace(r"v[46]$", "")
            cond = cond & (protocol == service.protocol.lower()).fill_null(False)
        if service.ports:
            cond = cond & pl.col(S.C_REMOTE_PORT).is_in(list(service.ports)).fill_null(False)
        if service.processes or service.resolver:
            source = pl.lit(False)
            if service.processes:
                source = source | process.is_in(list(service.processes)).fill_null(False)
            if service.resolver:
                source = source | is_resolver.fill_null(False)
            if service.unknown_process:
                source = source | pl.col(S.C_PROCESS).is_null()
            cond = cond & source
        text = f"{service.name}: {service.reason}"
        result = pl.when(cond).then(pl.lit(text)).otherwise(result)
    return facts.select(result.alias(F_INFRASTRUCTURE)).to_series()
