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
    """The parsed list, built once (parsing the bundled file takes ~0.02-0.03 s)."""
    with _PSL_LOCK:
        if not _PSL:
            _PSL.append(_parsed_list())
        return _PSL[0]


def _parsed_list() -> PublicSuffixList:
    """The bundled list as ``PublicSuffixList()`` parses it, in about half the time.

    The library adds each rule's punycode form (``xn--...``), running Python's slow
    ``idna`` codec over all ~10,000 rules, where only the ~460 non-ASCII ones change
    (an ASCII rule encodes to itself). Here those forms are added as rules of their
    own (with the library's own encoder) and the library parses without encoding: the
    same set of rules, the same lookups (a test compares both).
    """
    try:
        from publicsuffixlist import PSLFILE, encode_idn
    except ImportError:  # another layout of the package: its own parse
        return PublicSuffixList()
    with open(PSLFILE, "rb") as handle:
        lines = (
            handle.read().decode("utf-8", "surrogateescape").split("\n")
        )  # as iterating the file splits
    encoded = []
    for line in lines:
        if line.isascii():
            continue
        rule = line.lower().split(" ")[0].rstrip()  # as the library reads a line
        if rule and not rule.startswith("//"):
            name = encode_idn(rule.lstrip("!"))
            encoded.append("!" + name if rule.startswith("!") else name)
    return PublicSuffixList(lines + encoded, accept_encoded_idn=False)


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


def registered_domains_of_hosts(names: pl.Series, max_labels: int = 8) -> pl.Series:
    """eTLD+1 of bare host names (DNS queries), looked up once per distinct *suffix*.

    ``registered_domains`` asks the list once per distinct name, and a DNS tunnel's
    names are all distinct. Here the public suffix is grown one label at a time from
    the right: the last k labels are looked up (once per distinct value) only for the
    names whose last k - 1 labels were a public suffix, so the lookups number the
    distinct suffixes and domains, not the names. Equal to ``registered_domain`` for
    names (no scheme, port or IP literal: those give None here too when all labels are
    a public suffix); a trailing root dot and case are ignored.
    """
    labels = names.cast(pl.String).str.to_lowercase().str.strip_suffix(".").str.split(".")
    frame = pl.DataFrame({"labels": labels}).with_columns(
        pl.col("labels").list.len().alias("n"), pl.lit(None, pl.String).alias("domain")
    )
    psl = _psl()
    open_rows = frame.get_column("n") > 0
    for k in range(1, max_labels + 1):
        tail = frame.get_column("labels").list.tail(k).list.join(".")
        distinct = tail.filter(open_rows).unique().drop_nulls().to_list()
        public = {t: bool(psl.is_public(t)) for t in distinct}
        is_public = tail.replace_strict(public, default=False, return_dtype=pl.Boolean)
        ends_here = open_rows & ~is_public & (frame.get_column("n") >= k)
        # the suffix of k - 1 labels was public and k labels are not: k labels are eTLD+1
        frame = frame.with_columns(
            pl.when(ends_here & (k > 1)).then(tail).otherwise(pl.col("domain")).alias("domain")
        )
        open_rows = open_rows & is_public & (frame.get_column("n") > k)
    return frame.get_column("domain").alias(names.name)
