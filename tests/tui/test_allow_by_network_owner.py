"""An entry by AS number or organisation, written in the TUI, with its preview.

The synthetic candidates: ws-beacon and the hostile device → 45.77.10.20, ws-human →
151.101.1.69. The fake mmdb puts the first in AS20473 (CHOOPA), the second in AS54113
(FASTLY).
"""

from __future__ import annotations

from pathlib import Path

import tui_fixtures as syn
from textual.widgets import Input
from tui_fixtures import make_app, settle

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.rank.enrichment import GeoLookup
from tui.screens.allow_entry import NO_MMDB, AllowEntryScreen
from tui.screens.allowlist import AllowListScreen
from tui.widgets.allow_entry_form import field_id

SIZE = (120, 40)


def _record(number: int, org: str) -> dict:
    return {"autonomous_system_number": number, "autonomous_system_organization": org}


class _FakeReader:
    """What maxminddb's reader returns for GeoLite2-ASN records."""

    def get(self, ip: str):
        owners = {syn.BEACON_IP: _record(20473, "CHOOPA"), syn.HUMAN_IP: _record(54113, "FASTLY")}
        return owners.get(ip)


def _app(tmp_path: Path, mmdb: bool):
    app = make_app(
        tmp_path,
        config=Config(path=tmp_path / "config.toml", theme="beacon-dark"),
        allowlist_path=tmp_path / "allow.toml",
    )
    if mmdb:
        geo = GeoLookup(tmp_path / "fake.mmdb")
        geo._reader = _FakeReader()
        app.pipeline._geo = lambda config: geo
    return app


async def _new_entry(app, pilot, key: str, value: str) -> AllowEntryScreen:
    await pilot.press("L")
    await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
    await pilot.press("n")
    await pilot.pause()
    editor = app.screen
    assert isinstance(editor, AllowEntryScreen)
    editor.query_one(f"#{field_id(key)}", Input).value = value
    editor.query_one(f"#{field_id('reason')}", Input).value = "vendor network"
    await settle(app, pilot, lambda: editor.preview_count is not None and editor._fields.get(key))
    return editor


async def test_an_org_entry_previews_and_hides_that_network(tmp_path):
    app = _app(tmp_path, mmdb=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.merged[S.C_ORG].to_list().count("CHOOPA") == 2
        editor = await _new_entry(app, pilot, "org", "choopa")
        shown = editor.query_one("#entry-preview").render().plain
        assert shown.splitlines() == ["Would hide 2 of the 3 candidates not allow-listed yet"]
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: app.main_screen.view.height == 1)
        assert app.main_screen.view[S.C_DEVICE].to_list() == ["ws-human"]
        assert 'org = "choopa"' in (tmp_path / "allow.toml").read_text()


async def test_without_an_mmdb_the_form_says_why_an_asn_entry_hides_nothing(tmp_path):
    app = _app(tmp_path, mmdb=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert S.C_ASN not in app.merged.columns
        editor = await _new_entry(app, pilot, "asn", "AS54113")
        shown = editor.query_one("#entry-preview").render().plain
        assert shown.splitlines() == [
            "Would hide 0 of the 3 candidates not allow-listed yet",
            NO_MMDB,
        ]
