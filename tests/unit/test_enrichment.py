"""The detail pane's numbers: interval statistics, one pair's times, destination prevalence."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from detectors.base import schema as S
from detectors.pairs.context import PairContext
from detectors.pairs.table import build_pair_index
from detectors.rank.enrichment import (
    DestinationIndex,
    GeoLookup,
    describe_candidate,
    evidence_items,
    interval_stats,
    pair_times,
    sharing_candidates,
)

UTC = timezone.utc
T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _event(second: float, device: str, process: str | None, ip: str, **kw) -> dict:
    return {
        S.TIMESTAMP: T0 + timedelta(seconds=second),
        S.DEVICE_ID: kw.pop("device_id", f"id-{device}"),
        S.DEVICE_NAME: device,
        S.ACCOUNT: kw.pop("account", "corp\\u1"),
        S.PROCESS: process,
        S.ACTION: kw.pop("action", S.ACTION_SUCCESS),
        S.REMOTE_IP: ip,
        S.REMOTE_PORT: kw.pop("port", 443),
        **kw,
    }


def _dataset(rows: list[dict]) -> PairContext:
    return PairContext(events=S.conform(pl.DataFrame(rows), "t.csv").collect())


def test_interval_stats_by_hand():
    # 10, 20, 30, 40: mean 25, sample stdev sqrt((225+25+25+225)/3) = sqrt(500/3);
    # linear percentiles over positions 0..3: p5 at 0.15 -> 11.5, p95 at 2.85 -> 38.5.
    stats = interval_stats([10.0, 20.0, 30.0, 40.0])
    assert stats.intervals == 4
    assert stats.median_s == stats.p50_s == 25.0
    assert stats.mean_s == 25.0
    assert stats.stdev_s == pytest.approx(math.sqrt(500 / 3))
    assert stats.jitter_pct == pytest.approx(math.sqrt(500 / 3) / 25 * 100)
    assert (stats.p5_s, stats.p95_s) == (pytest.approx(11.5), pytest.approx(38.5))
    assert (stats.min_s, stats.max_s) == (10.0, 40.0)


def test_interval_stats_of_one_and_no_interval():
    one = interval_stats([42.0])
    assert one.median_s == 42.0 and one.stdev_s is None and one.jitter_pct is None
    assert interval_stats([]).median_s is None


def test_pair_times_merge_the_accounts_of_one_candidate_and_keep_microseconds():
    rows = [
        _event(0, "ws-1", "a.exe", "8.8.8.8", account="corp\\u1"),
        _event(10.5, "ws-1", "a.exe", "8.8.8.8", account="corp\\u1"),
        _event(10.5, "ws-1", "a.exe", "8.8.8.8", account="corp\\u2"),
        _event(25.000001, "ws-1", "a.exe", "8.8.8.8", account="corp\\u2"),
        _event(5, "ws-1", "a.exe", "8.8.8.8", port=80),  # another port: not this pair
    ]
    pairs = build_pair_index(_dataset(rows).events, None)
    times = pair_times(pairs, "ws-1", "a.exe", "8.8.8.8", 443)
    assert times.size == 3  # 0, 10.5 (both accounts), 25.000001
    from detectors.rank.enrichment import deltas_of

    assert deltas_of(times).tolist() == [10.5, 14.500001]


def test_pair_times_match_a_device_id_and_a_null_process():
    # Zeek: no process, the device is the originating IP (name null here).
    rows = [_event(s, "ignored", None, "1.1.1.1", device_id="10.0.0.5") for s in (0, 60)]
    for row in rows:
        row[S.DEVICE_NAME] = None
    pairs = build_pair_index(_dataset(rows).events, None)
    assert pair_times(pairs, "10.0.0.5", None, "1.1.1.1", 443).size == 2
    assert pair_times(pairs, "10.0.0.5", "x.exe", "1.1.1.1", 443).size == 0


def _prevalence_data() -> PairContext:
    rows = [
        _event(0, "A", "p.exe", "8.8.4.4", **{S.REMOTE_URL: "a.evil.com"}),
        _event(60, "A", "p.exe", "8.8.4.4"),
        _event(120, "B", "q.exe", "8.8.4.4"),
        _event(30, "A", "p.exe", "9.9.9.9", **{S.REMOTE_URL: "https://b.evil.com/x"}),
        _event(40, "C", "p.exe", "9.9.9.9", action=S.ACTION_LISTENING),  # not talking
    ]
    return _dataset(rows)


def test_destination_counts_devices_processes_and_the_domain_across_addresses():
    index = DestinationIndex(_prevalence_data())
    dest = index.describe("8.8.4.4")
    assert dest.ip_class == "Public"
    assert dest.names == ["a.evil.com"]
    assert dest.domain == "evil.com"
    assert (dest.devices_to_ip, dest.processes_to_ip) == (2, 2)  # A, B; p.exe, q.exe
    assert dest.first_seen == T0 and dest.last_seen == T0 + timedelta(seconds=120)
    # evil.com: 8.8.4.4 (A/p, B/q) and 9.9.9.9 (A/p; C only listened) -> 2, 2, 2.
    assert (dest.devices_to_domain, dest.processes_to_domain, dest.addresses_of_domain) == (
        2,
        2,
        2,
    )
    other = index.describe("9.9.9.9", domain="b.evil.com")  # a host name: its eTLD+1
    assert other.domain == "evil.com" and other.devices_to_ip == 1
    assert index.window == (T0, T0 + timedelta(seconds=120))


def test_partitions_without_an_event_give_empty_prevalence_tables():
    # Input opened as partitions where no partition holds an event (every row was
    # dropped): the index is asked of the (empty) events, not of no partition at all.
    from detectors.pairs.population import Population

    empty = S.empty_events()
    population = Population(empty.lazy(), streaming=True, pieces=[])
    index = DestinationIndex(PairContext(events=empty, population=population))
    assert (index.by_ip.height, index.by_domain.height) == (0, 0)
    assert index.describe("8.8.4.4").devices_to_ip == 0


def test_an_unknown_address_is_described_without_failing():
    dest = DestinationIndex(_prevalence_data()).describe("10.1.2.3")
    assert dest.ip_class == "Private"
    assert (dest.devices_to_ip, dest.names, dest.domain) == (0, [], None)


def test_sharing_candidates_same_address_or_domain_best_first_without_itself():
    candidates = pl.DataFrame(
        {
            S.C_DEVICE: ["A", "B", "C", "D"],
            S.C_PROCESS: ["p", "q", "r", "s"],
            S.C_REMOTE_IP: ["8.8.4.4", "8.8.4.4", "9.9.9.9", "7.7.7.7"],
            S.C_REMOTE_PORT: [443, 443, 80, 443],
            S.C_DOMAIN: [None, None, "evil.com", "fine.org"],
            S.C_SCORE: [0.9, 0.2, 0.5, 0.99],
        }
    )
    me = candidates.row(0, named=True)
    others = sharing_candidates(candidates, "8.8.4.4", "evil.com", me)
    assert others[S.C_DEVICE].to_list() == ["C", "B"]


def test_evidence_items_from_structs_json_and_nothing():
    structs = [{"name": "timing", "value": "0.9", "points": 0.35}, {"name": "x", "value": None}]
    items = evidence_items(structs)
    assert [(i.name, i.value, i.points) for i in items] == [
        ("timing", "0.9", 0.35),
        ("x", None, None),
    ]
    assert evidence_items('[{"name": "n", "value": 1, "points": -0.15}]')[0].points == -0.15
    assert evidence_items(None) == []


def test_geo_lookup_without_a_database_says_nothing(tmp_path):
    assert GeoLookup(tmp_path / "missing.mmdb").lookup("8.8.8.8") == {}


def test_describe_candidate_uses_the_period_estimate_as_the_sleep():
    data = _dataset([_event(s, "A", "p.exe", "8.8.4.4") for s in (0, 100, 200, 310)])
    pairs = build_pair_index(data.events, None)
    row = {
        S.C_DEVICE: "A",
        S.C_PROCESS: "p.exe",
        S.C_REMOTE_IP: "8.8.4.4",
        S.C_REMOTE_PORT: 443,
        "period_s": 101.0,
        S.C_EVIDENCE: [{"name": "timing", "value": "v", "points": 0.3}],
    }
    detail = describe_candidate(row, pairs, DestinationIndex(data), pl.DataFrame([row]))
    assert detail.deltas.tolist() == [100.0, 100.0, 110.0]
    assert detail.stats.median_s == 100.0
    assert detail.sleep_s == 101.0
    assert detail.evidence[0].points == 0.3
    assert detail.sharing.height == 0
    assert np.datetime64(T0.replace(tzinfo=None), "us") == detail.times[0]
