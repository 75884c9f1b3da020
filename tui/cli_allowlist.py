"""``beacon-triage allowlist``: add, list, remove and check entries without the TUI.

Every edit goes through ``detectors.curate.allowlist.AllowList``, so comments and hand edits
in the file survive, the write is atomic with a ``.bak``, and a file that is not valid
is reported (one line, exit 1) and never rewritten. Entries are numbered from 1 as
``allowlist list`` shows them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from detectors.base.errors import InputError
from detectors.base.sanitize import visible

if TYPE_CHECKING:  # imported when a command runs: ``detect`` need not load tomlkit
    from detectors.curate.allowlist import AllowEntry, AllowList


def _echo(line: str, *, err: bool = False) -> None:
    """Every line these commands print: file names, keys and values come from files an
    attacker may have written into (``\\u001b]0;TITLE\\u0007`` would retitle the
    terminal), so the whole line goes through the same ``visible`` as ``detect``'s."""
    click.echo(visible(line, limit=None), err=err)


def _fail(exc: InputError) -> NoReturn:
    _echo(f"beacon-triage: error: {exc}", err=True)
    sys.exit(1)


def _path(file_path: str | None) -> Path:
    if file_path:
        return Path(file_path)
    from detectors.run.setup import load_config

    return load_config(None).allowlist_path()


file_option = click.option(
    "--file",
    "file_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Allow-list TOML (default: the path in your config, or the config dir).",
)


def _open(path: Path) -> AllowList:
    from detectors.curate.allowlist import AllowList

    return AllowList.load(path)


def _flags(entry: AllowEntry) -> str:
    flags = []
    if not entry.enabled:
        flags.append("disabled")
    if entry.expires is not None:
        flags.append(f"{'expired' if entry.is_expired() else 'expires'} {entry.expires}")
    return f"  [{', '.join(flags)}]" if flags else ""


def _listing(entry: AllowEntry) -> str:
    keys = " ".join(f"{k}={visible(v)}" for k, v in entry.match_fields().items())
    who = f" (added by {visible(entry.added_by)})" if entry.added_by else ""
    return f"{entry.number:>3}. {keys}: {visible(entry.reason)}{who}{_flags(entry)}"


@click.group("allowlist")
def allowlist() -> None:
    """Edit and check the allow-list (comments and hand edits in it are kept)."""


@allowlist.command("add")
@file_option
@click.option("--device", help="Device name (case-insensitive).")
@click.option("--process", help="Process file name (case-insensitive), e.g. MsMpEng.exe.")
@click.option("--remote-ip", help="Address or CIDR, IPv4 or IPv6.")
@click.option("--remote-port", help="Destination port.")
@click.option("--domain", help="Exact name, or *.example.com (also matches example.com).")
@click.option("--detector", help="Only candidates this detector found.")
@click.option("--asn", help="AS number, e.g. 13335 or AS13335 (needs mmdb in the config).")
@click.option("--org", help="AS organisation, whole name (needs mmdb in the config).")
@click.option("--expires", help="Last day the entry applies (YYYY-MM-DD).")
@click.option("--reason", required=True, help="Why this traffic is fine (required).")
def add_command(file_path: str | None, **fields: str | None) -> None:
    """Append an entry; at least one match option is required."""
    try:
        path = _path(file_path)
        allow = _open(path)
        allow.add({k: v for k, v in fields.items() if v is not None})
        allow.save()
    except InputError as exc:
        _fail(exc)
    _echo(f"added {_listing(allow.entries[-1]).strip()} to {path}")


@allowlist.command("list")
@file_option
def list_command(file_path: str | None) -> None:
    """Print the entries, numbered, with expired and disabled ones flagged."""
    try:
        path = _path(file_path)
        allow = _open(path)
    except InputError as exc:
        _fail(exc)
    if not allow.entries:
        _echo(f"{path}: no entries")
    for entry in allow.entries:
        _echo(_listing(entry))


@allowlist.command("remove")
@file_option
@click.argument("number", type=int)
def remove_command(file_path: str | None, number: int) -> None:
    """Delete entry NUMBER (as ``allowlist list`` numbers it) and its comment lines."""
    try:
        path = _path(file_path)
        allow = _open(path)
        entry = allow.remove(number - 1)
        allow.save()
    except InputError as exc:
        _fail(exc)
    _echo(f"removed {_listing(entry).strip()} from {path}")


@allowlist.command("check")
@file_option
def check_command(file_path: str | None) -> None:
    """Validate the file: exit 0 if every entry is valid, else 1 with the error."""
    try:
        path = _path(file_path)
        if not path.exists():
            raise InputError("allow-list file not found", file=str(path))
        allow = _open(path)
    except InputError as exc:
        _fail(exc)
    for entry in allow.expired():
        _echo(
            f"beacon-triage: warning: {path}: line {entry.line}: entry #{entry.number} "
            f"expired on {entry.expires} and no longer applies",
            err=True,
        )
    disabled = sum(not e.enabled for e in allow.entries)
    expired = len(allow.expired())
    _echo(f"{path}: {len(allow.entries)} entries OK ({disabled} disabled, {expired} expired)")
