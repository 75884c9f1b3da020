"""Allow-listing from the TUI: from a candidate, on the allow-list screen, and safely on disk.

The synthetic data has three candidates (tui_fixtures): ws-beacon → 45.77.10.20:443,
the hostile device → 45.77.10.20:8443 (both seen with the name c2.updates-example.net)
and ws-human → 151.101.1.69:443 (no name).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import tui_fixtures as syn
from textual.widgets import Input
from tui_fixtures import make_app, register_fake, settle

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.curate.tomlstore import login_name
from tui.screens.allow_entry import DOMAIN_WARNING, AllowEntryScreen
from tui.screens.allowlist import AllowListScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.candidate_table import CandidateTable
from tui.widgets.status_header import StatusHeader

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SIZE = (120, 36)
PAIR_REASON = f"benign: this pair ws-beacon / beacon.exe -> {syn.BEACON_IP}:443"


@pytest.fixture
def runs(monkeypatch) -> list[int]:
    """The fake detector, counting its runs: an allow-list edit must not add one."""
    calls: list[int] = []

    def counting(data, params, progress):
        calls.append(1)
        return syn.fake_periodic(data, params, progress)

    register_fake(monkeypatch, "fake_periodic", counting)
    return calls


def _app(tmp_path: Path, **kwargs):
    config = Config(path=tmp_path / "config.toml", theme="beacon-dark")
    return make_app(tmp_path, config=config, allowlist_path=tmp_path / "allow.toml", **kwargs)


def _devices(app) -> list[str]:
    return app.main_screen.view[S.C_DEVICE].to_list()


def _entries(path: Path) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8")).get("allow", [])


async def _select(app, pilot, device: str) -> None:
    """Put the table cursor on ``device``'s candidate with the keyboard."""
    await pilot.press("home")
    for _ in range(_devices(app).index(device)):
        await pilot.press("down")
    await settle(app, pilot, lambda: app.main_screen.detail.row[S.C_DEVICE] == device)


async def test_allow_exact_pair_hides_it_without_running_the_detectors(tmp_path, runs):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert len(runs) == 1 and app.main_screen.view.height == 3
        await _select(app, pilot, "ws-beacon")
        await pilot.press("A")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, AllowEntryScreen)
        reason = screen.query_one("#allow-field--reason", Input)
        assert reason.value == PAIR_REASON  # prefilled, to edit
        reason.value = "lab beacon simulator"
        before = datetime.now(timezone.utc).replace(microsecond=0)
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: app.main_screen.view.height == 2)
        assert app.screen is app.main_screen
        assert sorted(_devices(app)) == sorted([syn.HOSTILE_DEVICE, "ws-human"])
        assert len(runs) == 1  # re-flagged, not re-detected
        [entry] = _entries(tmp_path / "allow.toml")
        assert {k: entry[k] for k in ("device", "process", "remote_ip", "remote_port")} == {
            "device": "ws-beacon",
            "process": "beacon.exe",
            "remote_ip": syn.BEACON_IP,
            "remote_port": 443,
        }
        assert entry["reason"] == "lab beacon simulator"
        assert entry["added_by"] == login_name()
        assert before <= entry["added"] <= datetime.now(timezone.utc) + timedelta(seconds=1)

        await pilot.press("a")  # show allow-listed candidates, greyed
        await settle(app, pilot, lambda: app.main_screen.view.height == 3)
        table = app.main_screen.query_one(CandidateTable)
        row = _devices(app).index("ws-beacon")
        line = table.render_line(row + 1)
        assert line.text.startswith("A ")  # the mark column says allow-listed
        allowed_style = table.get_component_rich_style("candidate-table--allowed")
        assert allowed_style.italic
        body = [seg for seg in line if "ws-beacon" in seg.text]
        assert body and body[0].style.italic and body[0].style.color == allowed_style.color


async def test_allow_by_domain_hides_every_candidate_seen_with_the_name(tmp_path, runs):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await _select(app, pilot, "ws-beacon")
        await pilot.press("A")
        await pilot.pause()
        screen = app.screen
        labels = [label for label, _ in screen.suggestions]
        at = labels.index("domain *.updates-example.net")
        for _ in range(at):
            await pilot.press("down")
        await settle(app, pilot, lambda: screen.query_one("#allow-field--domain", Input).value)
        assert screen.query_one("#allow-field--domain", Input).value == "*.updates-example.net"
        await settle(
            app,
            pilot,
            lambda: screen.preview_count is not None and not screen._fields.get("device"),
        )
        # Independently: candidates with a name (or registered domain) under the suffix.
        merged = app.merged
        expected = {
            row[S.C_DEVICE]
            for row in merged.iter_rows(named=True)
            if any(
                n == "updates-example.net" or n.endswith(".updates-example.net")
                for n in [*(row["names"] or []), row[S.C_DOMAIN] or ""]
            )
        }
        assert expected == {"ws-beacon", syn.HOSTILE_DEVICE}  # by hand: both talk to .20
        shown = screen.query_one("#entry-preview").render().plain
        assert screen.preview_count == 2
        assert shown.splitlines() == [
            "Would hide 2 of the 3 candidates not allow-listed yet",
            DOMAIN_WARNING,  # a rule by name trusts what the adversary can set
        ]
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: app.main_screen.view.height == 1)
        assert _devices(app) == ["ws-human"]
        hidden = app.candidates.filter(app.candidates["allowed"])
        assert set(hidden[S.C_DEVICE]) == expected
        assert hidden.height == screen.preview_count
        assert len(runs) == 1
        assert _entries(tmp_path / "allow.toml")[0]["domain"] == "*.updates-example.net"


HAND_WRITTEN = """\
# Team allow-list: reviewed every Monday.  ← a hand-written comment

# the analysts' own browser
[[allow]]
device = "ws-human"   # Alice's box
reason = "analyst workstation"
added_by = "alice"
added = 2026-11-01T09:00:00Z

# the lab's beacon simulator
[[allow]]
device = "ws-beacon"
process = "beacon.exe"
reason = "lab simulator"
expires = 2020-01-01
"""


async def test_allowlist_screen_disable_brings_back_and_delete_keeps_the_rest(tmp_path, runs):
    path = tmp_path / "allow.toml"
    path.write_text(HAND_WRITTEN.replace("expires = 2020-01-01\n", ""), encoding="utf-8")
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert _devices(app) == [syn.HOSTILE_DEVICE]  # both entries apply
        await pilot.press("L")
        await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
        screen = app.screen
        await settle(app, pilot, lambda: len(screen.hits) == 2)
        assert [screen.hits[e] for e in screen.entries] == [1, 1]
        table = screen.query_one("#allow-table")
        assert table.row_count == 2
        await pilot.press("down", "space")  # disable entry #2
        await settle(app, pilot, lambda: app.main_screen.view.height == 2)
        assert sorted(_devices(app)) == sorted([syn.HOSTILE_DEVICE, "ws-beacon"])
        assert _entries(path)[1]["enabled"] is False
        assert len(runs) == 1

        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # "Delete" has the focus
        await settle(app, pilot, lambda: len(_entries(path)) == 1)
        original = HAND_WRITTEN.replace("expires = 2020-01-01\n", "")
        # The deleted table goes with its comment; everything before it is untouched.
        assert path.read_text(encoding="utf-8") == original[: original.index("# the lab's")]
        assert (tmp_path / "allow.toml.bak").exists()
        assert (
            isinstance(app.screen, AllowListScreen)
            and app.screen.query_one("#allow-table").row_count == 1
        )
        await pilot.press("escape")
        await settle(app, pilot)
        assert sorted(_devices(app)) == sorted([syn.HOSTILE_DEVICE, "ws-beacon"])


async def test_expired_entry_is_flagged_and_no_longer_hides(tmp_path, runs):
    (tmp_path / "allow.toml").write_text(HAND_WRITTEN, encoding="utf-8")
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert sorted(_devices(app)) == sorted([syn.HOSTILE_DEVICE, "ws-beacon"])
        await pilot.press("L")
        await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
        table = app.screen.query_one("#allow-table")
        await settle(app, pilot, lambda: table.row_count == 2)
        states = [str(table.get_row_at(i)[1]) for i in range(2)]
        assert states == ["on", "EXPIRED"]
        assert "1 expired (no longer applied)" in str(app.screen.query_one("#allow-state").render())


async def test_edit_made_by_someone_else_before_our_save_is_kept(tmp_path, runs):
    path = tmp_path / "allow.toml"
    path.write_text(HAND_WRITTEN.split("\n# the lab's")[0] + "\n", encoding="utf-8")
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        colleague = (
            path.read_text(encoding="utf-8")
            + '\n[[allow]]\nremote_ip = "198.51.100.0/24"\nreason = "colleague: backup"\n'
        )
        path.write_text(colleague, encoding="utf-8")  # written after our load
        await _select(app, pilot, "ws-beacon")
        await pilot.press("A")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: len(_entries(path)) == 3)
        assert [e["reason"] for e in _entries(path)] == [
            "analyst workstation",
            "colleague: backup",
            PAIR_REASON,
        ]
        assert path.read_text(encoding="utf-8").startswith(colleague)
        assert [e.reason for e in app.curation.allowlist.entries][1] == "colleague: backup"
        assert app.main_screen.header.unsaved == ()


async def test_conflicting_edit_asks_and_keep_theirs_writes_their_version(tmp_path, runs):
    path = tmp_path / "allow.toml"
    path.write_text(HAND_WRITTEN.replace("expires = 2020-01-01\n", ""), encoding="utf-8")
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("L")
        await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
        theirs = path.read_text(encoding="utf-8").replace("lab simulator", "lab simulator v2")
        path.write_text(theirs, encoding="utf-8")  # they changed the entry we now disable
        await pilot.press("down", "space")
        await settle(app, pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert path.read_text(encoding="utf-8") == theirs  # nothing written yet
        await pilot.press("left", "left", "enter")  # focus moves Cancel → Overwrite → Keep theirs
        await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
        assert path.read_text(encoding="utf-8") == theirs
        assert app.main_screen.header.unsaved == ()
        assert [e.reason for e in app.curation.allowlist.entries] == [
            "analyst workstation",
            "lab simulator v2",
        ]


async def test_failed_save_keeps_the_entry_marked_unsaved_and_retries(tmp_path, runs, monkeypatch):
    import detectors.curate.tomlstore as store

    real = store.atomic_write_bytes

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "atomic_write_bytes", disk_full)
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await _select(app, pilot, "ws-beacon")
        await pilot.press("A")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: app.main_screen.view.height == 2)  # applied anyway
        assert not (tmp_path / "allow.toml").exists()
        assert app.main_screen.header.unsaved == ("allow-list",)
        header = app.main_screen.query_one(StatusHeader).render().plain
        assert "UNSAVED allow-list" in header
        assert app.log_entries[-1].level == "error"
        assert "No space left on device" in app.log_entries[-1].text
        await pilot.press("ctrl+q")  # quitting would lose the edit: asked first
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.is_running
        await pilot.press("escape")  # stay
        await pilot.pause()
        assert app.screen is app.main_screen and app.is_running
        monkeypatch.setattr(store, "atomic_write_bytes", real)
        await pilot.press("ctrl+s")  # the retry
        await settle(app, pilot)
        assert app.main_screen.header.unsaved == ()
        assert [e["reason"] for e in _entries(tmp_path / "allow.toml")] == [PAIR_REASON]


async def test_broken_allowlist_is_reported_not_applied_and_never_rewritten(tmp_path, runs):
    path = tmp_path / "allow.toml"
    broken = b'[[allow]]\ndevice = "ws-beacon\nreason = "unterminated"\n'
    path.write_bytes(broken)
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.main_screen.view.height == 3  # nothing hidden
        assert any(
            e.level == "error" and e.text.startswith("allow-list not applied:")
            for e in app.log_entries
        )
        await _select(app, pilot, "ws-beacon")
        await pilot.press("A")  # refused, with a notification
        await pilot.pause()
        assert app.screen is app.main_screen
        await pilot.press("e")  # marks still work: the triage file is separate
        await settle(app, pilot, lambda: app.main_screen.header.marks == (("escalate", 1),))
        await pilot.press("L", "ctrl+r")  # reload: still broken
        await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
        assert "-error" in app.screen.query_one("#allow-state").classes
    assert path.read_bytes() == broken
    assert not (tmp_path / "allow.toml.bak").exists()


async def test_hostile_pair_is_shown_inert_and_saved_with_its_exact_names(tmp_path, runs):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await _select(app, pilot, syn.HOSTILE_DEVICE)
        await pilot.press("A")
        await pilot.pause()
        screen = app.screen
        subject = screen.query_one(".entry-subject").render()
        assert f"{syn.HOSTILE_DEVICE} / {syn.HOSTILE_PROCESS}" in str(subject)  # not markup
        assert screen.query_one("#allow-field--process", Input).value == syn.HOSTILE_PROCESS
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: app.main_screen.view.height == 2)
        assert app.is_running  # "[@click=app.quit]" stayed text
        [entry] = _entries(tmp_path / "allow.toml")
        assert (entry["device"], entry["process"]) == (syn.HOSTILE_DEVICE, syn.HOSTILE_PROCESS)


async def test_entry_form_shows_control_characters_escaped_but_keeps_the_raw_value():
    from textual.app import App

    from tui.widgets.allow_entry_form import AllowEntryForm

    raw = "ws-\x1b[31mred\u202e"

    class FormApp(App[None]):
        def compose(self):
            yield AllowEntryForm({"device": raw, "reason": "r"})

    app = FormApp()
    async with app.run_test() as pilot:
        form = app.query_one(AllowEntryForm)
        box = form.query_one("#allow-field--device", Input)
        assert box.value == "ws-\\x1b[31mred\\u202e"  # what the eye sees
        assert form.values() == {"device": raw, "reason": "r"}  # what the entry matches
        box.value = "ws-typed"
        await pilot.pause()
        assert form.values()["device"] == "ws-typed"  # an edited box gives what was typed


async def test_new_entry_written_from_scratch_on_the_allowlist_screen(tmp_path, runs):
    from tui.widgets.allow_entry_form import field_id

    path = tmp_path / "allow.toml"
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert len(_devices(app)) == 3
        await pilot.press("L")
        await settle(app, pilot, lambda: isinstance(app.screen, AllowListScreen))
        await pilot.press("n")
        await pilot.pause()
        editor = app.screen
        assert isinstance(editor, AllowEntryScreen)
        editor.query_one(f"#{field_id('process')}", Input).value = "chrome.exe"
        editor.query_one(f"#{field_id('reason')}", Input).value = "the browser"
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: len(_devices(app)) == 2)
        assert "ws-human" not in _devices(app)
        [entry] = _entries(path)
        assert (entry["process"], entry["reason"]) == ("chrome.exe", "the browser")
        assert len(runs) == 1  # no detector ran again
