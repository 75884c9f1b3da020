"""Direction, monitored-host inference and protocol handling, with values worked by hand."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.base.errors import InputError
from detectors.pairs.topology import (
    M_DECLARED,
    M_DESTINATIONS,
    M_IP,
    M_SOURCES,
    annotate,
    direction,
    in_networks,
    infer_monitored,
    normalize_protocol,
)
from detectors.run.setup import load_config

T0 = datetime(2026, 11, 18, tzinfo=timezone.utc)


def events(rows: list[dict]) -> pl.DataFrame:
    """Canonical events from partial rows (missing columns null, time T0)."""
    full = [{**{k: None for k in S.EVENT_SCHEMA}, S.TIMESTAMP: T0, **r} for r in rows]
    return pl.DataFrame(full, schema=S.EVENT_SCHEMA)


def zeek(orig: str, resp: str, port: int | None = 443, proto: str = "tcp", **kw) -> dict:
    """A sensor row as the Zeek loader writes it: the originator is the device."""
    return {
        S.DEVICE_ID: orig, S.DEVICE_NAME: orig, S.LOCAL_IP: orig, S.REMOTE_IP: resp,
        S.REMOTE_PORT: port, S.LOCAL_PORT: 50000, S.PROTOCOL: proto, **kw,
    }  # fmt: skip


def defender(remote: str, action: str = S.ACTION_SUCCESS, **kw) -> dict:
    return {
        S.DEVICE_ID: "a" * 40, S.DEVICE_NAME: "ws-1.contoso.com", S.LOCAL_IP: "10.0.2.5",
        S.PROCESS: "curl.exe", S.ACTION: action, S.REMOTE_IP: remote, S.REMOTE_PORT: 443,
        S.LOCAL_PORT: 51000, S.PROTOCOL: "Tcp", **kw,
    }  # fmt: skip


def test_internal_defaults_cover_rfc1918_cgnat_ula_linklocal_loopback():
    ips = pl.Series(
        ["10.9.9.9", "172.31.255.255", "172.32.0.1", "192.168.1.1", "100.64.0.1",
         "100.127.255.255", "100.128.0.0", "169.254.3.4", "127.0.0.1", "fd12::1", "fe80::1",
         "::1", "::ffff:10.1.1.1", "8.8.8.8", "2001:db8::1", None, "evil.example", "300.1.1.1"]
    )  # fmt: skip
    got = in_networks(ips, NetworkSettings().internal).to_list()
    assert got == [
        True, True, False, True, True, True, False, True, True, True, True, True, True,
        False, False, False, False, False,
    ]  # fmt: skip


def test_direction_of_sensor_and_host_rows():
    frame = events(
        [
            zeek("10.0.0.5", "93.184.216.34"),  # ours -> internet
            zeek("45.1.2.3", "10.0.0.5"),  # internet -> ours
            zeek("10.0.0.5", "10.0.0.6"),  # ours -> ours
            zeek("45.1.2.3", "93.184.216.34"),  # transit
            defender("93.184.216.34"),  # a device's own outbound
            defender("45.1.2.3", S.ACTION_INBOUND),  # accepted from the internet
            defender("10.0.0.9", S.ACTION_INBOUND),  # accepted from a colleague
            defender("10.0.0.9"),
            zeek("10.0.0.5", None),  # no remote
        ]
    )
    got = direction(frame, NetworkSettings(), monitored=[]).to_list()
    assert got == [
        "outbound", "inbound", "internal", "external-only", "outbound", "inbound",
        "internal", "internal", None,
    ]  # fmt: skip


def test_monitored_host_makes_its_traffic_ours():
    frame = events([zeek("198.51.100.7", "8.8.8.8"), zeek("45.1.2.3", "198.51.100.7", 80)])
    assert direction(frame, NetworkSettings(), []).to_list() == ["external-only"] * 2
    got = direction(frame, NetworkSettings(), ["198.51.100.7"]).to_list()
    assert got == ["outbound", "inbound"]


def test_internal_cli_subnet_extends_defaults():
    settings = NetworkSettings().with_internal(("203.0.113.0/24",))
    frame = events([zeek("203.0.113.9", "8.8.8.8"), zeek("10.0.0.1", "203.0.113.9")])
    assert direction(frame, settings, []).to_list() == ["outbound", "internal"]
    with pytest.raises(InputError, match="not an address or CIDR"):
        NetworkSettings().with_internal(("10.0.0.0/33",))


def test_infer_monitored_needs_many_external_sources_and_own_traffic():
    settings = NetworkSettings(monitored_min_sources=3, monitored_min_destinations=2)
    rows = [zeek(f"45.0.0.{i}", "198.51.100.7", 22) for i in range(1, 5)]  # 4 sources
    rows += [zeek("198.51.100.7", "8.8.8.8", 53, "udp"), zeek("198.51.100.7", "1.2.3.4", 123)]
    # reached by 3 sources but originates nothing: a busy external server, not ours
    rows += [zeek(f"45.0.1.{i}", "203.0.113.50") for i in range(1, 4)]
    # internal clients do not count as external sources
    rows += [zeek(f"10.0.0.{i}", "203.0.113.60") for i in range(1, 6)]
    rows += [zeek("203.0.113.60", "8.8.8.8"), zeek("203.0.113.60", "8.8.4.4")]
    got = infer_monitored(events(rows), settings)
    assert got.to_dicts() == [
        {M_IP: "198.51.100.7", M_SOURCES: 4, M_DESTINATIONS: 2, M_DECLARED: False}
    ]
    # three sources of four, or a single destination, are not enough
    assert infer_monitored(events(rows), NetworkSettings(monitored_min_sources=5)).height == 0
    strict = NetworkSettings(monitored_min_sources=3, monitored_min_destinations=3)
    assert infer_monitored(events(rows), strict).height == 0


def test_declared_monitored_listed_even_without_traffic():
    settings = NetworkSettings(monitored=("192.0.2.1",), infer_monitored=False)
    got = infer_monitored(events([zeek("45.0.0.1", "192.0.2.1")]), settings)
    assert got.to_dicts() == [
        {M_IP: "192.0.2.1", M_SOURCES: 1, M_DESTINATIONS: 0, M_DECLARED: True}
    ]


def test_annotate_orients_inbound_rows_to_our_host():
    frame = events(
        [
            zeek("45.1.2.3", "198.51.100.7", 80, local_port=40001, bytes_out=120, bytes_in=900),
            defender("45.1.2.3", S.ACTION_INBOUND, remote_port=40002, local_port=8443),
            defender("93.184.216.34"),
        ]
    )
    got = annotate(frame, NetworkSettings(), ["198.51.100.7"])
    cols = [S.DEVICE_ID, S.LOCAL_IP, S.REMOTE_IP, S.LOCAL_PORT, S.REMOTE_PORT]
    cols += [S.BYTES_OUT, S.BYTES_IN, S.DIRECTION]
    assert got.select(cols).rows() == [
        ("198.51.100.7", "198.51.100.7", "45.1.2.3", 80, 80, 900, 120, "inbound"),
        ("a" * 40, "10.0.2.5", "45.1.2.3", 8443, 8443, None, None, "inbound"),
        ("a" * 40, "10.0.2.5", "93.184.216.34", 51000, 443, None, None, "outbound"),
    ]


def test_in_networks_when_every_or_no_address_is_inside():
    internal = NetworkSettings().internal
    ours = pl.Series(["10.0.0.5", None, "192.168.1.9", "10.0.0.5", "fd12::1"])
    assert in_networks(ours, internal).to_list() == [True, False, True, True, True]
    theirs = pl.Series(["8.8.8.8", None, "2001:db8::1", "evil.example"])
    assert in_networks(theirs, internal).to_list() == [False, False, False, False]
    assert in_networks(pl.Series([None, None], dtype=pl.String), internal).to_list() == [
        False,
        False,
    ]


def test_canonical_protocols_keep_the_loaded_column():
    frame = events([zeek("10.0.0.5", "8.8.8.8", 53, "udp"), defender("8.8.8.8", protocol="tcp")])
    placed = normalize_protocol(frame)
    assert placed.get_column(S.PROTOCOL).to_list() == ["udp", "tcp"]
    # nothing to change: the loaded frame itself, no rewritten copy of the column
    assert placed is frame


def test_protocol_values_and_icmp_has_no_port():
    frame = events(
        [
            zeek("10.0.0.5", "8.8.8.8", 3, "icmp"),
            zeek("10.0.0.5", "8.8.8.8", 123, "udp"),
            defender("8.8.8.8", protocol="TcpV4"),
            defender("8.8.8.8", protocol="Icmpv6"),
            defender("8.8.8.8", protocol="Udp"),
            defender("8.8.8.8", protocol="sctp"),
            defender("8.8.8.8", protocol=None),
        ]
    )
    got = normalize_protocol(frame).select(S.PROTOCOL, S.REMOTE_PORT).rows()
    assert got == [
        ("icmp", None), ("udp", 123), ("tcp", 443), ("icmp", None), ("udp", 443),
        (None, 443), (None, 443),
    ]  # fmt: skip


def test_network_config_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[network]\ninternal = ["10.0.0.0/8"]\nmonitored = ["198.51.100.7"]\n'
        'proxies = ["10.0.0.5:3128"]\nmonitored_min_sources = 50\n'
    )
    settings = load_config(path).network_settings()
    assert settings.internal == ("10.0.0.0/8",)
    assert settings.monitored == ("198.51.100.7",)
    assert settings.proxies == ("10.0.0.5:3128",)
    assert settings.monitored_min_sources == 50
    path.write_text('[network]\nproxies = ["10.0.0.5"]\n')
    with pytest.raises(InputError, match="not address:port") as err:
        load_config(path)
    assert err.value.field == "network.proxies"
    path.write_text("[network]\nsubnets = []\n")
    with pytest.raises(InputError, match="unknown setting"):
        load_config(path)
