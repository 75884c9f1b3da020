"""Focus always comes back to the candidate list, and the keys analysts know from less,
htop and VisiData do what they do there (issue 18)."""

from __future__ import annotations

from tui_fixtures import make_app, settle

from tui.screens.help import HelpScreen
from tui.screens.triage_note import TriageNoteScreen
from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.candidate_table import CandidateTable
from tui.widgets.filter_bar import FilterBar

SIZE = (100, 30)


def _table(app) -> CandidateTable:
    return app.main_screen.query_one(CandidateTable)


async def _ready(app, pilot):
    await settle(app, pilot)
    table = _table(app)
    assert table.row_count == 3 and table.cursor_row == 0 and app.focused is table
    return table


async def test_zoom_then_escape_then_j_moves_the_cursor(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("z")
        await pilot.pause()
        assert app.main_screen.maximized is not None
        assert isinstance(app.focused, CandidateFacts)  # never the hidden filter box
        await pilot.press("escape")
        await pilot.pause()
        assert app.main_screen.maximized is None and app.focused is table
        await pilot.press("j")
        await pilot.pause()
        assert table.cursor_row == 1
        assert app.main_screen.spec.text == ""  # nothing was typed into the filter
        assert app.main_screen.view.height == 3


async def test_z_and_enter_toggle_the_zoom_with_the_same_key(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("z")
        await pilot.pause()
        assert app.main_screen.maximized is not None
        await pilot.press("z")  # the same key un-zooms; "z" is not typed anywhere
        await pilot.pause()
        assert app.main_screen.maximized is None and app.focused is table
        assert app.main_screen.query_one(FilterBar).text == ""
        await pilot.press("enter")
        await pilot.pause()
        assert app.main_screen.maximized is not None
        await pilot.press("enter")
        await pilot.pause()
        assert app.main_screen.maximized is None and app.focused is table


async def test_f_then_escape_returns_to_the_table(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.focused, CandidateFacts)
        await pilot.press("escape", "j")
        await pilot.pause()
        assert app.focused is table and table.cursor_row == 1


async def test_escape_in_the_filter_clears_it_and_never_types(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("slash", *"beac")
        await settle(app, pilot, lambda: app.main_screen.view.height == 1)
        await pilot.press("escape")
        await settle(app, pilot, lambda: app.main_screen.view.height == 3)
        assert app.focused is table and app.main_screen.query_one(FilterBar).text == ""


async def test_help_and_note_editor_give_focus_back_to_the_table(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "j")
        await pilot.pause()
        assert app.focused is table and table.cursor_row == 1
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, TriageNoteScreen)
        await pilot.press("escape", "j")
        await pilot.pause()
        assert app.focused is table and table.cursor_row == 2


async def test_note_editor_focus_order_note_then_marks_and_space_sets_nothing(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("m")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TriageNoteScreen)
        assert app.focused is screen.query_one("#note-text")
        assert "note ⇄ Tab ⇄ mark" in str(screen.query_one(".note-focus").render())
        await pilot.press("tab")
        assert app.focused is screen.query_one("#note-mark")
        await pilot.press("space")  # a stray space: the mark stays unreviewed
        await pilot.pause()
        assert screen.chosen_mark() == "unreviewed"
        await pilot.press("enter")  # the highlight starts on the first mark
        assert screen.chosen_mark() == "suspicious"
        await pilot.press("right", "enter")
        assert screen.chosen_mark() == "escalate"
        await pilot.press("tab")
        assert app.focused is screen.query_one("#note-text")


async def test_n_and_shift_n_step_through_the_filter_matches_wrapping(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("slash", *"45.77", "enter")  # two pairs talk to 45.77.10.20
        await settle(app, pilot, lambda: app.main_screen.view.height == 2)
        assert app.focused is table and table.cursor_row == 0
        await pilot.press("n")
        assert table.cursor_row == 1
        await pilot.press("n")
        assert table.cursor_row == 0  # wraps, as less does with search wrap on
        await pilot.press("N")
        assert table.cursor_row == 1


async def test_page_keys_and_home_end_move_the_cursor(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await _ready(app, pilot)
        await pilot.press("end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        assert table.cursor_row == 2  # clamped: three rows fit one page
        await pilot.press("pageup")
        assert table.cursor_row == 0


async def test_q_quits_at_once_when_nothing_is_unsaved(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        await pilot.press("q")
        await pilot.pause()
        assert app._exit is True or not app.is_running


async def test_palette_offers_only_our_themes_and_says_each_description_once(tmp_path):
    from tui.commands import TriageCommands

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _ready(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Theme" not in titles and "Quit" in titles
        provider = TriageCommands(app.screen)
        commands = provider._commands()
        actions = [(t, h) for t, h, _ in commands if not t.startswith(("Theme", "Show"))]
        assert actions and all(h == "" for _, h in actions)  # the title has the description
        themes = [t for t, _, _ in commands if t.startswith("Theme: beacon")]
        assert themes == [f"Theme: {name}" for name in app.theme_names()]
        app.theme = "dracula"  # a Textual theme set some other way is not saved
        await pilot.pause()
        assert app.config.theme == "beacon-dark"
