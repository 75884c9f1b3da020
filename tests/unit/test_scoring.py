"""The merged, scored candidate list and its evidence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.errors import InputError
from detectors.pairs.context import PairContext
from detectors.rank.scoring import (
    C_DEVICE_ID,
    C_NAMES,
    C_PREVALENCE,
    MERGED_SCHEMA,
    ScoreWeights,
    explain,
    merge_candidates,
    weights_from_config,
)

START = datetime(2026, 11, 18, tzinfo=timezone.utc)
C2 = "185.141.27.66"
GOOGLE = "142.250.1.7"
FABRIKAM = "20.71.14.200"
SPOOL_C2 = "185.117.88.3"
SCANNED = "45.1.1.1"


def _event(
    hours, device, process, ip, port, action=S.ACTION_SUCCESS, url=None, company=None, **extra
):
    row = {
        S.TIMESTAMP: START + timedelta(hours=hours),
        S.DEVICE_NAME: device,
        S.DEVICE_ID: f"id-{device}",
        S.PROCESS: process,
        S.ACTION: action,
        S.REMOTE_IP: ip,
        S.REMOTE_PORT: port,
        S.REMOTE_URL: url,
        S.COMPANY: company,
    }
    row.update(extra)
    return row


def _defender_dataset() -> PairContext:
    rows = []
    for i in range(10):  # ten hosts browse the same Google address over two days
        rows += [_event(h, f"ws-{i}", "chrome.exe", GOOGLE, 443, url="www.google.com",
                        company="Google LLC") for h in (0, 24, 47)]  # fmt: skip
    # the implant: only on the second day (after a quarter of the span: new)
    rows += [_event(30 + h, "ws-0", "rundll32.exe", C2, 443, url="static.evil-cdn.example",
                    company="Microsoft Corporation") for h in range(5)]  # fmt: skip
    rows += [_event(h, "ws-1", "fbkagent.exe", FABRIKAM, 443, url="vault.fabrikam.com",
                    company="Fabrikam, Inc.") for h in range(0, 48, 4)]  # fmt: skip
    rows += [_event(h, "ws-3", "spoolsv.exe", SPOOL_C2, 443, S.ACTION_SUCCESS_AGG,
                    company="Microsoft Corporation") for h in range(48)]  # fmt: skip
    rows += [_event(40, "ws-2", "x.exe", SCANNED, port, S.ACTION_FAILED, company="X")
             for port in range(1, 13)]  # fmt: skip
    return PairContext(events=S.conform(pl.DataFrame(rows), "mde.csv").collect())


def _hits(rows) -> pl.DataFrame:
    base = {k: v for k, v in S.CANDIDATE_BASE_SCHEMA.items()}
    frame = pl.DataFrame(
        [
            {
                S.C_DETECTOR: r[0],
                S.C_DEVICE: r[1],
                S.C_PROCESS: r[2],
                S.C_REMOTE_IP: r[3],
                S.C_REMOTE_PORT: r[4],
                S.C_SCORE: r[5],
                S.C_CONNECTIONS: 10,
                S.C_FIRST_SEEN: START,
                S.C_LAST_SEEN: START + timedelta(hours=47),
            }
            for r in rows
        ],
        schema=base,
    )
    return frame


def _per_detector() -> dict[str, pl.DataFrame]:
    return {
        "periodicity": _hits(
            [
                ("periodicity", "ws-0", "rundll32.exe", C2, 443, 0.8),
                ("periodicity", "ws-1", "fbkagent.exe", FABRIKAM, 443, 1.0),
                ("periodicity", "ws-2", "x.exe", SCANNED, 5, 0.9),
            ]
        ),
        "intervals": _hits([("intervals", "ws-0", "rundll32.exe", C2, 443, 0.6)]),
        "aggregated": _hits(
            [
                ("aggregated", "ws-0", "rundll32.exe", C2, None, 0.2),
                ("aggregated", "ws-3", "spoolsv.exe", SPOOL_C2, None, 0.5),
            ]
        ),
    }


@pytest.fixture(scope="module")
def merged() -> pl.DataFrame:
    return merge_candidates(_per_detector(), _defender_dataset())


def _points(row: dict) -> dict[str, float]:
    return {e["name"]: e["points"] for e in row[S.C_EVIDENCE]}


def _row(merged: pl.DataFrame, ip: str) -> dict:
    return merged.filter(pl.col(S.C_REMOTE_IP) == ip).row(0, named=True)


def test_merged_list_has_the_documented_columns_in_order(merged):
    assert merged.schema == pl.Schema(MERGED_SCHEMA)


def test_one_candidate_per_key_and_portless_hits_join_port_candidates(merged):
    # The aggregated C2 hit (no port) joins the 443 candidate; spoolsv stands alone.
    assert merged.height == 4
    c2 = _row(merged, C2)
    assert c2[S.C_DETECTORS] == ["aggregated", "intervals", "periodicity"]
    assert c2[S.C_REMOTE_PORT] == 443
    assert _row(merged, SPOOL_C2)[S.C_REMOTE_PORT] is None


def test_beacon_score_is_the_sum_of_its_evidence(merged):
    c2 = _row(merged, C2)
    assert _points(c2) == pytest.approx(
        {
            "timing": 0.40 * (0.5 + 0.5 * 0.8),  # best timing score 0.8 -> strength 0.9
            "agreement": 0.06,  # two further timing detectors x 0.03
            "rare destination IP": 0.15,  # 1 device <= max(2, 2 % of 10)
            "rare domain": 0.05,
            "LOLBin": 0.15,
            "new destination": 0.05,  # first seen at 30 h of a 47 h span
        }
    )
    assert c2[S.C_SCORE] == pytest.approx(0.82)
    assert c2[S.C_DOMAIN] == "evil-cdn.example"
    assert c2[C_NAMES] == ["static.evil-cdn.example"]
    assert c2[C_PREVALENCE] == 1
    assert c2[C_DEVICE_ID] == "id-ws-0"


def test_vendor_phoning_home_is_discounted(merged):
    row = _row(merged, FABRIKAM)
    assert _points(row) == pytest.approx(
        {
            "timing": 0.40,
            "rare destination IP": 0.15,
            "rare domain": 0.05,
            "vendor's own domain": -0.25,  # fabrikam.com for "Fabrikam, Inc."
        }
    )
    assert row[S.C_SCORE] == pytest.approx(0.35)


def test_system_process_to_nameless_rare_address(merged):
    row = _row(merged, SPOOL_C2)
    assert _points(row) == pytest.approx(
        {
            "timing": 0.40 * (0.5 + 0.5 * 0.5),
            "rare destination IP": 0.15,
            "no name": 0.10,
            "system process to rare destination": 0.10,
        }
    )


def test_scanning_is_penalised(merged):
    row = _row(merged, SCANNED)
    assert _points(row) == pytest.approx(
        {
            "timing": 0.40 * 0.95,
            "rare destination IP": 0.15,
            "no name": 0.10,
            "unusual port": 0.05,  # port 5 is used by one device
            "new destination": 0.05,  # first seen at 40 h
            "scanning": -0.30,  # 12 ports, all failed, no bytes
            # its own pair (port 5) is one failed connection: capped at 0.30, from
            # 0.38 + 0.15 + 0.10 + 0.05 + 0.05 - 0.30 = 0.43
            "few failed connections": -0.13,
        }
    )
    assert row[S.C_SCORE] == pytest.approx(0.30)


def test_ranking_is_by_score(merged):
    assert merged.get_column(S.C_REMOTE_IP).to_list() == [C2, SPOOL_C2, FABRIKAM, SCANNED]


def test_explain_lists_every_point(merged):
    text = explain(merged.row(0, named=True))
    assert text.splitlines()[0] == "ws-0  rundll32.exe  ->  185.141.27.66:443  (evil-cdn.example)"
    assert "score 0.82" in text
    assert "+0.15  LOLBin" in text
    assert "detectors: aggregated, intervals, periodicity" in text


def test_weights_come_from_the_scoring_table():
    assert weights_from_config(Config(scoring={"w_lolbin": 0.3})).w_lolbin == 0.3
    with pytest.raises(InputError, match="unknown parameter"):
        weights_from_config(Config(scoring={"w_nope": 1}))


def test_zero_weight_removes_the_evidence():
    merged = merge_candidates(
        _per_detector(), _defender_dataset(), ScoreWeights(w_lolbin=0.0, w_agreement=0.0)
    )
    c2 = _row(merged, C2)
    assert _points(c2)["LOLBin"] == 0.0
    assert c2[S.C_SCORE] == pytest.approx(0.82 - 0.15 - 0.06)


def test_no_hits_gives_an_empty_list_with_the_schema():
    out = merge_candidates({}, PairContext())
    assert out.height == 0
    assert out.schema == pl.Schema(MERGED_SCHEMA)


def test_zeek_candidates_rank_without_process_names():
    rows, app = [], []
    for i in range(5):  # five hosts browse with the same user agent
        for h in range(3):
            uid = f"b{i}{h}"
            rows.append(_event(h, f"10.0.2.{i}", None, GOOGLE, 80, "SF", uid=uid,
                               bytes_out=500 + 100 * h, bytes_in=9000))  # fmt: skip
            app.append({S.APP_UID: uid, S.APP_KIND: "http", S.APP_USER_AGENT: "Chrome",
                        S.APP_HOST: "www.google.com", S.APP_METHOD: "GET"})  # fmt: skip
    for h in range(6):  # the implant: odd agent, no Host header, steady bytes
        uid = f"c{h}"
        rows.append(_event(h, "10.0.2.9", None, C2, 80, "SF", uid=uid, bytes_out=230, bytes_in=180))
        app.append({S.APP_UID: uid, S.APP_KIND: "http", S.APP_USER_AGENT: "EvilUA",
                    S.APP_HOST: None, S.APP_METHOD: "POST"})  # fmt: skip
    dataset = PairContext(
        events=S.conform(pl.DataFrame(rows), "conn.log").collect(),
        app=pl.DataFrame(app, schema=S.APP_SCHEMA),
    )
    hits = {
        "periodicity": _hits(
            [
                ("periodicity", "10.0.2.9", None, C2, 80, 1.0),
                ("periodicity", "10.0.2.0", None, GOOGLE, 80, 1.0),
            ]
        )
    }
    merged = merge_candidates(hits, dataset)
    implant = merged.row(0, named=True)
    assert implant[S.C_DEVICE] == "10.0.2.9"
    assert implant[S.C_PROCESS] is None
    # 6 hosts: "rare" is at most max(2, 2 % of 6) = 2 devices, "common" at least 3.
    assert _points(implant) == pytest.approx(
        {
            "timing": 0.40,
            "rare destination IP": 0.15,
            "no name": 0.10,
            "steady bytes": 0.05,  # every request 230 bytes: CoV 0
            "rare user agent": 0.10,  # "EvilUA" on one host
            "no Host header": 0.10,
        }
    )
    assert implant[S.C_SCORE] == pytest.approx(0.90)
    browsing = merged.row(1, named=True)
    # "Chrome" on five hosts is not rare; bytes 500/600/700 trim to one value: no CoV
    assert _points(browsing) == pytest.approx(
        {"timing": 0.40, "common destination IP": -0.15, "common domain": -0.10}
    )


DEAD_C2 = "91.215.85.14"
TYPO = "93.184.216.34"


def _fleet_dataset() -> PairContext:
    rows = []
    for i in range(10):  # ten hosts, all reaching Google
        rows += [_event(h, f"ws-{i}", "chrome.exe", GOOGLE, 443, url="www.google.com")
                 for h in range(0, 48, 6)]  # fmt: skip
    for i in range(3):  # one implant on three devices, one C2 nobody else reaches
        rows += [_event(h, f"ws-{i}", "rundll32.exe", C2, 443) for h in range(0, 48, 2)]
    # a dead C2: 20 failed connections; a typo: two failed connections
    rows += [_event(h, "ws-5", "svc.exe", DEAD_C2, 8443, S.ACTION_FAILED) for h in range(20)]
    rows += [_event(h, "ws-6", "app.exe", TYPO, 443, S.ACTION_FAILED) for h in (1, 2)]
    return PairContext(events=S.conform(pl.DataFrame(rows), "mde.csv").collect())


@pytest.fixture(scope="module")
def fleet() -> pl.DataFrame:
    hits = [
        ("periodicity", f"ws-{i}", "rundll32.exe", C2, 443, t)
        for i, t in enumerate((0.9, 0.2, 0.9))
    ]
    hits += [
        ("periodicity", f"ws-{i}", "chrome.exe", GOOGLE, 443, t)
        for i, t in enumerate((0.9, 0.2, 0.5))
    ]
    hits += [("periodicity", "ws-5", "svc.exe", DEAD_C2, 8443, 0.9)]
    hits += [("periodicity", "ws-6", "app.exe", TYPO, 443, 0.9)]
    return merge_candidates({"periodicity": _hits(hits)}, _fleet_dataset())


def test_campaign_lifts_every_member_to_the_groups_best(fleet):
    # C2 is reached by 3 of 10 devices (over the rare floor of 2; not common, >= 5), all
    # three timing candidates: nobody else goes there, so it counts as rare (+0.15,
    # campaign_rare). ws-0 and ws-2: timing 0.40 x 0.95 + rare IP 0.15 + no name 0.10 +
    # LOLBin 0.15 = 0.78. ws-1's timing score is 0.2: 0.40 x 0.6 + 0.40 = 0.64, lifted
    # by 0.14.
    def member(device):
        return fleet.filter((pl.col(S.C_REMOTE_IP) == C2) & (pl.col(S.C_DEVICE) == device)).row(
            0, named=True
        )

    lifted = member("ws-1")
    assert _points(lifted)["campaign"] == pytest.approx(0.14)
    assert _points(lifted)["rare destination IP"] == pytest.approx(0.15)
    assert lifted[S.C_SCORE] == pytest.approx(0.78)
    entry = next(e for e in lifted[S.C_EVIDENCE] if e["name"] == "campaign")
    assert entry["value"] == f"3 devices beacon to {C2}; the group's best scores 0.78"
    for device in ("ws-0", "ws-2"):
        assert "campaign" not in _points(member(device))
        assert member(device)[S.C_SCORE] == pytest.approx(0.78)


def test_campaign_rare_can_be_turned_off(fleet):
    # Without campaign_rare, 3 of 10 devices is not rare: 0.63 for the best member.
    hits = [
        ("periodicity", f"ws-{i}", "rundll32.exe", C2, 443, t)
        for i, t in enumerate((0.9, 0.2, 0.9))
    ]
    off = merge_candidates(
        {"periodicity": _hits(hits)}, _fleet_dataset(), ScoreWeights(campaign_rare=False)
    )
    assert off.get_column(S.C_SCORE).to_list() == pytest.approx([0.63, 0.63, 0.63])


def test_campaign_can_be_turned_off():
    hits = [
        ("periodicity", f"ws-{i}", "rundll32.exe", C2, 443, t) for i, t in enumerate((0.9, 0.2))
    ]
    off = merge_candidates(
        {"periodicity": _hits(hits)}, _fleet_dataset(), ScoreWeights(campaign_max_devices=0)
    )
    # 0 also turns campaign_rare off: ws-1 keeps its own 0.49.
    assert off.filter(pl.col(S.C_DEVICE) == "ws-1").item(0, S.C_SCORE) == pytest.approx(0.49)


def test_campaign_never_lifts_a_destination_common_across_the_fleet(fleet):
    # Three candidates with different timing scores, but Google is reached by all 10.
    rows = fleet.filter(pl.col(S.C_REMOTE_IP) == GOOGLE)
    assert rows.height == 3
    for row in rows.iter_rows(named=True):
        assert "campaign" not in _points(row)
        assert "common destination IP" in _points(row)


def test_dead_c2_with_many_failures_is_hunted_like_any_beacon(fleet):
    row = _row(fleet, DEAD_C2)
    assert "few failed connections" not in _points(row)
    assert row[S.C_SCORE] > 0.30


def test_a_handful_of_failed_connections_is_never_a_high_scoring_candidate(fleet):
    row = _row(fleet, TYPO)
    points = _points(row)
    assert row[S.C_SCORE] == pytest.approx(0.30)
    # timing 0.38 + rare IP 0.15 + no name 0.10 = 0.63, cut back to 0.30
    assert points["few failed connections"] == pytest.approx(-0.33)
