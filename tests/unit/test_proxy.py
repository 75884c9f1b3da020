"""Proxy detection and re-keying of Zeek and Defender rows, values worked by hand."""

from __future__ import annotations

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.network import place
from detectors.pairs.proxy import (
    X_DEVICES,
    X_ENDPOINT,
    X_NAMES,
    X_REASON,
    detect_proxies,
    proxy_targets,
    rekey,
)
from tests.unit.test_topology import defender, events, zeek


def app(rows: list[tuple[str, str | None, str | None, str | None]]) -> pl.DataFrame:
    """http.log app rows: (uid, method, uri, host)."""
    return pl.DataFrame(
        [
            {S.APP_UID: u, S.APP_KIND: "http", S.APP_METHOD: m, S.APP_URI: uri, S.APP_HOST: h}
            for u, m, uri, h in rows
        ],
        schema=S.APP_SCHEMA,
    )


ZEEK_ROWS = [
    zeek("10.0.2.7", "10.0.0.5", 3128, uid="C1"),  # CONNECT www.c2.example:443
    zeek("10.0.2.7", "10.0.0.5", 3128, uid="C2"),  # CONNECT without a port
    zeek("10.0.2.8", "10.0.0.5", 3128, uid="C3"),  # GET http://news.example:8080/a
    zeek("10.0.2.8", "10.0.0.5", 3128, uid="C4"),  # no http.log row: stays the proxy's
    zeek("10.0.2.8", "93.184.216.34", 80, uid="C5"),  # direct GET /: not proxied
]
ZEEK_APP = app(
    [
        ("C1", "CONNECT", "www.c2.example:443", "www.c2.example:443"),
        ("C2", "CONNECT", None, "Upd.Example"),
        ("C3", "GET", "http://news.example:8080/a", "news.example:8080"),
        ("C3", "GET", "http://second.example/b", "second.example"),  # same uid: first wins
        ("C5", "GET", "/", "example.com"),
    ]
)


def test_zeek_connect_and_absolute_uri_rekeyed_to_proxied_host():
    got = rekey(events(ZEEK_ROWS), proxy_targets(ZEEK_APP), ["10.0.0.5:3128"])
    assert got.select(S.UID, S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL, S.VIA_PROXY).rows() == [
        ("C1", "www.c2.example", 443, "www.c2.example", "10.0.0.5:3128"),
        ("C2", "upd.example", 443, "upd.example", "10.0.0.5:3128"),
        ("C3", "news.example", 8080, "news.example", "10.0.0.5:3128"),
        ("C4", "10.0.0.5", 3128, None, None),
        ("C5", "93.184.216.34", 80, None, None),
    ]


def test_zeek_connect_marks_proxy():
    got = detect_proxies(events(ZEEK_ROWS), proxy_targets(ZEEK_APP), NetworkSettings())
    assert got.to_dicts() == [
        {X_ENDPOINT: "10.0.0.5:3128", X_REASON: "CONNECT seen", X_DEVICES: 2, X_NAMES: 3}
    ]


def test_defender_rows_to_proxy_with_url_rekeyed():
    rows = [
        defender("10.0.0.5", remote_port=8080, remote_url="www.c2.example"),
        defender("10.0.0.5", remote_port=8080, remote_url="http://plain.example/x"),
        defender("10.0.0.5", remote_port=8080, remote_url="https://alt.example:8443/p"),
        defender("10.0.0.5", remote_port=8080),  # no URL: stays the proxy's
        defender("93.184.216.34", remote_url="direct.example"),  # not a proxy
    ]
    got = rekey(events(rows), proxy_targets(app([])), ["10.0.0.5:8080"])
    assert got.select(S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL, S.VIA_PROXY).rows() == [
        ("www.c2.example", 443, "www.c2.example", "10.0.0.5:8080"),
        ("plain.example", 80, "plain.example", "10.0.0.5:8080"),
        ("alt.example", 8443, "alt.example", "10.0.0.5:8080"),
        ("10.0.0.5", 8080, None, None),
        ("93.184.216.34", 443, "direct.example", None),
    ]


def _web(device: str, remote: str, port: int, names: list[str]) -> list[dict]:
    return [defender(remote, device_id=device, remote_port=port, remote_url=n) for n in names]


def test_defender_proxy_inferred_from_many_names_on_most_devices():
    names = [f"site{i}.example" for i in range(10)]
    rows = _web("d1", "10.0.0.5", 8080, names) + _web("d2", "10.0.0.5", 8080, names[:3])
    rows += _web("d3", "10.0.0.5", 8080, names[:1])
    # an intranet server with 10 names from one device of four: not most devices
    rows += _web("d4", "10.0.9.9", 443, [f"intra{i}.corp" for i in range(10)])
    settings = NetworkSettings(proxy_min_names=10, proxy_min_device_share=0.5)
    got = detect_proxies(events(rows), proxy_targets(app([])), settings)
    assert got.to_dicts() == [
        {
            X_ENDPOINT: "10.0.0.5:8080",
            X_REASON: "10 names from 3 of 4 devices",
            X_DEVICES: 3,
            X_NAMES: 10,
        }
    ]
    # 10 names short of 11; the 8080 names span 10 registered domains, short of 11 too
    fewer = NetworkSettings(proxy_min_names=11, proxy_port_min_domains=11)
    assert detect_proxies(events(rows), proxy_targets(app([])), fewer).height == 0
    by_port = detect_proxies(
        events(rows), proxy_targets(app([])), NetworkSettings(proxy_min_names=11)
    )
    assert by_port.get_column(X_REASON).to_list() == [
        "proxy port: 10 names in 10 domains from 3 devices"
    ]
    declared = NetworkSettings(proxies=("10.0.9.9:443",), infer_proxies=False)
    assert detect_proxies(events(rows), proxy_targets(app([])), declared).select(
        X_ENDPOINT, X_REASON
    ).rows() == [("10.0.9.9:443", "declared")]


def test_an_internal_resolver_is_never_inferred_to_be_a_proxy():
    # Defender logs the query name as RemoteUrl: a resolver carries many names from
    # every device, like a proxy, but on a name-service port.
    names = [f"site{i}.example" for i in range(10)]
    rows = _web("d1", "10.0.1.10", 53, names) + _web("d2", "10.0.1.10", 53, names)
    rows += _web("d1", "10.0.0.5", 8080, names) + _web("d2", "10.0.0.5", 8080, names)
    settings = NetworkSettings(proxy_min_names=10, proxy_min_device_share=0.5)
    got = detect_proxies(events(rows), proxy_targets(app([])), settings)
    assert got.get_column(X_ENDPOINT).to_list() == ["10.0.0.5:8080"]
    declared = NetworkSettings(proxies=("10.0.1.10:53",), infer_proxies=False)
    assert detect_proxies(events(rows), proxy_targets(app([])), declared).get_column(
        X_ENDPOINT
    ).to_list() == ["10.0.1.10:53"]


def test_place_gives_proxied_rows_outbound_direction():
    placed = place(events(ZEEK_ROWS), ZEEK_APP, NetworkSettings())
    assert placed.events.select(S.REMOTE_IP, S.DIRECTION).rows() == [
        ("www.c2.example", "outbound"),
        ("upd.example", "outbound"),
        ("news.example", "outbound"),
        ("10.0.0.5", "internal"),
        ("93.184.216.34", "outbound"),
    ]
    assert placed.notes() == [
        "proxy 10.0.0.5:3128 (CONNECT seen): connections through it are keyed by the proxied host"
    ]


def test_proxy_port_with_names_of_three_domains_is_a_proxy_however_few_use_it():
    """One device of twelve with named traffic: the share rule cannot find it."""
    rows = [defender("93.184.216.34", remote_url=f"site{i}.example") for i in range(11)]
    rows = [{**r, S.DEVICE_ID: f"d{i}"} for i, r in enumerate(rows)]
    few = {S.DEVICE_ID: "msbuild-host"}
    rows += [
        {**defender("10.0.0.8", remote_port=3128, remote_url=u), **few}
        for u in ("graph-sync.example", "pypi.org", "files.pythonhosted.org")
    ]
    # an internal web app on 8080 under three names of its own domain: not a proxy
    rows += [
        {**defender("10.0.0.20", remote_port=8080, remote_url=u), **few}
        for u in ("ci.corp.example.com", "build.corp.example.com", "jenkins.corp.example.com")
    ]
    # three domains on a port proxies do not use by convention, or on a public address
    rows += [
        {**defender(ip, remote_port=port, remote_url=u), **few}
        for ip, port in (("10.0.0.30", 9000), ("198.51.100.3", 3128))
        for u in ("a.example", "b.example.org", "c.example.net")
    ]
    got = detect_proxies(events(rows), proxy_targets(app([])), NetworkSettings())
    assert got.to_dicts() == [
        {
            X_ENDPOINT: "10.0.0.8:3128",
            X_REASON: "proxy port: 3 names in 3 domains from 1 devices",
            X_DEVICES: 1,
            X_NAMES: 3,
        }
    ]
    fewer = detect_proxies(
        events(rows), proxy_targets(app([])), NetworkSettings(proxy_port_min_domains=4)
    )
    assert fewer.height == 0
