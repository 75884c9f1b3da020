"""``C``: the highlighted candidate's campaign group, and the detail line that offers it.

The synthetic day has two devices beaconing to 45.77.10.20 (ws-beacon on 443, the
hostile device on 8443) and one browsing 151.101.1.69: the group is the two beacons.
"""

from __future__ import annotations

import polars as pl
import tui_fixtures as syn
from tui_fixtures import make_app, settle

from detectors.base import schema as S
from detectors.rank.enrichment import campaign_devices, same_destination
from tui.view import ViewSpec, apply_view
from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.candidate_table import CandidateTable

SIZE = (110, 32)


async def _select(app, pilot, device: str) -> None:
    table = app.main_screen.query_one(CandidateTable)
    devices = app.main_screen.view[S.C_DEVICE].to_list()
    table.cursor_row = devices.index(device)
    await settle(
        app,
        pilot,
        until=lambda: (
            app.main_screen.detail is not None and app.main_screen.detail.row[S.C_DEVICE] == device
        ),
    )


async def test_c_shows_the_campaign_group_and_again_shows_all(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.main_screen
        assert screen.view.height == 3
        await _select(app, pilot, "ws-beacon")
        facts = screen.query_one(CandidateFacts).plain
        assert "campaign: 2 devices beacon to this destination (press C to show them)" in facts
        await pilot.press("C")
        await settle(app, pilot)
        assert screen.view.height == 2
        assert sorted(screen.view[S.C_DEVICE].to_list()) == sorted(
            ["ws-beacon", syn.HOSTILE_DEVICE]
        )
        assert set(screen.view[S.C_REMOTE_IP].to_list()) == {syn.BEACON_IP}
        assert "campaign→" in screen.spec.describe()
        await pilot.press("C")
        await settle(app, pilot)
        assert screen.view.height == 3
        assert screen.spec.destination is None


async def test_a_lone_destination_has_no_campaign_line_and_a_group_of_one(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await _select(app, pilot, "ws-human")
        assert "campaign:" not in app.main_screen.query_one(CandidateFacts).plain
        await pilot.press("C")
        await settle(app, pilot)
        assert app.main_screen.view[S.C_DEVICE].to_list() == ["ws-human"]
        await pilot.press("x")  # x clears the group too
        await settle(app, pilot)
        assert app.main_screen.view.height == 3


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            S.C_DEVICE: ["a", "b", "b", "c", "d"],
            S.C_PROCESS: ["p", "p", "q", "p", "p"],
            S.C_REMOTE_IP: ["1.1.1.1", "2.2.2.2", "1.1.1.1", "3.3.3.3", None],
            S.C_REMOTE_PORT: [443, 443, 80, 443, None],
            S.C_DOMAIN: [None, "c2.evil.example", None, "evil.example.org", "x.EVIL.example"],
            S.C_SCORE: [0.9, 0.8, 0.7, 0.6, 0.5],
        }
    )


def test_the_group_is_the_address_or_any_host_of_the_registered_domain():
    frame = _frame()
    # 1.1.1.1 (a, b) or a name under evil.example (b's c2., d's x.EVIL.); not
    # evil.example.org, a different domain that merely starts the same.
    picked = frame.filter(same_destination(frame.columns, "1.1.1.1", "evil.example"))
    assert picked[S.C_DEVICE].to_list() == ["a", "b", "b", "d"]
    assert campaign_devices(frame, "1.1.1.1", "evil.example") == 3
    assert campaign_devices(frame, "3.3.3.3", None) == 1
    view = apply_view(frame, ViewSpec(destination=("3.3.3.3", None)))
    assert view[S.C_DEVICE].to_list() == ["c"]
