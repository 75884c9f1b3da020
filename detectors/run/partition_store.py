"""Device partitions kept between runs: a second run on the same inputs reuses them.

Writing the partitions is a third of a 100M-event run (every row parsed, hashed and
written once more). An analyst reruns the same export with other parameters, an
allow-list; none of that changes the canonical events, so the set
written by the first run is kept in the cache folder and found again by its key:

* every input file's resolved path, size and modification time (a file changed,
  replaced or touched is another key), and whether a folder listed it;
* the partition count, ``--source-format``, the ``[mapping]`` section, and the
  loaders' and this layout's versions (``LOADER_VERSION``, ``LAYOUT_VERSION``);
* the ``[network]`` settings: partitions hold placed events, keyed by the placed
  device (``partition_place.place_partitions``), so other settings are another set.

The key is taken before the files are read and again after: a file that changed while
it was partitioned is never kept, so no run is served rows its file no longer holds.
A set is written under a temporary name and renamed when complete (a killed run leaves
no set that looks whole). Folders are 0700 and files 0600: the set is the incident's
traffic. Only the ``KEEP_SETS`` most recently used sets are kept (each is about the
size of the input as Parquet).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from detectors.base.atomic import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, private_dir
from detectors.base.errors import InputError
from detectors.load.cache import LOADER_VERSION

LAYOUT_VERSION = 3  # bump when the partitions' layout or columns change
KEEP_SETS = 2
MANIFEST = "manifest.json"
_SET = "set-"
# The side tables of ``Partitions``, kept beside the partitions (one list for both ways).
SIDE_TABLES = ("names", "app", "device_info", "dns")


def set_key(
    paths: Sequence[str | Path],
    count: int,
    source_format: str | None,
    mapping: Mapping[str, str] | None,
    network: Mapping[str, object] | None = None,
) -> str | None:
    """The key of the partitions of ``paths`` as the files are now, placed with the
    ``[network]`` settings ``network`` (None: not placed); None if a file cannot be read
    (the normal load reports it)."""
    from detectors.load import _expand

    try:
        files = []
        for path, listed in _expand(paths):
            stat = path.stat()
            files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns, listed])
    except (OSError, InputError):  # the normal load reports it
        return None
    document = {
        "files": files,
        "count": count,
        "format": source_format,
        "mapping": sorted((mapping or {}).items()),
        "loader": LOADER_VERSION,
        "layout": LAYOUT_VERSION,
        "network": network,
    }
    text = json.dumps(document, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class PartitionStore:
    """Complete partition sets under ``root`` (``<cache>/partitions``), one per key."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{_SET}{key}"

    def find(self, key: str) -> dict[str, object] | None:
        """The kept set ``key`` (its manifest and side tables), or None."""
        folder = self.path(key)
        try:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            side: dict[str, object] = {
                name: pl.read_parquet(folder / f"{name}.parquet")
                if (folder / f"{name}.parquet").exists()
                else None
                for name in SIDE_TABLES
            }
        except (OSError, ValueError, pl.exceptions.PolarsError):
            return None
        now = time.time_ns()
        with contextlib.suppress(OSError):  # most recently used: kept longest
            os.utime(folder / MANIFEST, ns=(now, now))
        return {**side, "directory": folder, **manifest}

    def keep(
        self,
        directory: Path,
        key: str,
        side: Mapping[str, pl.DataFrame | None],
        count: int,
        files: Sequence[str],
        warnings: Sequence[str],
        extra: Mapping[str, object] | None = None,
    ) -> Path | None:
        """Store the partitions written in ``directory`` (under ``root``) as set ``key``,
        with ``extra`` (JSON) in its manifest; the set's folder, or None when it could not
        be stored (the run goes on)."""
        target = self.path(key)
        try:
            for name, frame in side.items():
                if frame is not None:
                    frame.write_parquet(directory / f"{name}.parquet")
            manifest = {
                **(extra or {}),
                "count": count,
                "files": list(files),
                "warnings": list(warnings),
            }
            (directory / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
            _make_private(directory)
            if target.exists():  # another run kept the same set first
                shutil.rmtree(target, ignore_errors=True)
            os.rename(directory, target)
        except OSError:
            return None
        self.prune(keep=target)
        return target

    def sets(self) -> list[Path]:
        """Complete sets, most recently used first."""
        if not self.root.is_dir():
            return []
        found: list[tuple[int, Path]] = []
        for folder in self.root.iterdir():
            with contextlib.suppress(OSError):
                if folder.name.startswith(_SET):
                    found.append(((folder / MANIFEST).stat().st_mtime_ns, folder))
        return [folder for _, folder in sorted(found, reverse=True)]

    def prune(self, keep: Path) -> None:
        """Remove all but the ``KEEP_SETS`` most recently used sets (never ``keep``)."""
        others = [folder for folder in self.sets() if folder != keep]
        for folder in others[KEEP_SETS - 1 :]:
            shutil.rmtree(folder, ignore_errors=True)


def _make_private(directory: Path) -> None:
    """0700 folders and 0600 files (polars writes with the umask's modes)."""
    for folder, _, names in os.walk(directory):
        os.chmod(folder, PRIVATE_DIR_MODE)
        for name in names:
            os.chmod(Path(folder) / name, PRIVATE_FILE_MODE)


def store_root(cache: Path) -> Path:
    """``<cache>/partitions``, created 0700."""
    return private_dir(cache / "partitions")
