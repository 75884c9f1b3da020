"""The entry package sets polars' allocator and numpy's BLAS threads before they load, and
keeps a user's values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

PROBE = (
    "import os, sys, tui; "
    "print(os.environ.get('_RJEM_MALLOC_CONF')); print('polars' in sys.modules)"
)


def _probe(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def _expected() -> str:
    """One arena per core this test may run on (counted here independently of ``tui``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"narenas:{cores},dirty_decay_ms:200,muzzy_decay_ms:0"


def test_importing_the_entry_package_sets_the_allocator_before_polars_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    assert _probe(env) == [_expected(), "False"]


@pytest.mark.skipif(not shutil.which("taskset"), reason="pins the child to one core")
def test_one_arena_per_core_the_process_may_use() -> None:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split()[0] == "narenas:1,dirty_decay_ms:200,muzzy_decay_ms:0"


def test_the_default_a_parent_process_polars_wrote_is_replaced() -> None:
    # polars writes its default into os.environ on import; a child inherits it
    env = dict(os.environ, _RJEM_MALLOC_CONF="dirty_decay_ms:500,muzzy_decay_ms:1000")
    assert _probe(env) == [_expected(), "False"]


def test_a_value_the_user_set_is_kept() -> None:
    env = dict(os.environ, _RJEM_MALLOC_CONF="narenas:4")
    assert _probe(env) == ["narenas:4", "False"]


BLAS_PROBE = (
    "import os, sys, tui; "
    "before = len(os.listdir('/proc/self/task')); import numpy; "
    "print(os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')) - before)"
)
WITHOUT_BLAS_SETTING = {
    k: v
    for k, v in os.environ.items()
    if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
}


def _blas_probe(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts Linux threads")
def test_numpy_loads_without_starting_blas_threads() -> None:
    # OpenBLAS otherwise starts one thread per core beyond the first when numpy loads
    assert _blas_probe(WITHOUT_BLAS_SETTING) == ["1", "0"]


@pytest.mark.parametrize(
    ("variable", "expected"),
    [("OPENBLAS_NUM_THREADS", "2"), ("OMP_NUM_THREADS", "None")],
)
def test_a_blas_thread_count_the_user_chose_is_kept(variable: str, expected: str) -> None:
    found = _blas_probe({**WITHOUT_BLAS_SETTING, variable: "2"})
    assert found[0] == expected
