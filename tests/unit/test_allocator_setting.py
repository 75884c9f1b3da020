"""The entry package sets polars' allocator before polars loads, and keeps a user's value."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import os, sys, tui; "
    "print(os.environ.get('_RJEM_MALLOC_CONF')); print('polars' in sys.modules)"
)


def _probe(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_importing_the_entry_package_sets_the_decay_before_polars_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    assert _probe(env) == ["dirty_decay_ms:200,muzzy_decay_ms:0", "False"]


def test_the_default_a_parent_process_polars_wrote_is_replaced() -> None:
    # polars writes its default into os.environ on import; a child inherits it
    env = dict(os.environ, _RJEM_MALLOC_CONF="dirty_decay_ms:500,muzzy_decay_ms:1000")
    assert _probe(env) == ["dirty_decay_ms:200,muzzy_decay_ms:0", "False"]


def test_a_value_the_user_set_is_kept() -> None:
    env = dict(os.environ, _RJEM_MALLOC_CONF="narenas:4")
    assert _probe(env) == ["narenas:4", "False"]
