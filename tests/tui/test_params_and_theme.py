"""Parameters form (apply, validate, save) and the theme switch remembered in the config."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.widgets import Input, Static
from tui_fixtures import make_app, settle

from detectors.base.config import Config
from tui.screens.params import ParamsScreen

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SIZE = (110, 32)
MIN_COUNT = "#param--fake_periodic--min_count"
USER_CONFIG = '# my hunting setup\ntheme = "beacon-dark"  # dark at night\n'


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(USER_CONFIG, encoding="utf-8")
    return Config(path=path, theme="beacon-dark")


async def test_applied_parameters_rerun_the_detectors(tmp_path):
    app = make_app(tmp_path, config=_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ParamsScreen)
        box = screen.query_one(MIN_COUNT, Input)
        assert box.value == "10"  # the default, as TOML
        box.value = "200"  # only the beacon pair has more than 200 distinct times (288)
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert app.screen is app.main_screen
        assert app.config.detectors == {"fake_periodic": {"min_count": 200}}
        assert app.main_screen.view["device"].to_list() == ["ws-beacon"]


async def test_a_wrong_value_is_named_and_nothing_is_applied(tmp_path):
    app = make_app(tmp_path, config=_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        screen = app.screen
        screen.query_one(MIN_COUNT, Input).value = "2.5"
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is screen  # still open
        error = str(screen.query_one("#params-error", Static).render())
        assert error == "[detectors.fake_periodic] min_count: expected a whole number, got 2.5"
        assert screen.query_one(MIN_COUNT, Input).has_class("-invalid")
        assert app.config.detectors == {}


async def test_saved_parameters_keep_the_users_comments(tmp_path):
    config = _config(tmp_path)
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        app.screen.query_one(MIN_COUNT, Input).value = "12"
        await pilot.press("ctrl+s")
        await pilot.pause()
    text = config.path.read_text(encoding="utf-8")
    assert text.startswith(USER_CONFIG)  # comments and layout untouched
    assert tomllib.loads(text)["detectors"] == {"fake_periodic": {"min_count": 12}}
    assert config.path.with_name("config.toml.bak").read_text(encoding="utf-8") == USER_CONFIG


async def test_theme_key_switches_and_remembers_the_theme(tmp_path):
    config = _config(tmp_path)
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("t")
        await pilot.pause()
        assert app.theme == "beacon-light"
        assert "-theme-beacon-light" in app.classes
    text = config.path.read_text(encoding="utf-8")
    assert tomllib.loads(text)["theme"] == "beacon-light"
    assert text.startswith("# my hunting setup\n")


async def test_each_theme_renders_the_main_screen(tmp_path):
    import themes

    app = make_app(tmp_path, config=_config(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        for name in themes.THEME_NAMES:
            app.theme = name
            await pilot.pause()
            assert app.current_theme.name == name
            assert app.main_screen.query_one("#candidates").render_line(1).text.strip()


async def test_network_settings_are_in_the_form_and_saved_as_the_network_table(tmp_path):
    config = _config(tmp_path)
    app = make_app(tmp_path, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        box = app.screen.query_one("#param--network--internal", Input)
        assert box.value.startswith('["10.0.0.0/8", "172.16.0.0/12"')  # the defaults, as TOML
        box.value = '["10.0.0.0/8", "203.0.113.0/24"]'
        app.screen.query_one("#param--network--monitored_min_sources", Input).value = "50"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert app.config.network == {
            "internal": ["10.0.0.0/8", "203.0.113.0/24"],
            "monitored_min_sources": 50,
        }
    saved = tomllib.loads(config.path.read_text(encoding="utf-8"))
    assert saved["network"] == {
        "internal": ["10.0.0.0/8", "203.0.113.0/24"],
        "monitored_min_sources": 50,
    }
    assert "detectors" not in saved


async def test_a_bad_subnet_is_named_in_the_form(tmp_path):
    app = make_app(tmp_path, config=_config(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("p")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#param--network--internal", Input).value = '["10.0.0.0/33"]'
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.screen is screen
        error = str(screen.query_one("#params-error", Static).render())
        assert error == "field network.internal: '10.0.0.0/33' is not an address or CIDR block"
        assert app.config.network == {}
