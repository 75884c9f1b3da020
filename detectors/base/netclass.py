"""Classify remote addresses (public, private, loopback, ...) with ``ipaddress`` rules.

Classification runs once per *distinct* address and is joined back, so the cost grows
with the number of addresses, not events. IPv4-mapped IPv6 (``::ffff:1.2.3.4``) is
treated as its IPv4 address, as Defender's FourToSixMapping rows need.
"""

from __future__ import annotations

import ipaddress

import polars as pl

PUBLIC = "Public"
PRIVATE = "Private"
LOOPBACK = "Loopback"
LINK_LOCAL = "LinkLocal"
MULTICAST = "Multicast"
RESERVED = "Reserved"
UNSPECIFIED = "Unspecified"
INVALID = "Invalid"

# Defender's RemoteIPType values that mean "not a destination on the internet".
DEFENDER_NON_PUBLIC = ("Reserved", "Private", "LinkLocal", "Loopback")


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_CANONICAL = rf"^{_OCTET}(?:\.{_OCTET}){{3}}$"
"""A dotted-quad IPv4 address exactly as ``ipaddress`` prints it (no leading zeros): its
own normal form, so per-row work can skip ``ipaddress`` for the bulk of addresses."""


def is_canonical_ipv4(text: pl.Expr) -> pl.Expr:
    """True where ``text`` (a string expression) is already ``normalize_ip(text)``."""
    return text.str.contains(IPV4_CANONICAL).fill_null(False)


def ipv4_int(text: pl.Expr) -> pl.Expr:
    """The 32-bit value of a canonical IPv4 text (see ``is_canonical_ipv4``) as UInt64."""
    parts = text.str.split_exact(".", 3).struct
    octets = [parts.field(f"field_{i}").cast(pl.UInt64, strict=False) for i in range(4)]
    return octets[0] * (1 << 24) + octets[1] * (1 << 16) + octets[2] * (1 << 8) + octets[3]


def normalize_ip(text: str | None) -> str | None:
    """Canonical text of an address: IPv4-mapped IPv6 becomes IPv4; junk stays as is."""
    if text is None:
        return None
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return text
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def classify_ip(text: str | None) -> str:
    """The class of one address, most specific first (loopback before private)."""
    if text is None or text == "":
        return INVALID
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return INVALID
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified:
        return UNSPECIFIED
    if addr.is_loopback:
        return LOOPBACK
    if addr.is_link_local:
        return LINK_LOCAL
    if addr.is_multicast:
        return MULTICAST
    if addr.is_private:
        return PRIVATE
    if addr.is_reserved or not addr.is_global:
        return RESERVED
    return PUBLIC


def ip_class_expr(column: str, frame: pl.DataFrame) -> pl.Series:
    """Classes for every row of ``frame[column]``, computed per distinct address."""
    distinct = frame.get_column(column).unique().drop_nulls()
    mapping = {ip: classify_ip(ip) for ip in distinct.to_list()}
    return (
        frame.get_column(column)
        .replace_strict(mapping, default=INVALID, return_dtype=pl.String())
        .alias(f"{column}_class")
    )


def public_addresses(ips: pl.Series) -> list[str]:
    """The distinct values of ``ips`` that are public addresses (classified once each)."""
    return [ip for ip in ips.unique().drop_nulls().to_list() if classify_ip(ip) == PUBLIC]


def public_mask(frame: pl.DataFrame, ip_column: str, type_column: str | None = None) -> pl.Series:
    """True where the address is public (and Defender's RemoteIPType does not say otherwise).

    A set-membership test against the public distinct addresses: no per-row class text.
    """
    ips = frame.get_column(ip_column)
    mask = ips.is_in(public_addresses(ips))
    if type_column is not None and type_column in frame.columns:
        declared = frame.get_column(type_column)
        mask = mask & ~declared.is_in(list(DEFENDER_NON_PUBLIC)).fill_null(False)
    return mask.alias("is_public")
