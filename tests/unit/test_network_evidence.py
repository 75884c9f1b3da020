"""Evidence on placed events: inbound pairs, proxied pairs, infrastructure, prevalence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.load import load_paths
from detectors.pairs.context import PairContext
from detectors.pairs.network import place_context
from detectors.rank.infrastructure import Infrastructure, Service, infrastructure_facts
from detectors.run.evaluate import evaluate
from detectors.run.loop import run_all

START = datetime(2026, 11, 18, tzinfo=timezone.utc)
NETWORK = Path(__file__).parent.parent.parent / "sample_data" / "network"


def _conn(seconds: float, orig: str, resp: str, port: int, proto: str = "tcp", **kw) -> dict:
    row = {k: None for k in S.EVENT_SCHEMA}
    row.update(
        {
            S.TIMESTAMP: START + timedelta(seconds=seconds),
            S.DEVICE_ID: orig,
            S.DEVICE_NAME: orig,
            S.LOCAL_IP: orig,
            S.LOCAL_PORT: 40000,
            S.REMOTE_IP: resp,
            S.REMOTE_PORT: port,
            S.PROTOCOL: proto,
            S.ACTION: "SF",
            S.CONNECTIONS: 1,
            S.UID: f"C{seconds}{orig}",
            **kw,
        }
    )
    return row


def _evidence(candidate: dict) -> dict[str, tuple[float, str]]:
    return {e["name"]: (round(e["points"], 2), e["value"]) for e in candidate[S.C_EVIDENCE]}


def test_one_device_capture_never_says_rare_and_common():
    rows = [_conn(600.0 * i, "10.0.0.5", "185.141.27.66", 443) for i in range(40)]
    ds = PairContext(events=pl.DataFrame(rows, schema=S.EVENT_SCHEMA))
    top = run_all(ds, Config(), workers=1).candidates.row(0, named=True)
    evidence = _evidence(top)
    assert "rare destination IP" not in evidence
    assert "common destination IP" not in evidence
    assert evidence["prevalence not used"] == (
        0.0,
        "only 1 devices: rare and common cannot be told apart",
    )


def _sensor_capture() -> PairContext:
    """A sensor on 198.51.100.20: 12 scanners hit its port 443, an uptime check polls
    443 every 300 s, a controller polls 8080 every 250 s, and the host runs NTP."""
    rows = [_conn(60.0 * i, f"45.0.0.{i}", "198.51.100.20", 443) for i in range(1, 13)]
    rows += [_conn(300.0 * i, "34.82.10.15", "198.51.100.20", 443) for i in range(60)]
    rows += [_conn(250.0 * i + 7, "45.77.12.34", "198.51.100.20", 8080) for i in range(60)]
    rows += [_conn(1024.0 * i, "198.51.100.20", "162.159.200.123", 123, "udp") for i in range(17)]
    rows += [_conn(5.0, "198.51.100.20", "8.8.8.8", 53, "udp")]
    return PairContext(events=pl.DataFrame(rows, schema=S.EVENT_SCHEMA))


def test_sensor_host_inbound_pairs_ranked_on_their_own_evidence():
    config = Config(network={"monitored_min_sources": 10})
    ds = place_context(_sensor_capture(), config.network_settings())
    assert ds.warnings == [
        "monitored host 198.51.100.20 (inferred): reached by 14 external sources, opens "
        "connections to 2 addresses"
    ]
    out = run_all(ds, config, workers=1).candidates
    by_remote = {r[S.C_REMOTE_IP]: r for r in out.iter_rows(named=True)}
    controller = by_remote["45.77.12.34"]
    assert (controller[S.C_DEVICE], controller[S.C_REMOTE_PORT]) == ("198.51.100.20", 8080)
    assert controller[S.C_DIRECTION] == "inbound"
    evidence = _evidence(controller)
    assert evidence["inbound"] == (0.0, "45.77.12.34 connects to our port 8080")
    assert evidence["private listener"] == (0.1, "our port 8080 answers 1 external sources")
    assert "no name" not in evidence  # an internet source has no name to miss
    uptime = _evidence(by_remote["34.82.10.15"])
    assert "private listener" not in uptime
    ntp = _evidence(by_remote["162.159.200.123"])
    assert ntp["infrastructure service"][0] == -0.3
    assert ntp["infrastructure service"][1].startswith("NTP: NTP to a public time server")
    # the sensor host is the only device: internet scanners are never counted as devices
    assert set(out.get_column(S.C_DEVICE)) == {"198.51.100.20"}


def test_public_service_threshold_discounts_an_uptime_check():
    config = Config(network={"monitored_min_sources": 10}, scoring={"public_service_sources": 10})
    out = run_all(_sensor_capture(), config, workers=1).candidates
    uptime = out.filter(pl.col(S.C_REMOTE_IP) == "34.82.10.15").row(0, named=True)
    assert _evidence(uptime)["public service"] == (
        -0.15,
        "our port 443 answers 13 external sources",
    )


def test_infrastructure_rules_need_the_resolver_for_dns():
    infra = Infrastructure(
        (
            Service(
                "DNS forwarding",
                "resolver",
                ports=(53,),
                processes=frozenset({"dns.exe"}),
                resolver=True,
            ),
            Service("NTP", "time", protocol="udp", ports=(123,), unknown_process=True),
        )
    )
    facts = pl.DataFrame(
        {
            S.C_DEVICE: ["dc-01", "ws-07", "10.0.0.10", "10.0.0.7", "srv-1", "srv-1"],
            S.C_PROCESS: ["dns.exe", "evil.exe", None, None, "chronyd", "chronyd"],
            S.C_REMOTE_PORT: [53, 53, 53, 53, 123, 123],
            "_protocol": ["udp", "udp", "udp", "udp", "Udp", "tcp"],
            "_local_ip": ["10.0.0.11", "10.0.1.7", "10.0.0.10", "10.0.0.7", "10.0.2.1", None],
            "_direction": ["outbound"] * 6,
        }
    )
    got = infrastructure_facts(facts, infra, pl.Series(["10.0.0.10"])).to_list()
    assert got == [
        "DNS forwarding: resolver",  # the DNS server process
        None,  # a workstation's own process: DNS tunnelling stays in
        "DNS forwarding: resolver",  # Zeek: the address our hosts send DNS to
        None,  # Zeek, not a resolver
        "NTP: time",
        None,  # NTP is UDP
    ]


@pytest.fixture(scope="module")
def network_eval() -> pl.DataFrame:
    paths = [NETWORK / "defender_network_events.csv", NETWORK / "zeek"]
    truth = pl.read_csv(NETWORK / "ground_truth.csv")
    return evaluate(PairContext.of(load_paths(paths, cache=None)), truth, Config())


def test_network_sample_every_beacon_above_every_benign_program(network_eval):
    merged = network_eval.filter(pl.col("ranking") == "merged").sort("source")
    assert merged.select(
        "source", "k", "recall", "worst_beacon_rank", "best_benign_rank", "beacons_above_benign"
    ).rows() == [("defender", 4, 1.0, 4, 5, True), ("zeek", 4, 1.0, 4, 5, True)]


def test_new_settings_place_the_loaded_events_again():
    context = _sensor_capture()
    loaded = context.events
    place_context(context, Config(network={"monitored_min_sources": 10}).network_settings())
    assert context.events.get_column(S.DEVICE_ID).unique().to_list() == ["198.51.100.20"]
    assert len(context.warnings) == 1
    # a higher bar: the host is no longer ours, its traffic is nobody's (set aside)
    place_context(context, Config(network={"monitored_min_sources": 100}).network_settings())
    assert context.events.height == 0
    assert context.warnings == [
        "150 connections with neither end in our network set aside (declare [network] "
        "internal or monitored if some are ours)"
    ]
    place_context(context, Config(network={"enabled": False}).network_settings())
    assert context.events is loaded and context.warnings == []
