"""A cache of loaded files, so that opening a big text export a second time is fast.

Parsing a multi-gigabyte CSV or JSON export (text to timestamps, JSON fields, IP
normalisation) costs far more than reading the same canonical rows back from Parquet.
After a text file is loaded, its canonical tables are written as Parquet under
``config.cache_dir()``; the next load of the same file reads them instead.

- An entry is keyed by the file's absolute path, size and modification time (ns), the
  format it was read as, the column mapping, and ``LOADER_VERSION`` with the canonical
  schema: change any of them and the old entry is never read again (eviction removes it).
- Entries are directories written under a temporary name and renamed into place, so a
  reader never sees half an entry. Each Parquet part's SHA-256 is recorded and checked
  before polars reads it (a damaged page can crash polars' reader); an entry that is
  incomplete, unreadable or fails its check is deleted and the file is loaded afresh.
- The cache is bounded (``max_bytes``, 2 GiB by default): after each write the least
  recently used entries go until the rest fit; an entry larger than the bound is not
  written. Files under ``min_file_bytes`` (8 MiB), and files that loaded in under
  ``min_load_seconds`` (1.5 s; a million CSV rows take 0.9 s), are not cached: reading
  them again costs about what writing the copy would.
- Parquet inputs are not cached (``detectors.load.CACHED_FORMATS``): reading the copy
  back saved a fifth of a 10M-row run, and writing it cost about as much.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.atomic import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, private_dir
from detectors.base.config import (
    CacheSettings,
    cache_dir,
)
from detectors.load.common import LoadedFile, read_errors

LOADER_VERSION = 3  # bump when any loader's output changes: every old entry goes stale
WRITE_NOW, WRITE_IN_BACKGROUND, WRITE_LATER = "now", "background", "later"
WRITE_MODES = (WRITE_NOW, WRITE_IN_BACKGROUND, WRITE_LATER)
ENTRIES = "loads"
META = "meta.json"
PARTS = ("events", "names", "app", "device_info", "dns")
_TMP = ".tmp-"
STALE_TMP_S = 3600.0  # a temporary entry this old belongs to a writer that died
# What reading a damaged entry raises, besides the readers' errors: a meta.json gone wrong.
_DAMAGED: tuple[type[BaseException], ...] = (ValueError, KeyError, TypeError)


@dataclass(frozen=True)
class Entry:
    """One cached file on disk: its directory, size in bytes and last use (ns)."""

    path: Path
    size: int
    last_used_ns: int


def _schema_signature() -> str:
    return ";".join(f"{name}:{dtype}" for name, dtype in S.EVENT_SCHEMA.items())


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _entry_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


class LoadCache:
    """Canonical tables of loaded text files, as Parquet, bounded, least recently used out."""

    def __init__(self, settings: CacheSettings | None = None, write: str = WRITE_NOW) -> None:
        """``write``: when a new entry is written. ``WRITE_NOW`` before ``load`` returns;
        ``WRITE_IN_BACKGROUND`` in a thread while the caller goes on (the TUI: the user
        is busy reading); ``WRITE_LATER`` when ``finish_writes`` is called (the CLI,
        once the answer is printed: a write beside the detectors slowed both)."""
        if write not in WRITE_MODES:
            raise ValueError(f"write must be one of {WRITE_MODES}")
        self.settings = settings or CacheSettings()
        self.write = write
        base = self.settings.directory or cache_dir()
        self.root = Path(base) / ENTRIES

    # --- keys ---------------------------------------------------------------------------

    def key(self, path: Path, fmt: str, mapping: Mapping[str, str] | None) -> str:
        """The entry name for ``path`` as it is now (size and mtime are part of it)."""
        stat = path.stat()
        identity = {
            "path": str(path.resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "format": fmt,
            "mapping": sorted((mapping or {}).items()),
            "loader": LOADER_VERSION,
            "schema": _schema_signature(),
        }
        text = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def wants(self, path: Path) -> bool:
        """Whether ``path`` is big enough to be worth caching."""
        return self.settings.enabled and path.stat().st_size >= self.settings.min_file_bytes

    # --- read ---------------------------------------------------------------------------

    def fetch(self, path: Path, fmt: str, mapping: Mapping[str, str] | None) -> LoadedFile | None:
        """The cached tables of ``path``, or None (a damaged entry is deleted)."""
        return self._fetch(self.key(path, fmt, mapping), path)

    def _fetch(self, key: str, path: Path) -> LoadedFile | None:
        entry = self.root / key
        if not entry.is_dir():
            return None
        try:
            loaded = self._read(entry)
        except (*read_errors(), *_DAMAGED):
            loaded = None
        if loaded is None:
            shutil.rmtree(entry, ignore_errors=True)
            return None
        self._touch(entry)
        if loaded.events is not None:  # the name the user gave this time
            named = loaded.events.with_columns(pl.lit(str(path)).alias(S.SOURCE_FILE))
            loaded.events = named.select(list(S.EVENT_SCHEMA))
        return loaded

    def _read(self, entry: Path) -> LoadedFile | None:
        meta = json.loads((entry / META).read_text(encoding="utf-8"))
        parts: dict[str, Any] = {}
        for name, digest in meta["parts"].items():
            if name not in PARTS:
                return None
            file = entry / f"{name}.parquet"
            if _digest(file) != digest:
                return None
            parts[name] = pl.read_parquet(file)
        return LoadedFile(**parts, warnings=[str(w) for w in meta["warnings"]])

    @staticmethod
    def _touch(entry: Path) -> None:
        now = time.time_ns()
        with contextlib.suppress(OSError):
            os.utime(entry, ns=(now, now))

    # --- write --------------------------------------------------------------------------

    def _store(self, key: str, path: Path, loaded: LoadedFile) -> None:
        """Write ``loaded`` as entry ``key``; failures only mean no cache."""
        with _WRITING:  # one entry at a time: writes and evictions never interleave
            self._write(key, path, loaded)

    def _write(self, key: str, path: Path, loaded: LoadedFile) -> None:
        tmp = self.root / f"{_TMP}{key}-{uuid.uuid4().hex[:8]}"
        try:
            # The copy is the incident's traffic: folders 0700, files 0600, so other
            # users of a shared jump host cannot read it (polars writes with the umask).
            private_dir(self.root)
            with contextlib.suppress(OSError):  # ours: made 0755 by an older version
                os.chmod(self.root, PRIVATE_DIR_MODE)
            os.mkdir(tmp, PRIVATE_DIR_MODE)
            digests = {}
            for name in PARTS:
                frame = getattr(loaded, name)
                if frame is None:
                    continue
                if name == "events":  # the name the file is opened by is added on reading
                    frame = frame.drop(S.SOURCE_FILE)
                file = tmp / f"{name}.parquet"
                # Encoding is the cost (5 s of CPU for 10M rows, beside the detectors):
                # big row groups and no statistics (never read back) cut it by a third.
                frame.write_parquet(
                    file,
                    compression="zstd",
                    compression_level=1,
                    row_group_size=1 << 20,
                    statistics=False,
                )
                os.chmod(file, PRIVATE_FILE_MODE)
                digests[name] = _digest(file)
            meta = {"source": str(path.resolve()), "parts": digests, "warnings": loaded.warnings}
            fd = os.open(tmp / META, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(meta))
            if _entry_size(tmp) > self.settings.max_bytes:
                return
            try:
                tmp.rename(self.root / key)
            except OSError:  # another process stored the same file first
                return
            self._touch(self.root / key)
        except (OSError, pl.exceptions.PolarsError):
            return
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.evict()

    def load(
        self,
        path: Path,
        fmt: str,
        mapping: Mapping[str, str] | None,
        loader: Callable[[], LoadedFile],
    ) -> LoadedFile:
        """The cached tables of ``path``, else ``loader()``'s, stored for next time."""
        if not self.wants(path):
            return loader()
        key = self.key(path, fmt, mapping)  # before reading: a file changed meanwhile
        cached = self._fetch(key, path)  # gets another key, never this copy
        if cached is not None:
            return cached
        began = time.perf_counter()
        loaded = loader()
        if time.perf_counter() - began < self.settings.min_load_seconds:
            return loaded
        if self.write == WRITE_IN_BACKGROUND:
            # Encoding 10M rows takes ~5 s of CPU: the caller need not wait for it.
            # Not a daemon: the interpreter finishes the write before it exits.
            writer = threading.Thread(
                target=self._store, args=(key, path, loaded), name="cache-writer"
            )
            writer.start()
            _WRITERS.append(writer)
        elif self.write == WRITE_LATER:
            _LATER.append(partial(self._store, key, path, loaded))
        else:
            self._store(key, path, loaded)
        return loaded

    # --- housekeeping ---------------------------------------------------------------------

    def _remove_stale_writes(self) -> None:
        if not self.root.is_dir():
            return
        oldest = time.time() - STALE_TMP_S
        for path in self.root.iterdir():
            with contextlib.suppress(OSError):
                if path.name.startswith(_TMP) and path.stat().st_mtime < oldest:
                    shutil.rmtree(path, ignore_errors=True)

    def entries(self) -> list[Entry]:
        """Complete entries, least recently used first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            if not path.is_dir() or path.name.startswith(_TMP):
                continue
            try:
                found.append(Entry(path, _entry_size(path), path.stat().st_mtime_ns))
            except OSError:
                continue
        return sorted(found, key=lambda e: (e.last_used_ns, e.path.name))

    def evict(self) -> list[Path]:
        """Delete least recently used entries until the rest fit in ``max_bytes``.

        Half-written entries left by a process that was killed while writing are
        deleted too, once they are older than any write could take (``STALE_TMP_S``).
        """
        self._remove_stale_writes()
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= self.settings.max_bytes:
                break
            shutil.rmtree(entry.path, ignore_errors=True)
            total -= entry.size
            removed.append(entry.path)
        return removed


_WRITING = threading.Lock()
_WRITERS: list[threading.Thread] = []
_LATER: list[Callable[[], None]] = []


def finish_writes() -> None:
    """Write the entries left for later, and wait for those written in the background."""
    while _LATER:
        _LATER.pop(0)()
    while _WRITERS:
        _WRITERS.pop().join()


_configured: CacheSettings | None = CacheSettings()


def configure(settings: CacheSettings | None) -> None:
    """Set the cache every load uses unless told otherwise (None: no cache).

    The CLI calls this for ``open --no-cache`` and ``[cache]`` settings, so the TUI's
    loads follow them without passing a cache through every call.
    """
    global _configured
    _configured = settings


def default_cache() -> LoadCache | None:
    """The configured cache, or None when caching is off."""
    if _configured is None or not _configured.enabled:
        return None
    return LoadCache(_configured, write=WRITE_IN_BACKGROUND)
