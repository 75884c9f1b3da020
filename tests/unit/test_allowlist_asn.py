"""Allow-list entries by network owner: ``asn`` and ``org`` against a local mmdb's columns."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.curate.allowlist import AllowList, parse_entry, read_asn
from detectors.rank.enrichment import GeoLookup, with_asn


def _candidates(with_owner: bool = True) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            S.C_DEVICE: ["a", "b", "c", "d"],
            S.C_PROCESS: ["x.exe", "y.exe", "x.exe", "z.exe"],
            S.C_REMOTE_IP: ["104.16.1.1", "104.16.2.2", "13.107.4.50", "203.0.113.9"],
            S.C_REMOTE_PORT: [443, 443, 443, 8443],
        }
    )
    if with_owner:
        frame = frame.with_columns(
            pl.Series(S.C_ASN, [13335, 13335, 8075, None], dtype=pl.Int64),
            pl.Series(S.C_ORG, ["CLOUDFLARENET", "CLOUDFLARENET", "MICROSOFT-CORP", None]),
        )
    return frame


@pytest.mark.parametrize("value", [13335, "13335", "AS13335", "as13335", " AS13335 "])
def test_an_as_number_reads_from_a_number_or_as_text(value):
    assert read_asn(value) == 13335


@pytest.mark.parametrize("value", ["ASX", "", True, 0, 2**32, "13335.5"])
def test_a_bad_as_number_is_an_error_naming_the_key(value):
    with pytest.raises(InputError) as error:
        parse_entry({"asn": value, "reason": "r"}, 0)
    assert error.value.field == "asn"


def _hidden(entries: list[dict], candidates: pl.DataFrame, tmp_path: Path) -> list[str]:
    allow = AllowList(tmp_path / "allow.toml")
    for values in entries:
        allow.add(values)
    flagged = allow.flag(candidates)
    return flagged.filter(pl.col(S.C_ALLOWED))[S.C_DEVICE].to_list()


def test_asn_hides_every_candidate_in_that_network_and_nothing_else(tmp_path):
    # a and b are in AS13335; c is AS8075; d has no owner (not in the mmdb).
    assert _hidden([{"asn": "AS13335", "reason": "CDN"}], _candidates(), tmp_path) == ["a", "b"]


def test_org_is_the_whole_name_case_insensitive(tmp_path):
    frame = _candidates()
    assert _hidden([{"org": "microsoft-corp", "reason": "vendor"}], frame, tmp_path) == ["c"]
    assert _hidden([{"org": "MICROSOFT", "reason": "vendor"}], frame, tmp_path) == []


def test_asn_combines_with_other_keys(tmp_path):
    entry = {"asn": 13335, "process": "x.exe", "reason": "x's CDN"}
    assert _hidden([entry], _candidates(), tmp_path) == ["a"]


def test_without_owner_columns_asn_and_org_match_nothing(tmp_path):
    entries = [{"asn": 13335, "reason": "CDN"}, {"org": "CLOUDFLARENET", "reason": "CDN"}]
    assert _hidden(entries, _candidates(with_owner=False), tmp_path) == []


def test_the_entry_is_written_with_the_number(tmp_path):
    allow = AllowList(tmp_path / "allow.toml")
    allow.add({"asn": "AS13335", "reason": "CDN"})
    allow.save()
    text = (tmp_path / "allow.toml").read_text()
    assert "asn = 13335\n" in text
    assert allow.entries[0].describe() == "#1 asn=13335: CDN"


class _FakeReader:
    """What maxminddb's reader returns for a GeoLite2-ASN record."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.records = {
            "104.16.1.1": {
                "autonomous_system_number": 13335,
                "autonomous_system_organization": "CF",
            },
            "13.107.4.50": {
                "autonomous_system_number": 8075,
                "autonomous_system_organization": "MS",
            },
        }

    def get(self, ip: str):
        self.calls.append(ip)
        return self.records.get(ip)


def test_with_asn_joins_one_lookup_per_distinct_address():
    geo = GeoLookup(Path("/nonexistent.mmdb"))
    assert not geo.available
    frame = _candidates(with_owner=False)
    assert with_asn(frame, geo).columns == frame.columns  # no mmdb: no columns at all
    reader = _FakeReader()
    geo._reader = reader
    doubled = pl.concat([frame, frame])
    owned = with_asn(doubled, geo)
    assert sorted(reader.calls) == sorted(set(frame[S.C_REMOTE_IP]))  # 4 lookups, not 8
    assert owned[S.C_DEVICE].to_list() == doubled[S.C_DEVICE].to_list()  # order kept
    assert owned[S.C_ASN].to_list() == [13335, None, 8075, None] * 2
    assert owned[S.C_ORG].to_list() == ["CF", None, "MS", None] * 2


def test_detect_allowlist_matches_network_owner_with_a_local_mmdb(tmp_path, monkeypatch):
    """``detect --allowlist`` adds the owner columns as the TUI does, so an ``org`` entry
    hides the same candidates headless; without an mmdb it hides nothing."""
    from detectors.run import headless

    allow = tmp_path / "allow.toml"
    allow.write_text('[[allow]]\norg = "cf"\nreason = "vendor CDN"\n')
    frame = _candidates(with_owner=False)
    kept = headless.apply_allowlist(frame, allow, show_allowed=False)
    assert kept[S.C_DEVICE].to_list() == ["a", "b", "c", "d"]  # no mmdb: nothing hidden
    monkeypatch.setattr(GeoLookup, "__init__", lambda self, path: setattr(self, "_reader", None))
    monkeypatch.setattr(GeoLookup, "available", property(lambda self: True))
    reader = _FakeReader()
    monkeypatch.setattr(
        GeoLookup, "asn_frame", lambda self, ips: _owner_frame(reader, ips), raising=True
    )
    kept = headless.apply_allowlist(frame, allow, False, mmdb=tmp_path / "asn.mmdb")
    assert kept[S.C_DEVICE].to_list() == ["b", "c", "d"]  # 104.16.1.1 is CF's


def _owner_frame(reader: _FakeReader, ips: list[str]) -> pl.DataFrame:
    rows = [reader.get(ip) or {} for ip in ips]
    return pl.DataFrame(
        {
            S.C_REMOTE_IP: ips,
            S.C_ASN: [r.get("autonomous_system_number") for r in rows],
            S.C_ORG: [r.get("autonomous_system_organization") for r in rows],
        },
        schema={S.C_REMOTE_IP: pl.String, S.C_ASN: pl.Int64, S.C_ORG: pl.String},
    )
