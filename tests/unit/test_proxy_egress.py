"""A proxy's own connections linked to its clients' proxied ones: values worked by hand.

The world: clients 10.0.2.7 and 10.0.2.8 use proxy 10.0.0.5:3128 (CONNECT seen); a
sensor also sees the proxy's own connections from 10.0.0.5 to the servers. Times are
seconds after T0; the window is the default 3,000 ms.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.egress import EgressCount, link_egress
from detectors.pairs.network import place
from tests.unit.test_topology import T0, defender, events, zeek

PROXY = "10.0.0.5"


def at(seconds: float, row: dict) -> dict:
    return {**row, S.TIMESTAMP: T0 + timedelta(seconds=seconds)}


def app(rows: list[tuple[str, str, str | None, str | None]]) -> pl.DataFrame:
    """App rows: (uid, kind, CONNECT target or Host, TLS server name)."""
    out = []
    for uid, kind, target, sni in rows:
        if kind == "connect":
            out.append({S.APP_UID: uid, S.APP_KIND: "http", S.APP_METHOD: "CONNECT",
                        S.APP_URI: target, S.APP_HOST: target})  # fmt: skip
        elif kind == "http":
            out.append({S.APP_UID: uid, S.APP_KIND: "http", S.APP_METHOD: "GET",
                        S.APP_URI: "/", S.APP_HOST: target})  # fmt: skip
        else:
            out.append({S.APP_UID: uid, S.APP_KIND: "ssl", S.APP_SNI: sni})
    return pl.DataFrame(out, schema=S.APP_SCHEMA)


ROWS = [
    # client A asks for c2.example at 0 s, the proxy goes out 0.2 s later: linked
    at(0.0, zeek("10.0.2.7", PROXY, 3128, uid="A1")),
    at(0.2, zeek(PROXY, "203.0.113.9", 443, uid="E1")),
    # client A asks for c2.example again at 100 s; the proxy goes out 4 s later: too late
    at(100.0, zeek("10.0.2.7", PROXY, 3128, uid="A2")),
    at(104.0, zeek(PROXY, "203.0.113.9", 443, uid="E2")),
    # the proxy reaches other.example at 200.1 s; the client asked for c2.example
    at(200.0, zeek("10.0.2.7", PROXY, 3128, uid="A3")),
    at(200.1, zeek(PROXY, "198.51.100.77", 443, uid="E3")),
    # two clients ask for news.example 1 s apart; each egress follows its own client
    at(300.0, zeek("10.0.2.7", PROXY, 3128, uid="A4")),
    at(301.0, zeek("10.0.2.8", PROXY, 3128, uid="B1")),
    at(300.5, zeek(PROXY, "192.0.2.10", 443, uid="E4")),
    at(301.3, zeek(PROXY, "192.0.2.11", 443, uid="E5")),
    # the proxy's own update check: no SNI, no Host, no URL
    at(400.0, zeek(PROXY, "91.189.91.83", 80, uid="E6")),
]
APP = app(
    [
        ("A1", "connect", "c2.example:443", None),
        ("E1", "ssl", None, "C2.Example"),
        ("A2", "connect", "c2.example:443", None),
        ("E2", "ssl", None, "c2.example"),
        ("A3", "connect", "c2.example:443", None),
        ("E3", "ssl", None, "other.example"),
        ("A4", "connect", "news.example:443", None),
        ("B1", "connect", "news.example:443", None),
        ("E4", "http", "news.example:443", None),  # a Host header with a port
        ("E5", "ssl", None, "news.example"),
    ]
)


def test_egress_linked_by_name_and_time_and_set_aside():
    placed = place(events(ROWS), APP, NetworkSettings())
    got = placed.events.sort(S.TIMESTAMP).select(
        S.UID, S.DEVICE_ID, S.REMOTE_IP, S.VIA_PROXY, S.PROXY_SERVER
    )
    via = f"{PROXY}:3128"
    assert got.rows() == [
        ("A1", "10.0.2.7", "c2.example", via, "203.0.113.9"),  # E1 0.2 s after, same name
        ("A2", "10.0.2.7", "c2.example", via, None),  # E2 4 s after: beyond 3 s
        ("E2", PROXY, "203.0.113.9", None, None),
        ("A3", "10.0.2.7", "c2.example", via, None),  # E3 named other.example
        ("E3", PROXY, "198.51.100.77", None, None),
        ("A4", "10.0.2.7", "news.example", via, "192.0.2.10"),  # E4 at 300.5: A4 latest
        ("B1", "10.0.2.8", "news.example", via, "192.0.2.11"),  # E5 at 301.3: B1 latest
        ("E6", PROXY, "91.189.91.83", None, None),
    ]
    assert placed.egress == EgressCount(
        linked=3, no_name=1, no_client=2, window_ms=3000, proxies=(PROXY,)
    )
    assert placed.notes()[-2:] == [
        "3 connections from proxy 10.0.0.5 to the servers linked to their clients' proxied "
        "connections and set aside (not ranked as the proxy's own)",
        "3 connections from proxy 10.0.0.5 not linked and kept as its own: 1 carried no name "
        "(SNI, Host or URL), 2 no client asked for their name within 3,000 ms before",
    ]


def test_wider_window_links_the_late_egress():
    placed = place(events(ROWS), APP, NetworkSettings(proxy_egress_window_ms=5000))
    a2 = placed.events.filter(pl.col(S.UID) == "A2").get_column(S.PROXY_SERVER).to_list()
    assert a2 == ["203.0.113.9"]
    assert placed.egress.linked == 4
    assert placed.egress.no_client == 1


def test_egress_before_the_client_request_is_not_linked():
    rows = [
        at(10.0, zeek(PROXY, "203.0.113.9", 443, uid="E1")),
        at(10.5, zeek("10.0.2.7", PROXY, 3128, uid="A1")),
    ]
    app_rows = app([("A1", "connect", "c2.example:443", None), ("E1", "ssl", None, "c2.example")])
    placed = place(events(rows), app_rows, NetworkSettings())
    assert placed.events.get_column(S.PROXY_SERVER).to_list() == [None, None]
    assert (placed.egress.linked, placed.egress.no_client) == (0, 1)


def test_defender_on_the_proxy_host_links_by_remote_url():
    """An onboarded proxy: its own rows carry RemoteUrl and LocalIP = the proxy."""
    client = defender(PROXY, remote_port=3128, remote_url="c2.example")
    own = defender("203.0.113.9", remote_url="https://c2.example/", process="squid")
    own = {**own, S.DEVICE_ID: "b" * 40, S.DEVICE_NAME: "proxy-1", S.LOCAL_IP: PROXY}
    rows = [at(0.0, client), at(1.0, own)]
    placed = place(events(rows), app([]), NetworkSettings(proxies=(f"{PROXY}:3128",)))
    got = placed.events.select(S.DEVICE_NAME, S.REMOTE_IP, S.PROXY_SERVER).rows()
    assert got == [("ws-1.contoso.com", "c2.example", "203.0.113.9")]
    assert placed.egress.linked == 1


def test_no_proxy_gives_every_row_a_null_server():
    frame = events([zeek("10.0.2.7", "203.0.113.9", 443)])
    got, count = link_egress(frame.with_columns(
        pl.lit("outbound").alias(S.DIRECTION), pl.lit(None, pl.String).alias(S.VIA_PROXY)
    ), app([]), [], 3000)  # fmt: skip
    assert got.get_column(S.PROXY_SERVER).to_list() == [None]
    assert count == EgressCount(window_ms=3000)


def _proxied_candidates() -> pl.DataFrame:
    """A proxied candidate (its remote end a host name, with the server the proxy
    reached), one without a linked server, and a direct one."""
    return pl.DataFrame(
        {
            S.C_DEVICE: ["a", "b", "c"],
            S.C_PROCESS: ["x.exe"] * 3,
            S.C_REMOTE_IP: ["c2.example", "other.example", "104.16.2.2"],
            S.C_REMOTE_PORT: pl.Series([443, 443, 443], dtype=pl.Int32),
            S.C_SERVER_IPS: [["104.16.1.1", "198.51.100.4"], [], None],
        }
    )


def test_allowlist_by_address_matches_the_server_a_proxy_reached(tmp_path):
    from detectors.curate.allowlist import AllowList

    allow = AllowList(tmp_path / "allow.toml")
    allow.add({"remote_ip": "104.16.0.0/13", "reason": "CDN"})
    flagged = allow.flag(_proxied_candidates())
    assert flagged.get_column(S.C_ALLOWED).to_list() == [True, False, True]


def test_network_owner_of_a_proxied_candidate_is_its_servers():
    from detectors.rank.enrichment import GeoLookup, with_asn
    from tests.unit.test_allowlist_asn import _FakeReader

    geo = GeoLookup(Path("/nonexistent.mmdb"))
    reader = _FakeReader()
    geo._reader = reader
    owned = with_asn(_proxied_candidates(), geo)
    assert sorted(reader.calls) == ["104.16.1.1", "104.16.2.2", "other.example"]
    assert owned.get_column(S.C_ASN).to_list() == [13335, None, None]
    assert owned.columns[-2:] == [S.C_ASN, S.C_ORG]
