"""The DNS query table (Zeek dns.log) and the dns_beacons hunt, with worked numbers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import permutations
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.domains import registered_domain, registered_domains_of_hosts
from detectors.base.progress import NULL_PROGRESS
from detectors.hunts import dns_beacons as H
from detectors.hunts.registry import all_detectors
from detectors.load import load_paths
from detectors.pairs.context import PairContext
from detectors.rank.scoring import merge_candidates

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc
T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # epoch 1700000000


def test_zeek_dns_log_keeps_every_query_as_a_row() -> None:
    ds = load_paths([DATA / "dns.log"], require_events=False, cache=False)
    assert ds.dns.schema == pl.Schema(S.DNS_SCHEMA)
    assert ds.dns.rows() == [
        (T0, "10.0.0.5", "evil.example", "A", "10.0.0.53"),
        (T0 + timedelta(seconds=1), "10.0.0.5", "nothing.example", "A", "10.0.0.53"),
        (T0 + timedelta(seconds=2), "10.0.0.5", "empty.example", "A", "10.0.0.53"),
        (T0 + timedelta(seconds=3), "10.0.0.5", "v6.example", "AAAA", "10.0.0.53"),
    ]
    assert PairContext.of(ds).dns.height == 4


def test_dns_rows_with_an_unreadable_time_are_counted_not_fatal(tmp_path: Path) -> None:
    text = (DATA / "dns.log").read_text().replace("1700000001.0\t", "yesterday\t")
    (tmp_path / "dns.log").write_text(text)
    ds = load_paths([tmp_path / "dns.log"], require_events=False, cache=False)
    assert ds.dns.height == 3
    assert any("1 dns.log rows without a readable ts" in w for w in ds.warnings)


def test_registered_domains_of_hosts_agrees_with_the_one_name_lookup() -> None:
    names = ["A1b2.Evil.example.", "x.y.evil.co.uk", "co.uk", "www.google.com",
             "1.2.0.10.in-addr.arpa", "a.b.c.d.e.f.com", None]  # fmt: skip
    got = registered_domains_of_hosts(pl.Series(names)).to_list()
    assert got == ["evil.example", "evil.co.uk", None, "google.com", "10.in-addr.arpa",
                   "f.com", None]  # fmt: skip
    assert got == [registered_domain(n) for n in names]


def _queries(device: str, names: list[str], qtype: str, every_s: float) -> list[dict]:
    return [
        {S.DNS_TIME: T0 + timedelta(seconds=i * every_s), S.DNS_DEVICE: device,
         S.DNS_QUERY: name, S.DNS_QTYPE: qtype, S.DNS_RESOLVER: "10.0.0.53"}
        for i, name in enumerate(names)
    ]  # fmt: skip


def _context() -> PairContext:
    # Ten distinct permutations of "abcd": every label has entropy exactly 2 bits.
    labels = ["".join(p) for p in permutations("abcd")][:10]
    rows = _queries("10.0.0.5", [f"{x}.evil.example" for x in labels], "TXT", 300)
    # An updater: one name again and again (distinct share 0.1).
    rows += _queries("10.0.0.6", ["www.update.example"] * 10, "A", 300)
    # Unique names of a domain four devices ask for (a CDN, an antivirus lookup).
    for d in range(4):
        rows += _queries(f"10.0.1.{d}", [f"{x}{d}.cdn.example" for x in labels], "A", 300)
    # Reverse lookups are never hunted.
    rows += _queries("10.0.0.7", [f"{i}.2.0.10.in-addr.arpa" for i in range(10)], "PTR", 300)
    return PairContext(dns=pl.DataFrame(rows, schema=S.DNS_SCHEMA))


def test_the_hunt_finds_unique_subdomains_of_a_rare_domain_at_a_steady_cadence() -> None:
    hits = H.run(_context(), H.DnsBeaconParams(), NULL_PROGRESS)
    assert hits.height == 1
    hit = hits.row(0, named=True)
    assert (hit[S.C_DEVICE], hit[S.C_REMOTE_IP], hit[S.C_REMOTE_PORT]) == (
        "10.0.0.5", "evil.example", 53)  # fmt: skip
    assert hit[S.C_PROCESS] is None
    assert hit[H.RESOLVER] == "10.0.0.53"
    assert hit[H.D.QUERIES] == 10
    assert hit[H.D.DISTINCT_SHARE] == 1.0
    assert hit[H.D.RARE_TYPE_SHARE] == 1.0
    assert hit[H.D.ENTROPY_BITS] == pytest.approx(2.0)
    assert hit[S.C_PERIOD] == pytest.approx(300.0)
    assert hit[H.DOMAIN_DEVICES] == 1
    assert hit[S.C_FIRST_SEEN] == T0
    assert hit[S.C_LAST_SEEN] == T0 + timedelta(seconds=2700)
    # score: cadence 0.5 x min(1, -log10(p) / 10) + distinct 0.2 + TXT 0.15 + 0.15 x 2/4
    significance = min(1.0, -__import__("math").log10(hit[H.D.CADENCE_P]) / 10)
    assert hit[S.C_SCORE] == pytest.approx(0.5 * significance + 0.2 + 0.15 + 0.075)


def test_thresholds_are_the_parameters() -> None:
    ctx = _context()
    wider = H.run(ctx, H.DnsBeaconParams(max_domain_devices=4), NULL_PROGRESS)
    assert sorted(wider.get_column(S.C_REMOTE_IP).unique().to_list()) == [
        "cdn.example", "evil.example"]  # fmt: skip
    repeats = H.run(ctx, H.DnsBeaconParams(min_distinct_share=0.1), NULL_PROGRESS)
    assert "update.example" in repeats.get_column(S.C_REMOTE_IP).to_list()
    own = H.run(ctx, H.DnsBeaconParams(internal_suffixes=("evil.example",)), NULL_PROGRESS)
    assert own.height == 0
    assert H.run(ctx, H.DnsBeaconParams(min_queries=11), NULL_PROGRESS).height == 0


def test_no_dns_log_is_no_hit_and_no_error() -> None:
    assert H.run(PairContext(), H.DnsBeaconParams(), NULL_PROGRESS).height == 0


def test_on_partitions_it_runs_once_on_the_whole_dns_table() -> None:
    spec = all_detectors()[H.NAME]
    assert spec.stages is not None
    ctx = _context()
    assert spec.stages.partial(ctx, H.DnsBeaconParams(), NULL_PROGRESS) is None
    combined = spec.stages.combine([None, None], ctx, H.DnsBeaconParams(), NULL_PROGRESS)
    assert combined.equals(H.run(ctx, H.DnsBeaconParams(), NULL_PROGRESS))


def test_merged_list_judges_a_dns_beacon_by_its_domain() -> None:
    ctx = _context()
    hits = H.run(ctx, H.DnsBeaconParams(), NULL_PROGRESS)
    merged = merge_candidates({H.NAME: hits}, ctx)
    row = merged.row(0, named=True)
    points = {e["name"]: e["points"] for e in row[S.C_EVIDENCE]}
    # The domain is its name (no "no name"); TXT share 1.0 is the tunnel shape. With
    # no connection events there are no hosts to judge prevalence by.
    assert row[S.C_DOMAIN] == "evil.example"
    assert row["names"] == ["evil.example"]
    assert "no name" not in points
    assert points["DNS tunnel"] == pytest.approx(0.10)
    assert points["timing"] == pytest.approx(0.40 * (0.5 + 0.5 * hit_score(hits)))


def hit_score(hits: pl.DataFrame) -> float:
    return float(hits.item(0, S.C_SCORE))
