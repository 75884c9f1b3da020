"""Every TUI test gets the fake detector registered (and removed afterwards)."""

import pytest
import tui_fixtures


@pytest.fixture(autouse=True)
def fake_detector(monkeypatch):
    tui_fixtures.register_fake(monkeypatch)
