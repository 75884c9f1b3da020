"""Which files the user's paths name: files, globs, and folders read recursively.

A folder is walked in sorted order, depth first, skipping dotfiles and dot-folders
(``.git``, editor backups) and never following a linked folder out of the tree the
user named. ``recursive=False`` stops at the folder's own files.

Files found in a folder that hold nothing the engine reads (a README, Zeek's
stats/weird logs) are skipped and summarised in one line by ``skip_summary``, so a
month of rotated logs does not bury the one warning that matters.
"""

from __future__ import annotations

import glob
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from detectors.base.errors import InputError

_GLOB_CHARS = set("*?[")


def _walk(folder: Path, recursive: bool) -> list[tuple[Path, tuple[int, int]]]:
    """Files under ``folder`` with their (device, inode), sorted, depth first.

    ``os.scandir`` gives the type and inode of each entry from the directory listing
    itself, so a month of hourly logs costs one system call per folder, not per file.
    """
    found: list[tuple[Path, tuple[int, int]]] = []
    pending = [folder]
    while pending:
        here = pending.pop()
        device = here.stat().st_dev
        with os.scandir(here) as listing:
            entries = sorted(
                (e for e in listing if not e.name.startswith(".")), key=lambda e: e.name
            )
        for entry in entries:
            if entry.is_file():  # follows a link to a file, as naming it would
                key = (device, entry.inode()) if not entry.is_symlink() else _key(entry.path)
                found.append((Path(entry.path), key))
        if recursive:  # a linked folder is not entered: it may lead out of the tree
            subfolders = [e for e in entries if e.is_dir(follow_symlinks=False)]
            pending += [Path(e.path) for e in reversed(subfolders)]
    return found


def _key(path: str | Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def expand(paths: Sequence[str | Path], recursive: bool = True) -> list[tuple[Path, bool]]:
    """(file, found by listing a folder) for every file ``paths`` name, in order, once."""
    files: list[tuple[Path, bool, tuple[int, int]]] = []
    for given in paths:
        path = Path(given).expanduser()
        try:
            files += _files_named(given, path, recursive)
        except OSError as exc:  # an unreadable folder: one line, not a traceback
            reason = exc.strerror or type(exc).__name__
            raise InputError(f"cannot read: {reason}", file=str(exc.filename or path)) from None
    unique: dict[tuple[int, int], tuple[Path, bool]] = {}  # one file named twice: read once
    for file, listed, key in files:
        unique.setdefault(key, (file, listed))
    return list(unique.values())


def _files_named(
    given: str | Path, path: Path, recursive: bool
) -> list[tuple[Path, bool, tuple[int, int]]]:
    """The files one argument names (a file, a folder's files, a glob's matches)."""
    files: list[tuple[Path, bool, tuple[int, int]]] = []
    if path.is_dir():
        inside = _walk(path, recursive)
        if not inside:
            raise InputError("directory has no files", file=str(path))
        files += [(p, True, key) for p, key in inside]
    elif path.is_file():
        files.append((path, False, _key(path)))
    elif _GLOB_CHARS & set(str(given)):
        matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
        if not matches:
            raise InputError("no files match this pattern", file=str(given))
        files += [(p, False, _key(p)) for p in matches]
    elif path.exists():
        raise InputError("not a regular file", file=str(path))
    else:
        raise InputError("file not found", file=str(path))
    return files


# Groups whose files are named in the summary: the user may have meant them as data.
UNEXPLAINED = ("in no supported format", "empty", "binary or UTF-16")


def skip_label(path: Path, reason: str) -> str:
    """The group a skipped file is counted in: a README by name, else by why."""
    stem = path.name.split(".")[0].upper()
    if stem in {"README", "LICENSE", "NOTES", "CHANGELOG"}:
        return stem
    if reason.startswith("file is empty"):
        return "empty"
    if reason.startswith(("binary", "UTF-16")):
        return "binary or UTF-16"
    return "in no supported format"


def count_summary(items: Sequence[tuple[Path, str]]) -> str:
    """``300 Zeek stats/capture_loss/weird logs, 2 README``: files counted by group."""
    counts = Counter(label for _, label in items)
    zeek = {label: n for label, n in counts.items() if label.startswith("Zeek ")}
    parts: list[tuple[int, str]] = []
    if zeek:
        kinds = "/".join(sorted(label[5:].removesuffix(" logs") for label in zeek))
        parts.append((sum(zeek.values()), f"Zeek {kinds} logs"))
    parts += [(n, label) for label, n in counts.items() if label not in zeek]
    parts.sort(key=lambda item: (-item[0], item[1]))
    return ", ".join(
        f"{n} {_singular(label) if n == 1 else label}{_examples(items, label)}"
        for n, label in parts
    )


def _examples(items: Sequence[tuple[Path, str]], label: str) -> str:
    """`` (notes.txt, truth.csv, ...)`` for files skipped for no reason a name explains."""
    if label not in UNEXPLAINED:
        return ""
    names = [path.name for path, group in items if group == label]
    return f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"


def _singular(label: str) -> str:
    """``files without rows`` → ``file without rows``, ``Zeek weird logs`` → ``... log``."""
    if label.startswith("Zeek "):
        return label.removesuffix("logs") + "log" if label.endswith("logs") else label
    return re.sub(r"\b(file|log)s\b", r"\1", label, count=1)


def skip_summary(skipped: Sequence[tuple[Path, str]]) -> str | None:
    """``skipped 412 files: 300 Zeek stats/weird logs, 2 README`` (None when none)."""
    if not skipped:
        return None
    total = len(skipped)
    return f"skipped {total} file{'s' if total != 1 else ''}: {count_summary(skipped)}"


def found_instead(held: Sequence[tuple[Path, str]]) -> str:
    """What the paths held, for the error when none of it is connection events."""
    return count_summary(held) if held else "nothing readable"
