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


def _walk(folder: Path, recursive: bool) -> list[Path]:
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):  # followlinks=False: a link is not entered
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root)
        found += [here / n for n in sorted(names) if not n.startswith(".")]
    return [p for p in found if p.is_file()]


def expand(paths: Sequence[str | Path], recursive: bool = True) -> list[tuple[Path, bool]]:
    """(file, found by listing a folder) for every file ``paths`` name, in order, once."""
    files: list[tuple[Path, bool]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            inside = _walk(path, recursive)
            if not inside:
                raise InputError("directory has no files", file=str(path))
            files += [(p, True) for p in inside]
        elif path.is_file():
            files.append((path, False))
        elif _GLOB_CHARS & set(str(given)):
            matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
            if not matches:
                raise InputError("no files match this pattern", file=str(given))
            files += [(p, False) for p in matches]
        elif path.exists():
            raise InputError("not a regular file", file=str(path))
        else:
            raise InputError("file not found", file=str(path))
    unique: dict[Path, tuple[Path, bool]] = {}
    for file, listed in files:
        unique.setdefault(file.resolve(), (file, listed))
    return list(unique.values())


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
    return ", ".join(f"{n} {_singular(label) if n == 1 else label}" for n, label in parts)


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
