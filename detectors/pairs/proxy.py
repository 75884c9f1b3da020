"""Explicit proxies: the proxied host, not the proxy, is a connection's destination.

In an enterprise most web traffic goes to one private address (the proxy, often on
3128 or 8080). Keyed by that address, every program on a device shares one pair and
a beacon drowns in the browser's traffic, and a hunt that keeps public destinations
only drops it outright. So connections through a proxy are re-keyed to the host they
were for:

* Zeek: a ``CONNECT host:port`` request (HTTPS through the proxy) or an absolute-URI
  request (``GET http://host/...``, plain HTTP through the proxy) in http.log names
  the target of the conn.log row with the same ``uid``;
* Defender: a row to a proxy address with a ``RemoteUrl`` names its target (the port
  is the URL's, else 80 for ``http://``, else 443: what a proxied client asks for).

A re-keyed row's remote address becomes the target host (a name, or an address when
the client asked for one), its remote port the target port, its URL the host, and
``via_proxy`` says which proxy ("10.0.0.5:3128"). Rows to the proxy that name no
target stay the proxy's: its own pair keeps only what cannot be attributed.

Which address:port is a proxy: declared ones (``[network] proxies``), any that
received a CONNECT, a private (internal) address:port that carries named web
traffic under many distinct names from most of the devices that have any, and an
internal address on a conventional proxy port (``PROXY_PORTS``) whose names span
several registered domains (``proxy_port_min_domains``), however few devices use it:
an explicit proxy only a few applications are configured for. An internal web
server on 8080 answers under its own domain's names and is not taken for one.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.base.domains import registered_domains
from detectors.pairs.chunks import scatter
from detectors.pairs.topology import in_networks

# Proxy detection output.
X_ENDPOINT = "proxy"  # "address:port"
X_REASON = "reason"  # declared | CONNECT seen | N names from M of K devices
X_DEVICES = "devices"  # distinct devices whose named traffic went through it
X_NAMES = "names"  # distinct destination names seen through it
PROXY_SCHEMA: dict[str, pl.DataType] = {
    X_ENDPOINT: pl.String(),
    X_REASON: pl.String(),
    X_DEVICES: pl.UInt32(),
    X_NAMES: pl.UInt32(),
}

_T_HOST = "_target_host"
_T_PORT = "_target_port"
_URL = r"^(?:([A-Za-z][A-Za-z0-9+.-]*)://)?(\[[^\]]+\]|[^/:?#\s]+)(?::(\d{1,5}))?"


# A resolver also carries many names from most devices (Defender logs the query name as
# RemoteUrl): name-service ports are never inferred to be proxies (DNS, DNS over TLS,
# mDNS, LLMNR). Declared proxies are taken as declared.
NAME_SERVICE_PORTS = (53, 853, 5353, 5355)
# Ports explicit proxies listen on by convention: Squid's 3128, the generic 8080,
# Privoxy's 8118 (IANA lists 3128 and 8080 as HTTP proxy/alternate ports).
PROXY_PORTS = (3128, 8080, 8118)


def endpoint_expr(ip: str = S.REMOTE_IP, port: str = S.REMOTE_PORT) -> pl.Expr:
    """ "address:port" of a row (null when either is missing): how proxies are named."""
    return pl.format("{}:{}", pl.col(ip), pl.col(port))


def to_endpoints(endpoints: Sequence[str]) -> pl.Expr:
    """True where a row's ``endpoint_expr()`` is one of ``endpoints``, compared as
    (address, port) columns: "a:p" is address a and port p, as the port has no colon
    (the text of every row was the cost). Never null."""
    ip, port = pl.col(S.REMOTE_IP), pl.col(S.REMOTE_PORT)
    conditions = []
    for text in dict.fromkeys(endpoints):
        address, colon, number = text.rpartition(":")
        if colon and number.isascii() and number.isdigit() and str(int(number)) == number:
            conditions.append((ip == address) & (port == int(number)))
    if not conditions:
        return pl.repeat(False, pl.len())
    return pl.any_horizontal(conditions).fill_null(False)


def parse_target(text: pl.Expr, default_port: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """Host (lower case, no brackets) and port of a URL, ``host:port`` or bare host.

    The port is the written one, else 80 for ``http://``, else ``default_port``.
    """
    parts = text.str.strip_chars().str.extract_groups(_URL)
    scheme = parts.struct.field("1").str.to_lowercase()
    host = parts.struct.field("2").str.strip_chars("[]").str.to_lowercase()
    written = parts.struct.field("3").cast(pl.Int32, strict=False)
    port = pl.coalesce(
        written, pl.when(scheme == "http").then(pl.lit(80, pl.Int32)), default_port.cast(pl.Int32)
    )
    return host, port


def proxy_targets(app: pl.DataFrame) -> pl.DataFrame:
    """Per Zeek uid, the host and port it asked a proxy for (first request of the uid).

    CONNECT names ``host:port`` (443 when the port is missing); an absolute URI
    (``http://host/...``) names its host and port (80 by default). Requests with a
    relative URI went to the server itself, not through a proxy: no target.
    """
    uri = pl.col(S.APP_URI)
    connect = (pl.col(S.APP_METHOD).str.to_uppercase() == "CONNECT").fill_null(False)
    absolute = uri.str.contains(r"^(?i)https?://").fill_null(False)
    written = pl.when(connect).then(pl.coalesce(uri, pl.col(S.APP_HOST))).when(absolute).then(uri)
    host, port = parse_target(written, pl.lit(443))
    return (
        app.filter(pl.col(S.APP_UID).is_not_null())
        .select(
            S.APP_UID,
            host.alias(_T_HOST),
            port.alias(_T_PORT),
            connect.alias("_connect"),
        )
        .filter(pl.col(_T_HOST).is_not_null() & (pl.col(_T_HOST) != ""))
        .unique(S.APP_UID, keep="first", maintain_order=True)
    )


def _zeek_named(events: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """Sensor rows that carry a proxy target: device, endpoint, target, CONNECT flag."""
    return (
        events.filter(pl.col(S.UID).is_not_null())
        .select(S.DEVICE_ID, S.REMOTE_IP, S.REMOTE_PORT, S.UID)
        .join(targets, left_on=S.UID, right_on=S.APP_UID, how="inner")
    )


def connect_endpoints(events: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """The (address, port) a CONNECT request was sent to (each a proxy, whatever its
    address), once each."""
    zeek = _zeek_named(events, targets).filter(pl.col("_connect"))
    return zeek.select(S.REMOTE_IP, S.REMOTE_PORT).unique(maintain_order=True)


def may_be_proxy(rows: pl.DataFrame, known: Sequence[str], settings: NetworkSettings) -> pl.Series:
    """Rows to an endpoint that can be a proxy: ``known`` (declared, CONNECT seen) or,
    when proxies are inferred, any internal address."""
    maybe = rows.select(to_endpoints(known).alias("_k")).to_series()
    if settings.infer_proxies:
        maybe = maybe | in_networks(rows.get_column(S.REMOTE_IP), settings.internal)
    return maybe


def _url_hosts(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with ``_name``: the host of each row's URL, parsed once per distinct URL
    (a site's URLs repeat: the regex per row was most of the proxy search's time)."""
    urls = rows.select(pl.col(S.REMOTE_URL).unique())
    host, _ = parse_target(pl.col(S.REMOTE_URL), pl.lit(443))
    hosts = urls.with_columns(host.alias("_name"))
    return rows.join(hosts, on=S.REMOTE_URL, how="left", maintain_order="left")


def detect_proxies(
    events: pl.DataFrame, targets: pl.DataFrame, settings: NetworkSettings
) -> pl.DataFrame:
    """The proxies of the data (``PROXY_SCHEMA``): declared, CONNECT seen, or inferred.

    Inferred: an internal address:port through which at least ``proxy_min_names``
    distinct names went, from at least ``proxy_min_device_share`` of the devices with
    any named traffic (Defender RemoteUrl, Zeek absolute-URI or CONNECT requests).
    """
    declared = pl.DataFrame(
        {X_ENDPOINT: list(settings.proxies), X_REASON: ["declared"] * len(settings.proxies)},
        schema={X_ENDPOINT: pl.String(), X_REASON: pl.String()},
    )
    zeek = _zeek_named(events, targets)
    url = pl.col(S.REMOTE_URL)
    keyed = pl.col(S.REMOTE_IP).is_not_null() & pl.col(S.REMOTE_PORT).is_not_null()
    usable = url.is_not_null() & (url != "") & keyed
    connect = (
        zeek.filter(pl.col("_connect"))
        .select(endpoint_expr().alias(X_ENDPOINT))
        .unique(maintain_order=True)
        .with_columns(pl.lit("CONNECT seen").alias(X_REASON))
    )
    found = [declared, connect]
    # Counting names and devices per endpoint hashes each named row: only the rows to an
    # endpoint that can be a proxy are counted (declared, CONNECT seen, or internal).
    known = [*settings.proxies, *connect.get_column(X_ENDPOINT).to_list()]
    columns = events.select(S.DEVICE_ID, S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL)
    with_url = columns.filter(usable & may_be_proxy(events, known, settings))
    zeek_named = zeek.select(
        S.DEVICE_ID, S.REMOTE_IP, S.REMOTE_PORT, pl.col(_T_HOST).alias("_name")
    ).filter(keyed)
    named = pl.concat(
        [
            zeek_named.filter(may_be_proxy(zeek_named, known, settings)),
            _url_hosts(with_url).drop(S.REMOTE_URL),
        ]
    )
    # registered domains only where the port rule can use them (a resolver's names are many)
    on_port = named.select(pl.when(pl.col(S.REMOTE_PORT).is_in(PROXY_PORTS)).then("_name"))
    named = named.with_columns(registered_domains(on_port.to_series()).alias("_domain"))
    # grouped by address and port, formatted per group: the text of an endpoint names
    # one (address, port), as the port has no colon (formatting every row cost more)
    facts = (
        named.group_by(S.REMOTE_IP, S.REMOTE_PORT)
        .agg(
            pl.col(S.DEVICE_ID).n_unique().cast(pl.UInt32).alias(X_DEVICES),
            pl.col("_name").n_unique().cast(pl.UInt32).alias(X_NAMES),
            pl.col("_domain").drop_nulls().n_unique().cast(pl.UInt32).alias("_domains"),
        )
        .select(
            endpoint_expr().alias(X_ENDPOINT),
            pl.col(S.REMOTE_IP).alias("_ip"),
            pl.col(S.REMOTE_PORT).alias("_port"),
            X_DEVICES,
            X_NAMES,
            "_domains",
        )
    )
    if settings.infer_proxies and facts.height:
        internal = in_networks(facts.get_column("_ip"), settings.internal)
        busy = facts.filter(
            internal
            & ~pl.col("_port").is_in(NAME_SERVICE_PORTS)
            & (pl.col(X_NAMES) >= settings.proxy_min_names)
        )
        everyone = 1  # counted only for an endpoint with many names (a pass over every row)
        if busy.height:  # every device with named traffic, to any endpoint
            defender = events.lazy().filter(usable).select(S.DEVICE_ID).collect()
            devices = pl.concat([zeek.filter(keyed).select(S.DEVICE_ID), defender])
            everyone = max(1, devices.get_column(S.DEVICE_ID).n_unique())
            busy = busy.filter(pl.col(X_DEVICES) >= settings.proxy_min_device_share * everyone)
        found.append(
            busy.select(
                X_ENDPOINT,
                pl.format(
                    "{} names from {} of {} devices", X_NAMES, X_DEVICES, pl.lit(everyone)
                ).alias(X_REASON),
            )
        )
        by_port = facts.filter(
            internal
            & pl.col("_port").is_in(PROXY_PORTS)
            & (pl.col("_domains") >= settings.proxy_port_min_domains)
        )
        found.append(
            by_port.select(
                X_ENDPOINT,
                pl.format(
                    "proxy port: {} names in {} domains from {} devices",
                    X_NAMES,
                    "_domains",
                    X_DEVICES,
                ).alias(X_REASON),
            )
        )
    proxies = pl.concat(found).unique(X_ENDPOINT, keep="first", maintain_order=True)
    return (
        proxies.join(facts.drop("_ip", "_port", "_domains"), on=X_ENDPOINT, how="left")
        .with_columns(pl.col(X_DEVICES).fill_null(0), pl.col(X_NAMES).fill_null(0))
        .select(list(PROXY_SCHEMA))
        .sort(X_ENDPOINT)
    )


def describe_proxies(proxies: pl.DataFrame) -> list[str]:
    """One line per proxy for the user: which, and why."""
    return [
        f"proxy {row[X_ENDPOINT]} ({row[X_REASON]}): connections through it are keyed by "
        f"the proxied host"
        for row in proxies.iter_rows(named=True)
    ]


def rekey(events: pl.DataFrame, targets: pl.DataFrame, proxies: Sequence[str]) -> pl.DataFrame:
    """Rows to a proxy re-keyed to the host they were for, with a ``via_proxy`` column.

    See the module docstring. Every row gets the column (null when not proxied). Only
    the rows to a proxy are joined to their targets and have their URL parsed; their
    new values are then written into the columns at those rows (joining and parsing
    every row, then sorting them back, cost 4.5 s per million events).
    """
    rows = events.select(to_endpoints(proxies).alias("_m")).to_series().arg_true()
    if rows.len() == 0:
        return events.with_columns(pl.lit(None, pl.String).alias(S.VIA_PROXY))
    changed = S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL, S.VIA_PROXY, S.REMOTE_IP_TYPE
    sub = events.select(S.UID, *changed[:3], S.REMOTE_IP_TYPE)[rows].join(
        targets.drop("_connect"),
        left_on=S.UID,
        right_on=S.APP_UID,
        how="left",
        maintain_order="left",
    )
    # each distinct URL parsed once (a sensor's proxied rows repeat a few hundred URLs:
    # the regex per row, evaluated for each use of the host, cost 1 s at 180k rows)
    url_host, url_port = parse_target(pl.col(S.REMOTE_URL), pl.lit(443))
    urls = sub.select(pl.col(S.REMOTE_URL).unique()).with_columns(
        url_host.alias("_url_host"), url_port.alias("_url_port")
    )
    sub = sub.join(urls, on=S.REMOTE_URL, how="left", nulls_equal=True, maintain_order="left")
    host = pl.coalesce(pl.col(_T_HOST), pl.col("_url_host"))
    port = pl.coalesce(pl.col(_T_PORT), pl.col("_url_port"))
    proxied = host.is_not_null() & (host != "")
    new = sub.select(
        pl.when(proxied).then(host).otherwise(pl.col(S.REMOTE_IP)).alias(S.REMOTE_IP),
        pl.when(proxied).then(port).otherwise(pl.col(S.REMOTE_PORT)).alias(S.REMOTE_PORT),
        pl.when(proxied).then(host).otherwise(pl.col(S.REMOTE_URL)).alias(S.REMOTE_URL),
        pl.when(proxied).then(endpoint_expr()).otherwise(None).alias(S.VIA_PROXY),
        pl.when(proxied)
        .then(pl.lit(None, pl.String))
        .otherwise(pl.col(S.REMOTE_IP_TYPE))
        .alias(S.REMOTE_IP_TYPE),
    )
    via = pl.select(pl.repeat(None, events.height, dtype=pl.String)).to_series()
    columns = {S.VIA_PROXY: via}
    layout = events.to_series(0)  # the new columns are cut as the others (``chunks``)
    for name in changed:
        before = columns.get(name, events.get_column(name) if name in events.columns else via)
        values = new.get_column(name)
        columns[name] = scatter(before, rows, values, layout)
    return events.with_columns(columns[name].alias(name) for name in changed)
