"""Allow-list matching: every match key, first-match-wins, expiry, hits, preview, suggestions."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from detectors.base.errors import InputError
from detectors.curate.allowlist import AllowList, suggest_entries


def candidates(**columns: list) -> pl.DataFrame:
    """A candidates frame; remote_port is Int32 as in the candidate schema."""
    frame = pl.DataFrame(columns)
    if "remote_port" in frame.columns:
        frame = frame.with_columns(pl.col("remote_port").cast(pl.Int32))
    return frame


def allowed_rows(entries: list[dict], frame: pl.DataFrame, today: date | None = None) -> list:
    """The allowed_by column after flagging ``frame`` with an in-memory list of ``entries``."""
    allow = AllowList("unused.toml")
    for fields in entries:
        allow.add({"reason": "test", **fields})
    return allow.flag(frame, today=today).get_column("allowed_by").to_list()


def test_allowlist_device_and_process_match_case_insensitively():
    frame = candidates(device=["WS-07", "ws-07", "ws-070"], process=["A.EXE", "a.exe", "a.exe"])
    assert allowed_rows([{"device": "ws-07"}], frame) == [1, 1, None]
    assert allowed_rows([{"process": "a.exe"}], frame) == [1, 1, 1]
    assert allowed_rows([{"process": "A.exe", "device": "WS-07"}], frame) == [1, 1, None]


def test_allowlist_cidr_v4_boundaries_and_ipv4_mapped_candidates():
    ips = ["198.51.100.0", "198.51.100.255", "198.51.101.0", "198.51.99.255", "::ffff:198.51.100.7"]
    frame = candidates(remote_ip=ips)
    # /24 covers .0 to .255 of 198.51.100; the mapped address is 198.51.100.7
    assert allowed_rows([{"remote_ip": "198.51.100.0/24"}], frame) == [1, 1, None, None, 1]
    assert allowed_rows([{"remote_ip": "198.51.100.7"}], frame) == [None] * 4 + [1]


def test_allowlist_cidr_v6_hides_candidate():
    ips = ["2001:db8::1", "2001:DB8:ffff:ffff::1", "2001:db9::1", "2001:db7:ffff::1", "10.0.0.1"]
    frame = candidates(remote_ip=ips)
    # 2001:db8::/32 = 2001:0db8:0000:0000:: .. 2001:0db8:ffff:ffff:ffff:...
    assert allowed_rows([{"remote_ip": "2001:db8::/32"}], frame) == [1, 1, None, None, None]


def test_allowlist_cidr_v6_prefix_longer_than_64_bits():
    # /120 leaves the last 8 bits free: 2001:db8::ff00 .. 2001:db8::ffff
    ips = ["2001:db8::ff00", "2001:db8::ffff", "2001:db8::feff", "2001:db8::1:0", "2001:db8::ff80"]
    frame = candidates(remote_ip=ips)
    assert allowed_rows([{"remote_ip": "2001:db8::ff00/120"}], frame) == [1, 1, None, None, 1]


def test_allowlist_junk_or_null_address_never_matches():
    frame = candidates(remote_ip=["not-an-ip", None, "0.0.0.0"])
    assert allowed_rows([{"remote_ip": "0.0.0.0/0"}], frame) == [None, None, 1]


def test_allowlist_port_matches_exactly():
    frame = candidates(remote_port=[443, 4433, None])
    assert allowed_rows([{"remote_port": 443}], frame) == [1, None, None]


def test_allowlist_domain_glob_matches_bare_domain_and_subdomains_only():
    frame = candidates(
        names=[
            ["microsoft.com"],
            ["x.example.org", "Login.Microsoft.COM."],
            ["evilmicrosoft.com"],
            ["microsoft.com.evil.net"],
            [],
            None,
        ],
        domain=[None, None, None, None, "microsoft.com", None],
    )
    assert allowed_rows([{"domain": "*.microsoft.com"}], frame) == [1, 1, None, None, 1, None]
    # exact: only the name itself, not its subdomains
    assert allowed_rows([{"domain": "microsoft.com"}], frame) == [1, None, None, None, 1, None]


def test_allowlist_domain_entry_without_name_columns_never_matches():
    frame = candidates(remote_ip=["1.2.3.4"])
    assert allowed_rows([{"domain": "*.example.com"}], frame) == [None]


def test_allowlist_detector_matches_merged_list_or_joined_column():
    merged = candidates(detectors=[["intervals", "periodicity"], ["buckets"], None])
    assert allowed_rows([{"detector": "periodicity"}], merged) == [1, None, None]
    joined = candidates(detector=["intervals,periodicity", "buckets", "periodicity2"])
    assert allowed_rows([{"detector": "periodicity"}], joined) == [1, None, None]


def test_allowlist_every_given_key_must_match():
    frame = candidates(process=["a.exe", "a.exe", "b.exe"], remote_port=[443, 80, 443])
    assert allowed_rows([{"process": "a.exe", "remote_port": 443}], frame) == [1, None, None]


def test_allowlist_first_active_entry_wins_and_disabled_ones_are_skipped():
    frame = candidates(process=["a.exe", "b.exe"], remote_port=[443, 443])
    allow = AllowList("unused.toml")
    allow.add({"process": "a.exe", "enabled": False, "reason": "off"})
    allow.add({"remote_port": 443, "reason": "port"})
    allow.add({"process": "a.exe", "reason": "later"})
    flagged = allow.flag(frame)
    assert flagged.get_column("allowed_by").to_list() == [2, 2]
    assert flagged.get_column("allowed").to_list() == [True, True]
    assert flagged.schema["allowed_by"] == pl.Int64
    assert flagged.columns == ["process", "remote_port", "allowed", "allowed_by"]


def test_allowlist_expired_entry_stops_applying_after_its_day():
    frame = candidates(process=["a.exe"])
    allow = AllowList("unused.toml")
    entry = allow.add({"process": "a.exe", "expires": "2027-02-23", "reason": "temporary"})
    assert allow.flag(frame, today=date(2027, 2, 23)).get_column("allowed").to_list() == [True]
    assert allow.flag(frame, today=date(2027, 2, 24)).get_column("allowed").to_list() == [False]
    assert entry.is_expired(date(2027, 2, 24)) and not entry.is_expired(date(2027, 2, 23))
    assert allow.expired(date(2027, 2, 24)) == [entry]


def test_allowlist_flag_replaces_stale_flag_columns_and_handles_empty_frames():
    allow = AllowList("unused.toml")
    allow.add({"process": "a.exe", "reason": "r"})
    frame = candidates(process=["a.exe"]).with_columns(
        pl.lit(False).alias("allowed"), pl.lit(None, pl.Int64).alias("allowed_by")
    )
    assert allow.flag(frame).row(0) == ("a.exe", True, 1)  # entry numbers count from 1
    empty = allow.flag(pl.DataFrame())
    assert empty.height == 0 and empty.schema == {"allowed": pl.Boolean, "allowed_by": pl.Int64}


def test_allowlist_hits_per_entry_counts_each_entry_on_its_own():
    frame = candidates(process=["a.exe", "a.exe", "b.exe"], remote_port=[443, 80, 443])
    allow = AllowList("unused.toml")
    allow.add({"process": "a.exe", "reason": "r"})  # rows 0, 1
    allow.add({"remote_port": 443, "reason": "r", "enabled": False})  # rows 0, 2 (disabled)
    allow.add({"process": "zzz.exe", "reason": "r"})  # none: a dead rule
    assert allow.hits_per_entry(frame) == {0: 2, 1: 2, 2: 0}


def test_allowlist_preview_counts_only_candidates_not_already_hidden():
    frame = candidates(process=["a.exe", "a.exe", "b.exe", "c.exe"], remote_port=[443, 80, 443, 22])
    allow = AllowList("unused.toml")
    allow.add({"process": "a.exe", "reason": "r"})
    # port 443 matches rows 0 and 2; row 0 is already hidden by entry 0
    assert allow.preview({"remote_port": "443"}, frame) == 1
    assert allow.preview({"remote_port": 22, "reason": ""}, frame) == 1
    with pytest.raises(InputError, match="no match key"):
        allow.preview({"reason": "only a reason"}, frame)


def test_allowlist_flag_is_vectorised_over_a_large_frame():
    # 100,000 candidates x 40 entries must not loop per row: the result is checked exactly.
    n = 100_000
    frame = candidates(
        process=[f"p{i % 50}.exe" for i in range(n)],
        remote_ip=[f"10.{i % 200}.0.1" for i in range(n)],
    )
    allow = AllowList("unused.toml")
    for i in range(20):
        allow.add({"remote_ip": f"10.{i}.0.0/16", "reason": "r"})
        allow.add({"process": f"p{i}.exe", "reason": "r"})
    flagged = allow.flag(frame)
    # row i is allowed when i % 200 < 20 (by IP, entries 0,2,..) or i % 50 < 20 (by process)
    expected = sum(1 for i in range(n) if i % 200 < 20 or i % 50 < 20)
    assert flagged.get_column("allowed").sum() == expected


def test_suggest_entries_for_a_v4_candidate_narrowest_first():
    row = {
        "device": "WS-07",
        "process": "rundll32.exe",
        "remote_ip": "::ffff:203.0.113.9",
        "remote_port": 443,
        "domain": None,
        "names": ["cdn.Example.co.uk"],
    }
    suggestions = suggest_entries(row)
    assert [fields for _, fields in suggestions] == [
        {
            "device": "WS-07",
            "process": "rundll32.exe",
            "remote_ip": "203.0.113.9",
            "remote_port": 443,
            "reason": "benign: this pair WS-07 / rundll32.exe -> 203.0.113.9:443",
        },
        {"remote_ip": "203.0.113.9", "reason": "benign: destination 203.0.113.9"},
        {"remote_ip": "203.0.113.0/24", "reason": "benign: network 203.0.113.0/24"},
        {"domain": "*.example.co.uk", "reason": "benign: domain *.example.co.uk"},
        {"process": "rundll32.exe", "reason": "benign: process rundll32.exe to anywhere"},
        {"device": "WS-07", "reason": "benign: everything from device WS-07"},
    ]
    allow = AllowList("unused.toml")
    for _, fields in suggestions:  # every suggestion is a valid entry
        allow.add(fields)
    assert len(allow.entries) == 6


def test_suggest_entries_for_v6_uses_a_64_and_escapes_labels():
    row = {"device": None, "process": "evil\x1b[31m.exe", "remote_ip": "2001:db8:1:2:3::9"}
    labels = [label for label, _ in suggest_entries(row)]
    assert labels == [
        "destination 2001:db8:1:2:3::9",
        "network 2001:db8:1:2::/64",
        "process evil\\x1b[31m.exe to anywhere",
    ]
