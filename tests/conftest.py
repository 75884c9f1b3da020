"""Suite-wide settings: Hypothesis profiles.

Property tests set their own bounded ``max_examples`` and ``deadline=None``. The
profiles decide the rest: ``ci`` (chosen when the ``CI`` variable is set) derandomizes,
so a CI run is reproducible and never flaky, and skips the example database; ``dev``
explores new random examples each run and remembers failures. Pick one with
``HYPOTHESIS_PROFILE=dev|ci``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory, monkeypatch):
    """No test reads or writes the real user's config, allow-list, triage file or cache."""
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
