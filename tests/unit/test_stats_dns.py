"""DNS beacon statistics: entropy, subdomains, record types and cadence."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from detectors.stats.dns import (
    CADENCE_P,
    DISTINCT_SHARE,
    ENTROPY_BITS,
    QUERIES,
    RARE_TYPE_SHARE,
    SLEEP,
    dns_pair_stats,
    shannon_entropy,
    subdomain,
)

START = datetime(2026, 11, 18, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("", 0.0),
        ("aaaa", 0.0),
        ("ab", 1.0),
        ("abcd", 2.0),
        ("aab", -(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3)),  # 0.9183
        ("0123456789abcdef", 4.0),
    ],
)
def test_shannon_entropy_bits_per_character(text, bits):
    assert shannon_entropy(pl.Series([text])).item() == pytest.approx(bits)


def test_shannon_entropy_keeps_row_order_and_nulls():
    got = shannon_entropy(pl.Series("x", ["abcd", None, "ab"])).to_list()
    assert got == pytest.approx([2.0, 0.0, 1.0])


def test_subdomain_strips_the_registered_domain():
    frame = pl.DataFrame(
        {
            "q": ["A1b2.Evil.example.", "evil.example", "www.other.example", "x.y.evil.example"],
            "d": ["evil.example", "evil.example", "evil.example", "evil.example"],
        }
    )
    got = frame.select(subdomain(pl.col("q"), pl.col("d"))).to_series().to_list()
    assert got == ["a1b2", "", "", "x.y"]


def _frame(rows):
    return pl.DataFrame(rows, schema=["dev", "dom", "q", "t", "ts"], orient="row")


def test_dns_pair_stats_worked_numbers():
    # Device A: 4 queries to evil.example, 3 distinct names, 2 TXT, every 60 s.
    # Subdomains "ab", "abcd", "ab", "" -> entropies 1, 2, 1, 0 -> mean 1.0.
    rows = [
        ("A", "evil.example", "ab.evil.example", "TXT", START),
        ("A", "evil.example", "abcd.evil.example", "TXT", START + timedelta(seconds=60)),
        ("A", "evil.example", "ab.evil.example", "A", START + timedelta(seconds=120)),
        ("A", "evil.example", "evil.example", "A", START + timedelta(seconds=180)),
        ("B", "good.example", "www.good.example", "A", START),
        ("B", None, "localhost", "A", START),
    ]
    out = dns_pair_stats(_frame(rows), device="dev", domain="dom", query="q", qtype="t", time="ts")
    assert out.height == 2
    a = out.row(0, named=True)
    assert (a["dev"], a["dom"], a[QUERIES]) == ("A", "evil.example", 4)
    assert a[DISTINCT_SHARE] == 0.75
    assert a[RARE_TYPE_SHARE] == 0.5
    assert a[ENTROPY_BITS] == 1.0
    b = out.row(1, named=True)
    assert b[QUERIES] == 1 and b[DISTINCT_SHARE] == 1.0 and b[CADENCE_P] == 1.0


def test_dns_tunnel_beacon_has_cadence_and_unique_random_names():
    rng = np.random.default_rng(5)
    t = START
    rows = []
    for _ in range(60):
        t += timedelta(seconds=float(rng.uniform(45, 60)))
        label = "".join(rng.choice(list("0123456789abcdef"), 24))
        rows.append(("ws-1", "evil.example", f"{label}.evil.example", "TXT", t))
    out = dns_pair_stats(_frame(rows), device="dev", domain="dom", query="q", qtype="t", time="ts")
    r = out.row(0, named=True)
    assert r[DISTINCT_SHARE] == 1.0
    assert r[RARE_TYPE_SHARE] == 1.0
    # 24 hex characters: 4 bits less the plug-in estimator's bias, about
    # (16 - 1) / (2 x 24 x ln 2) = 0.45 bits (Miller 1955).
    assert 3.3 < r[ENTROPY_BITS] < 4.0
    assert r[SLEEP] == pytest.approx(52.5, rel=0.05)
    assert r[CADENCE_P] < 1e-10
