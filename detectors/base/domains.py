"""Registered domains (eTLD+1) from host names and URLs, offline.

Uses the Public Suffix List bundled with ``publicsuffixlist`` (no network), so
``a.b.example.co.uk`` reduces to ``example.co.uk``, which the seed's regex gets wrong.
"""

from __future__ import annotations

import ipaddress
import threading
from urllib.parse import urlsplit

import polars as pl
from publicsuffixlist import PublicSuffixList

_PSL: list[PublicSuffixList] = []
_PSL_LOCK = threading.Lock()


def _psl() -> PublicSuffixList:
    """The parsed list, built once (parsing the bundled file takes ~0.1 s)."""
    with _PSL_LOCK:
        if not _PSL:
            _PSL.append(PublicSuffixList())
        return _PSL[0]


def prepare_in_background() -> None:
    """Parse the list in a thread now, while the caller loads files (polars holds no
    GIL then), so the first domain lookup does not wait for it."""
    threading.Thread(target=_psl, name="public-suffix-list").start()


def host_of(url_or_host: str | None) -> str | None:
    """The host part of a RemoteUrl, which Defender writes with or without a scheme."""
    if not url_or_host:
        return None
    text = url_or_host.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.rstrip(".").lower() or None


def registered_domain(url_or_host: str | None) -> str | None:
    """eTLD+1 of a host or URL; None for IP literals and bare public suffixes."""
    host = host_of(url_or_host)
    if host is None:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    return _psl().privatesuffix(host)


def registered_domains(values: pl.Series) -> pl.Series:
    """Vectorised over distinct values: the PSL lookup runs once per distinct name."""
    distinct = values.unique().drop_nulls().to_list()
    mapping = {v: registered_domain(v) for v in distinct}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String())


def hosts(values: pl.Series) -> pl.Series:
    """Host names of URLs, once per distinct value."""
    distinct = values.unique().drop_nulls().to_list()
    mapping = {v: host_of(v) for v in distinct}
    return values.replace_strict(mapping, default=None, return_dtype=pl.String())
