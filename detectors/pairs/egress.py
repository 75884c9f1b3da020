"""A proxy's own connections to the servers, linked to the client request they carry.

A sensor that sees both sides of an explicit proxy logs every proxied request twice:
the client's connection to the proxy (re-keyed to the proxied host by
``detectors.pairs.proxy``) and, a moment later, the proxy's own connection from its
address to the server's public address. Ranked as they are, the second kind makes the
proxy a "device" that beacons to everything its clients beacon to. So a connection
from a proxy's address that went out (``direction`` outbound, not itself proxied) is
*linked* to the client's proxied connection when

* its name (TLS server name or HTTP Host of its uid in ssl/http.log, else its URL's
  host, as Defender's RemoteUrl on an onboarded proxy) is the host the client asked
  for (CONNECT host, absolute URI or RemoteUrl), through a proxy on the same address;
* it started within ``proxy_egress_window_ms`` after that client's connection (the
  latest such client connection before it is taken: proxies open upstream in the
  order requests arrive).

A linked egress row is set aside (no hunt ranks it; its count is said) and the client
row it carried gets the server's address in ``proxy_server``: the proxied pair then
knows the public addresses behind its host name ("via proxy 10.0.0.5:3128 →
203.0.113.9"), for enrichment and the allow-list. Egress that links to nothing stays
as the proxy's own traffic, with a count of why (no name, or no client asked for the
name in time).

One pure function of the placed events and the proxies found, so it fits any run
shape (in memory, or decided once and applied per partition). Vectorised: one
``join_asof`` by (proxy address, name), no loop per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from detectors.base import schema as S
from detectors.pairs.chunks import scatter
from detectors.pairs.proxy import parse_target

_ROW = "_row"
_NAME = "_name"
_PROXY = "_proxy_ip"
_CLIENT = "_client_row"


@dataclass(frozen=True)
class EgressCount:
    """What linking found, for the placement notes (one proxy address per entry)."""

    linked: int = 0
    no_name: int = 0  # egress rows with no SNI, Host or URL to compare
    no_client: int = 0  # named egress rows no client asked for within the window
    window_ms: int = 0
    proxies: tuple[str, ...] = field(default_factory=tuple)

    def notes(self) -> list[str]:
        """Lines for the user: what was set aside, and what stayed and why."""
        where = ", ".join(self.proxies)
        lines = []
        if self.linked:
            lines.append(
                f"{self.linked:,} connections from proxy {where} to the servers linked to their"
                " clients' proxied connections and set aside (not ranked as the proxy's own)"
            )
        if self.no_name or self.no_client:
            lines.append(
                f"{self.no_name + self.no_client:,} connections from proxy {where} not linked "
                f"and kept as its own: {self.no_name:,} carried no name (SNI, Host or URL), "
                f"{self.no_client:,} no client asked for their name within "
                f"{self.window_ms:,} ms before"
            )
        return lines


def proxy_address(endpoint: pl.Expr) -> pl.Expr:
    """The address of an "address:port" proxy endpoint (brackets of IPv6 removed)."""
    return endpoint.str.replace(r":\d+$", "").str.strip_chars("[]")


def _egress_names(rows: pl.DataFrame, app: pl.DataFrame) -> pl.Series:
    """The name each egress row carries: its uid's TLS server name or HTTP Host (first
    of each), else the host of its URL; lower case, port removed."""
    per_uid = (
        app.filter(pl.col(S.APP_UID).is_not_null())
        .group_by(S.APP_UID)
        .agg(
            pl.col(S.APP_SNI).drop_nulls().first().alias("_sni"),
            pl.col(S.APP_HOST).drop_nulls().first().alias("_host"),
        )
    )
    joined = rows.select(S.UID, S.REMOTE_URL).join(
        per_uid, left_on=S.UID, right_on=S.APP_UID, how="left", maintain_order="left"
    )
    written = joined.select(pl.coalesce("_sni", "_host", S.REMOTE_URL).alias("_written"))
    # each distinct name parsed once (a proxy's egress repeats its clients' few names)
    host, _ = parse_target(pl.col("_written"), pl.lit(443))
    names = written.unique().with_columns(host.alias(_NAME))
    return written.join(
        names, on="_written", how="left", nulls_equal=True, maintain_order="left"
    ).get_column(_NAME)


def link_egress(
    events: pl.DataFrame, app: pl.DataFrame, proxies: Sequence[str], window_ms: int
) -> tuple[pl.DataFrame, EgressCount]:
    """Placed events with linked egress set aside and ``proxy_server`` on the clients.

    ``events`` carry ``direction`` and ``via_proxy`` (placed); ``proxies`` are the
    endpoints found ("10.0.0.5:3128"). Every row gets ``proxy_server`` (null unless a
    linked egress row gave it). See the module docstring for the rule.
    """
    addresses = sorted({a for a in (e.rpartition(":")[0].strip("[]") for e in proxies) if a})
    server = pl.lit(None, pl.String).alias(S.PROXY_SERVER)
    if not addresses or S.VIA_PROXY not in events.columns:
        return events.with_columns(server), EgressCount(window_ms=window_ms)
    outbound = (pl.col(S.DIRECTION) == S.DIR_OUTBOUND).fill_null(False)
    mask = pl.col(S.LOCAL_IP).is_in(addresses).fill_null(False) & outbound
    egress_rows = events.select(mask & pl.col(S.VIA_PROXY).is_null()).to_series().arg_true()
    if egress_rows.len() == 0:
        return events.with_columns(server), EgressCount(window_ms=window_ms)
    egress = events.select(S.TIMESTAMP, S.LOCAL_IP, S.REMOTE_IP, S.UID, S.REMOTE_URL)[egress_rows]
    egress = egress.with_columns(
        _egress_names(egress, app), pl.col(S.LOCAL_IP).alias(_PROXY), egress_rows.alias(_ROW)
    )
    client_rows = events.select(pl.col(S.VIA_PROXY).is_not_null()).to_series().arg_true()
    clients = events.select(S.TIMESTAMP, S.REMOTE_IP, S.VIA_PROXY)[client_rows]
    # the proxy's address per distinct endpoint text (a handful), then per row
    endpoints = clients.select(pl.col(S.VIA_PROXY).unique())
    endpoints = endpoints.with_columns(proxy_address(pl.col(S.VIA_PROXY)).alias(_PROXY))
    clients = (
        clients.join(endpoints, on=S.VIA_PROXY, how="left", maintain_order="left")
        .select(
            pl.col(S.TIMESTAMP).alias("_client_ts"),
            S.TIMESTAMP,
            _PROXY,
            pl.col(S.REMOTE_IP).str.to_lowercase().alias(_NAME),
            client_rows.alias(_CLIENT),
        )
        .sort(S.TIMESTAMP)
    )
    named = egress.filter(pl.col(_NAME).is_not_null() & (pl.col(_NAME) != ""))
    matched = named.sort(S.TIMESTAMP).join_asof(
        clients,
        on=S.TIMESTAMP,
        by=[_PROXY, _NAME],
        strategy="backward",
        tolerance=f"{int(window_ms)}ms",
        check_sortedness=False,
    )
    linked = matched.filter(pl.col(_CLIENT).is_not_null())
    # a client connection that carried several requests keeps its first server
    first = linked.sort(S.TIMESTAMP).unique(_CLIENT, keep="first")
    # both cut as the frame's columns (``chunks``): else the filter copies the frame twice
    layout = events.to_series(0)
    first = first.sort(_CLIENT)  # positions ascending, as ``chunks.scatter`` takes them
    servers = scatter(
        pl.select(pl.repeat(None, events.height, dtype=pl.String)).to_series(),
        first.get_column(_CLIENT),
        first.get_column(S.REMOTE_IP),
        layout,
    )
    out = events.with_columns(servers.alias(S.PROXY_SERVER))
    if linked.height:
        drop = pl.select(pl.repeat(False, events.height)).to_series()
        drop = scatter(
            drop, linked.get_column(_ROW).sort(), pl.repeat(True, linked.height, eager=True), layout
        )
        out = out.filter(~drop)
    count = EgressCount(
        linked=linked.height,
        no_name=egress.height - named.height,
        no_client=named.height - linked.height,
        window_ms=window_ms,
        proxies=tuple(egress.get_column(_PROXY).unique().sort().to_list()),
    )
    return out, count
