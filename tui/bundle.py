"""Build an offline bundle: air-gapped hosts have no package index.

``python -m tui.bundle OUT_DIR [--platform TAG]... [--python-version X.Y] [--extras NAME]``
run from a source checkout writes into OUT_DIR the beacon-triage wheel, a wheel of every
dependency for the named platform and Python, ``install.sh`` (one line: pip with
``--no-index --find-links``) and ``README.txt``. Copy the folder to the host and run
``sh OUT_DIR/install.sh`` there with that Python as ``python3``.

pip evaluates the *dependencies'* own environment markers for the Python running it,
not for ``--python-version`` (pip issues 11010, 13296); our own markers are evaluated
here for the target, and a warning says when the two Pythons differ.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DIST = "beacon-triage"
INSTALL_SH = 'python3 -m pip install --no-index --find-links "$(dirname "$0")" {target}\n'

# The marker variables a platform tag fixes (PEP 508), by the tag's leading word.
_OS_MARKERS = {
    "manylinux": ("linux", "Linux", "posix"),
    "musllinux": ("linux", "Linux", "posix"),
    "linux": ("linux", "Linux", "posix"),
    "macosx": ("darwin", "Darwin", "posix"),
    "win": ("win32", "Windows", "nt"),
}
_WINDOWS_MACHINE = {"win_amd64": "AMD64", "win32": "x86", "win_arm64": "ARM64"}


class BundleError(Exception):
    """A bundle step failed; the message is one line naming the step."""


@dataclass(frozen=True)
class BundleParams:
    """What the bundle is built for."""

    platforms: tuple[str, ...] = ("manylinux2014_x86_64",)
    """pip platform tags, best first. manylinux2014 (glibc 2.17) runs on nearly every Linux
    in service; newer numpy/pyarrow releases ship only manylinux_2_28 wheels, so this
    default picks the last releases that still built for 2014. Add
    ``manylinux_2_28_x86_64`` first for the newest ones on hosts with glibc >= 2.28."""
    python_version: str = "3.11"
    """The host's Python, ``X.Y`` (or ``X.Y.Z``): wheels and markers are chosen for it."""
    extras: tuple[str, ...] = ()
    """Optional-dependency groups from pyproject.toml to include, e.g. ``spark``."""


def project_root(module_file: str | Path = __file__) -> Path:
    """The checkout holding this package: the bundle is built from source, not an install."""
    root = Path(module_file).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise BundleError(
            f"bundle: not a source checkout ({root} has no pyproject.toml); "
            "run `python -m tui.bundle` from a clone of beacon-triage"
        )
    return root


def read_pyproject(root: Path) -> dict[str, Any]:
    """The ``[project]`` table, whose dependency list is the one the wheel declares."""
    try:
        with (root / "pyproject.toml").open("rb") as f:
            return dict(tomllib.load(f)["project"])
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        where = root / "pyproject.toml"
        raise BundleError(f"bundle: cannot read [project] from {where}: {exc}") from exc


def marker_environment(python_version: str, platform: str) -> dict[str, str]:
    """PEP 508 marker values for the target host, so markers are judged for it, not us."""
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", python_version):
        raise BundleError(f"bundle: --python-version {python_version!r} is not X.Y or X.Y.Z")
    word = platform.split("_", 1)[0].rstrip("0123456789")
    if word not in _OS_MARKERS:
        raise BundleError(
            f"bundle: --platform {platform!r} is not a manylinux, musllinux, linux, "
            "macosx or win tag"
        )
    sys_platform, system, os_name = _OS_MARKERS[word]
    machine = _WINDOWS_MACHINE.get(platform) or re.sub(r"^.*?_(\d+_)*", "", platform)
    major_minor = ".".join(python_version.split(".")[:2])
    full = python_version if python_version.count(".") == 2 else f"{python_version}.0"
    return {
        "python_version": major_minor,
        "python_full_version": full,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": sys_platform,
        "platform_system": system,
        "os_name": os_name,
        "platform_machine": machine,
    }


def requirements(project: dict[str, Any], params: BundleParams) -> list[str]:
    """The declared dependencies (and extras) whose markers hold on the target host.

    Markers are stripped from what is kept: pip would judge them for *this* Python.
    """
    try:
        from packaging.requirements import Requirement
    except ImportError as exc:  # a checkout set up with the README has it (pytest needs it)
        raise BundleError("bundle: needs the 'packaging' library: pip install packaging") from exc

    optional = project.get("optional-dependencies", {})
    unknown = [e for e in params.extras if e not in optional]
    if unknown:
        known = ", ".join(sorted(optional)) or "none"
        raise BundleError(f"bundle: no extra {unknown[0]!r} in pyproject.toml (known: {known})")
    declared = list(project.get("dependencies", []))
    declared += [spec for extra in params.extras for spec in optional[extra]]
    env = marker_environment(params.python_version, params.platforms[0])
    kept = [Requirement(spec) for spec in declared]
    kept = [r for r in kept if r.marker is None or r.marker.evaluate(env)]
    return [_without_marker(r) for r in kept]


def _without_marker(req: Any) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    tail = f" @ {req.url}" if req.url else str(req.specifier)
    return f"{req.name}{extras}{tail}"


def _pip(args: Sequence[str], what: str) -> str:
    """Run pip (this Python's); a failure becomes one line naming the step and pip's reason."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BundleError(f"bundle: {what}: {_pip_reason(done.stderr)}")
    return done.stdout


def _pip_reason(stderr: str) -> str:
    """pip's first ERROR line names the culprit; its last line is often a help link."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    reason = (errors or lines or ["pip failed without a message"])[0]
    return reason if len(reason) <= 300 else reason[:297] + "..."


def _download(reqs: list[str], out: Path, params: BundleParams) -> None:
    """Binary wheels for the target; a pure-Python sdist-only package is built here.

    Some projects (pyspark) publish only an sdist, which ``--only-binary`` refuses. When pip
    names one, it is built into a wheel in OUT (refused unless it is ``none-any``, which
    runs anywhere) and the download is retried, finding it through ``--find-links OUT``.
    """
    target = [f"--platform={p}" for p in params.platforms]
    target += [f"--python-version={params.python_version}", "--implementation=cp"]
    args = ["download", "--only-binary=:all:", *target, "-d", str(out), "--find-links", str(out)]
    built: set[str] = set()
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "pip", *args, *reqs], capture_output=True, text=True
        )
        if done.returncode == 0:
            return
        missing = re.search(r"No matching distribution found for (\S+)", done.stderr)
        where = f"cp{params.python_version} {' '.join(params.platforms)}"
        if not missing or missing.group(1) in built:
            raise BundleError(
                f"bundle: downloading the dependencies for {where}: {_pip_reason(done.stderr)}"
            )
        req = missing.group(1)
        built.add(req)
        before = set(out.glob("*.whl"))
        _pip(["wheel", "--no-deps", "-w", str(out), req], f"building a wheel of {req}")
        platform_bound = [w.name for w in set(out.glob("*.whl")) - before]
        platform_bound = [n for n in platform_bound if not n.endswith("-none-any.whl")]
        if platform_bound:
            raise BundleError(
                f"bundle: {req} has no wheel for {where} and its source builds "
                f"{platform_bound[0]}, which runs only here"
            )


def install_line(extras: Sequence[str]) -> str:
    """The one line install.sh holds: pip may look only in the script's own folder."""
    target = f'"{DIST}[{",".join(extras)}]"' if extras else DIST
    return INSTALL_SH.format(target=target)


def readme_text(params: BundleParams) -> str:
    """What the folder is and the one command to run on the host."""
    extras = f" with extras {', '.join(params.extras)}" if params.extras else ""
    return (
        f"beacon-triage offline bundle{extras}\n"
        f"Built for CPython {params.python_version} on {', '.join(params.platforms)}.\n\n"
        "Every wheel the tool needs is in this folder; no package index is used.\n"
        "On the host, with that Python as `python3` (a venv is best):\n\n"
        "    python3 -m venv ~/beacon-triage && . ~/beacon-triage/bin/activate\n"
        "    sh install.sh\n"
        "    beacon-triage detect FILE... --top 20\n\n"
        "install.sh runs exactly:\n"
        f"    {install_line(params.extras)}"
    )


def build(out: Path, params: BundleParams) -> list[Path]:
    """Write the bundle into OUT; returns the wheels it holds."""
    root = project_root()
    project = read_pyproject(root)
    reqs = requirements(project, params)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"bundle: cannot create {out}: {exc.strerror or exc}") from exc
    _pip(["wheel", "--no-deps", str(root), "-w", str(out)], f"building the {DIST} wheel")
    _download(reqs, out, params)
    (out / "install.sh").write_text(install_line(params.extras), encoding="utf-8")
    (out / "install.sh").chmod(0o755)
    (out / "README.txt").write_text(readme_text(params), encoding="utf-8")
    return sorted(out.glob("*.whl"))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    default=BundleParams.platforms,
    show_default=True,
    help="pip platform tag of the host; repeat for several, best first.",
)
@click.option(
    "--python-version",
    default=BundleParams.python_version,
    show_default=True,
    help="The host's Python, X.Y.",
)
@click.option(
    "--extras", multiple=True, help="Optional-dependency group to include (e.g. spark); repeatable."
)
def main(out_dir: Path, platforms: tuple[str, ...], python_version: str, extras: tuple[str, ...]):
    """Build an offline bundle of beacon-triage and its dependencies in OUT_DIR."""
    names = tuple(e for group in extras for e in group.split(",") if e)
    params = BundleParams(tuple(platforms), python_version, names)
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        target = marker_environment(python_version, params.platforms[0])["python_version"]
        if target != running:
            click.echo(
                f"beacon-triage: warning: pip judges the dependencies' own markers for Python "
                f"{running}, not {target}; build with Python {target} to be exact",
                err=True,
            )
        wheels = build(out_dir, params)
    except BundleError as exc:
        click.echo(f"beacon-triage: error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{out_dir}: {len(wheels)} wheels, install.sh, README.txt")


if __name__ == "__main__":
    main()
