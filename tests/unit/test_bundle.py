"""The offline bundle: markers judged for the target host, and a real install with no index.

The install test downloads every dependency's wheel from the package registry (as the
bundle command does), then installs them into a fresh venv with every index switched off.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tui.bundle import (
    BundleError,
    BundleParams,
    _download,
    install_line,
    main,
    marker_environment,
    project_root,
    read_pyproject,
    requirements,
)

REPO = Path(__file__).resolve().parents[2]

PROJECT = {
    "dependencies": [
        "click>=8.1",
        "tomli>=2.0; python_version < '3.11'",
        "colorama; sys_platform == 'win32'",
        "uvloop>=0.19; sys_platform == 'linux' and platform_machine == 'x86_64'",
        "exceptiongroup; python_full_version < '3.11.4'",
    ],
    "optional-dependencies": {"spark": ["pyspark>=4.0,<5", "pandas[pyarrow]>=2.2"]},
}


@pytest.mark.parametrize(
    ("python", "platform_tag", "extras", "expected"),
    [
        (
            "3.10",
            "manylinux2014_x86_64",
            (),
            ["click>=8.1", "tomli>=2.0", "uvloop>=0.19", "exceptiongroup"],
        ),
        ("3.11.4", "manylinux2014_x86_64", (), ["click>=8.1", "uvloop>=0.19"]),
        ("3.11", "manylinux_2_28_aarch64", (), ["click>=8.1", "exceptiongroup"]),
        ("3.12", "win_amd64", (), ["click>=8.1", "colorama"]),
        (
            "3.12",
            "macosx_11_0_arm64",
            ("spark",),
            ["click>=8.1", "pyspark<5,>=4.0", "pandas[pyarrow]>=2.2"],
        ),
    ],
)
def test_requirements_keep_what_the_target_host_needs(python, platform_tag, extras, expected):
    params = BundleParams((platform_tag,), python, extras)
    assert requirements(PROJECT, params) == expected


def test_real_pyproject_adds_only_tomli_below_311():
    project = read_pyproject(project_root())
    old = requirements(project, BundleParams(python_version="3.10"))
    new = requirements(project, BundleParams(python_version="3.11"))
    assert [r for r in old if r not in new] == ["tomli>=2.0"]
    assert [r for r in new if r not in old] == []


def test_marker_environment_reads_machine_from_the_tag():
    env = marker_environment("3.11", "manylinux_2_28_aarch64")
    assert (env["sys_platform"], env["platform_machine"], env["python_full_version"]) == (
        "linux",
        "aarch64",
        "3.11.0",
    )


@pytest.mark.parametrize(
    ("python", "platform_tag", "message"),
    [
        ("311", "manylinux2014_x86_64", "bundle: --python-version '311' is not X.Y or X.Y.Z"),
        (
            "3.11",
            "any",
            "bundle: --platform 'any' is not a manylinux, musllinux, linux, macosx or win tag",
        ),
    ],
)
def test_bad_target_is_one_line(python, platform_tag, message):
    with pytest.raises(BundleError) as caught:
        marker_environment(python, platform_tag)
    assert str(caught.value) == message


def test_installed_copy_is_not_a_checkout(tmp_path):
    fake = tmp_path / "site-packages" / "tui" / "bundle.py"
    with pytest.raises(BundleError, match=r"^bundle: not a source checkout \("):
        project_root(fake)


def test_unknown_extra_fails_with_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path / "out"), "--extras", "nosuch"])
    assert result.exit_code == 1
    known = ", ".join(sorted(read_pyproject(REPO)["optional-dependencies"]))
    assert result.stderr == (
        f"beacon-triage: error: bundle: no extra 'nosuch' in pyproject.toml (known: {known})\n"
    )
    assert not (tmp_path / "out").exists()


def test_install_line_names_the_extras():
    assert install_line(("spark",)) == (
        'python3 -m pip install --no-index --find-links "$(dirname "$0")" "beacon-triage[spark]"\n'
    )


def _host_platform() -> str:
    """The manylinux tag pip picks wheels for on this machine (CI runs Linux)."""
    machine = platform.machine()
    if sys.platform != "linux" or machine not in {"x86_64", "aarch64"}:
        pytest.skip("the install test builds a manylinux bundle")
    return f"manylinux2014_{machine}"


def _sdist(folder: Path, name: str) -> Path:
    """A pure-Python project published only as source, as pyspark is."""
    top = folder / f"{name}-1.0"
    (top / name).mkdir(parents=True)
    (top / name / "__init__.py").write_text("")
    (top / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
    )
    archive = folder / f"{name}-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=top.name)
    return archive


def test_source_only_dependency_is_built_into_a_pure_wheel(tmp_path, monkeypatch):
    links = tmp_path / "links"
    links.mkdir()
    _sdist(links, "beacon_triage_sdist_probe")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    out = tmp_path / "out"
    out.mkdir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    _download(["beacon_triage_sdist_probe==1.0"], out, BundleParams((_host_platform(),), version))
    assert [p.name for p in out.iterdir()] == ["beacon_triage_sdist_probe-1.0-py2.py3-none-any.whl"]


def test_bundle_installs_into_a_fresh_venv_with_no_index(tmp_path):
    out = tmp_path / "bundle"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    command = [sys.executable, "-m", "tui.bundle", str(out), "--platform", _host_platform()]
    build = subprocess.run(
        [*command, "--python-version", version],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr
    assert (out / "install.sh").read_text() == install_line(())

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # No index, no config file (this machine's may add find-links), no inherited pip settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    env |= {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "http://index.invalid/simple",
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    }
    install = subprocess.run(
        ["sh", str(out / "install.sh")], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert install.returncode == 0, install.stderr

    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tui; print(tui.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(venv)), where.stdout
    sample = REPO / "sample_data" / "defender_network_events.csv"
    detect = subprocess.run(
        [
            str(venv / "bin" / "beacon-triage"),
            "detect",
            str(sample),
            "--top",
            "3",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert detect.returncode == 0, detect.stderr
    assert len(json.loads(detect.stdout)) == 3
