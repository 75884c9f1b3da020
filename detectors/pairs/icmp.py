"""ICMP message types: kept, named, and never a port.

ICMP has no ports. Zeek's conn.log writes an ICMP flow's *type* in ``id.orig_p`` and
its *code* in ``id.resp_p``; read as ports, an echo request would rank as "port 0"
and a destination-unreachable as "port 3". Placement (``topology.normalize_protocol``)
therefore nulls an ICMP row's remote port (its pair is device and address) and keeps
the type in its own column, ``icmp_type``, taken from the originator's "port" of a
sensor row. Host rows (Defender, Sysmon, Windows 5156, Elastic Defend) carry no
documented ICMP type field: their type stays null and they read ``icmp``.

What the analyst sees is a label, ``icmp/8 echo``, built here once per candidate.
Names follow IANA's registries (RFC 792 for IPv4, RFC 4443 and RFC 4861 for IPv6);
the address family tells which registry applies (Zeek writes "icmp" for both).
"""

from __future__ import annotations

import polars as pl

from detectors.base import schema as S

# IANA "ICMP Type Numbers" (the ones a network commonly carries).
V4_NAMES = {
    0: "echo-reply", 3: "unreachable", 4: "source-quench", 5: "redirect", 8: "echo",
    9: "router-advert", 10: "router-solicit", 11: "time-exceeded", 12: "parameter-problem",
    13: "timestamp", 14: "timestamp-reply",
}  # fmt: skip
# IANA "ICMPv6 Type Numbers".
V6_NAMES = {
    1: "unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
    128: "echo", 129: "echo-reply", 133: "router-solicit", 134: "router-advert",
    135: "neighbor-solicit", 136: "neighbor-advert",
}  # fmt: skip


def sensor_type(is_icmp: pl.Expr, is_sensor: pl.Expr) -> pl.Expr:
    """An ICMP sensor row's type (the originator's "port"); null for any other row."""
    return (
        pl.when(is_icmp & is_sensor)
        .then(pl.col(S.LOCAL_PORT).cast(pl.Int32))
        .otherwise(None)
        .alias(S.ICMP_TYPE)
    )


def label(type_column: str = S.ICMP_TYPE, ip_column: str = S.REMOTE_IP) -> pl.Expr:
    """``icmp/8 echo`` (``icmp/42`` for a type without a name); null without a type."""
    kind = pl.col(type_column).cast(pl.Int32)
    v6 = pl.col(ip_column).str.contains(":", literal=True).fill_null(False)
    name = (
        pl.when(v6)
        .then(kind.replace_strict(V6_NAMES, default=None, return_dtype=pl.String))
        .otherwise(kind.replace_strict(V4_NAMES, default=None, return_dtype=pl.String))
    )
    text = pl.format("icmp/{}", kind)
    return pl.when(name.is_not_null()).then(pl.format("{} {}", text, name)).otherwise(text)


def labels(type_column: str = S.ICMP_TYPE, ip_column: str = S.REMOTE_IP) -> pl.Expr:
    """An aggregation: a candidate's distinct labels, sorted by type, comma-joined
    (``icmp/0 echo-reply, icmp/8 echo``); null when no row has a type."""
    kinds = pl.col(type_column).cast(pl.Int32)
    ordered = label(type_column, ip_column).sort_by(kinds).drop_nulls().unique(maintain_order=True)
    joined = ordered.str.join(", ")
    return pl.when(joined != "").then(joined)
