"""Loaders: files of any supported format into one canonical ``Loaded``.

Public entry point: ``load_paths(paths, source_format=None, mapping=None, progress=...)``.
Each path may be a file, a directory (its files, sorted, not recursive, dotfiles
skipped; files in no supported format skipped with a warning) or a glob; formats may
be mixed and are told apart by content (``sniff``) unless ``source_format`` forces one
for every file. Events, names and app rows of all files are concatenated (events that
repeat exactly, as overlapping exports do, are kept once, with a warning); DeviceInfo
rows go to ``Loaded.device_info``.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.load.common import LoadedFile, reading
from detectors.load.dataset import Loaded
from detectors.load.deviceinfo import load_deviceinfo
from detectors.load.ecs import load_ecs
from detectors.load.mapped_csv import load_mapped_csv
from detectors.load.mde import load_mde
from detectors.load.sniff import (
    CSV_MAPPED,
    DEVICEINFO,
    ECS,
    MDE_CSV,
    MDE_JSON,
    MDE_JSONL,
    MDE_PARQUET,
    SOURCE_FORMATS,
    ZEEK_JSON,
    ZEEK_TSV,
    read_head,
    sniff_format,
)
from detectors.load.zeek import load_zeek

if TYPE_CHECKING:
    from detectors.load.cache import LoadCache

__all__ = [
    "SOURCE_FORMATS",
    "expand_paths",
    "format_of",
    "load_file",
    "load_paths",
    "sniff_format",
]

_GLOB_CHARS = set("*?[")

Loader = Callable[[Path, Mapping[str, str] | None], LoadedFile]

# Formats whose conversion the load cache saves: text parsing. Defender Parquet is not
# cached: its copy read back only a fifth faster, and writing it cost as much again.
CACHED_FORMATS = frozenset(
    {MDE_CSV, MDE_JSON, MDE_JSONL, DEVICEINFO, ZEEK_TSV, ZEEK_JSON, ECS, CSV_MAPPED}
)

_LOADERS: dict[str, Loader] = {
    MDE_CSV: lambda p, m: load_mde(p, "csv"),
    MDE_JSON: lambda p, m: load_mde(p, "json"),
    MDE_JSONL: lambda p, m: load_mde(p, "jsonl"),
    MDE_PARQUET: lambda p, m: load_mde(p, "parquet"),
    DEVICEINFO: lambda p, m: load_deviceinfo(p),
    ZEEK_TSV: lambda p, m: load_zeek(p, "tsv"),
    ZEEK_JSON: lambda p, m: load_zeek(p, "json"),
    ECS: lambda p, m: load_ecs(p),
    CSV_MAPPED: lambda p, m: load_mapped_csv(p, m or {}),
}


def _expand(paths: Sequence[str | Path]) -> list[tuple[Path, bool]]:
    """(file, found by listing a directory) for every file ``paths`` name, in order, once."""
    files: list[tuple[Path, bool]] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
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


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files named by ``paths`` (files, directories, globs), in order, each once."""
    return [path for path, _ in _expand(paths)]


def format_of(
    path: Path, source_format: str | None = None, mapping: Mapping[str, str] | None = None
) -> str:
    """The format a file will be loaded as; InputError if it cannot be loaded at all."""
    if not read_head(path, 4096).strip():
        raise InputError("file is empty", file=str(path))
    fmt = source_format or sniff_format(path)
    if fmt == CSV_MAPPED and not mapping:
        raise InputError(
            "CSV columns not recognised as a supported format; add a [mapping] section to "
            "the config naming at least its timestamp and remote_ip columns",
            file=str(path),
        )
    return fmt


def load_file(
    path: Path, source_format: str | None = None, mapping: Mapping[str, str] | None = None
) -> LoadedFile:
    """One file in canonical form, its format sniffed unless ``source_format`` is given."""
    with reading(path):
        return _LOADERS[format_of(path, source_format, mapping)](path, mapping)


def load_paths(
    paths: Sequence[str | Path],
    source_format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress = NULL_PROGRESS,
    cache: LoadCache | bool | None = True,
) -> Loaded:
    """Load every file named by ``paths`` into one ``Loaded`` (see the module docstring).

    A file named explicitly (or by a glob) in an unrecognised format is an error; one
    found by listing a directory is skipped with a warning (a README beside the exports
    should not stop the run), unless nothing in the listing loads at all. Big text files
    go through ``cache`` (True: the configured ``detectors.load.cache``; False/None: none).
    """
    from detectors.load.cache import default_cache

    store = default_cache() if cache is True else (cache or None)
    if source_format is not None and source_format not in SOURCE_FORMATS:
        raise InputError(
            f"unknown source format '{source_format}'; choose one of: " + ", ".join(SOURCE_FORMATS),
            field="source-format",
        )
    if not paths:
        raise InputError("no input files given")
    files = _expand(paths)
    progress.report("load", 0.0, f"{len(files)} files")
    loaded: list[LoadedFile] = []
    used: list[Path] = []
    warnings: list[str] = []
    skipped: InputError | None = None
    for done, (path, listed) in enumerate(files, start=1):
        try:
            with reading(path):
                fmt = format_of(path, source_format, mapping)
        except InputError as error:
            if not listed:
                raise
            skipped = skipped or error
            warnings.append(f"{path}: skipped: {error.message}")
            progress.report("load", done / len(files), f"{path.name}: skipped")
            continue
        with reading(path):  # a corrupt file is the user's problem to hear about, in one line
            if store is not None and fmt in CACHED_FORMATS:
                part = store.load(path, fmt, mapping, partial(_LOADERS[fmt], path, mapping))
            else:
                part = _LOADERS[fmt](path, mapping)
        loaded.append(part)
        used.append(path)
        warnings += [f"{path}: {w}" for w in part.warnings]
        progress.report("load", done / len(files), f"{path.name}: {part.rows} rows")
    if skipped is not None and not loaded:
        raise skipped
    events, duplicates = _without_duplicates(_concat([p.events for p in loaded], S.EVENT_SCHEMA))
    if duplicates:
        warnings.append(f"{duplicates} duplicate event rows dropped (identical in every field)")
    return Loaded(
        events=events,
        names=_concat([p.names for p in loaded], S.NAMES_SCHEMA).unique(maintain_order=True),
        app=_concat([p.app for p in loaded], S.APP_SCHEMA),
        device_info=_device_info(loaded),
        files=[str(f) for f in used],
        warnings=warnings,
    )


def _concat(frames: list[pl.DataFrame | None], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    present = [f for f in frames if f is not None]
    if not present:
        return pl.DataFrame(schema=dict(schema))
    return pl.concat(present, how="vertical")


def _without_duplicates(events: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Events with exact repeats dropped (the first kept), and how many were dropped.

    Overlapping exports, or one export saved twice under two names, repeat rows; kept,
    they would double counts and bucket variances, so results would depend on how the
    data was cut into files. Two real connections never agree in every field (the local
    port, the microsecond), so only repeats go. ``source_file`` is not compared.
    """
    fields = [c for c in events.columns if c != S.SOURCE_FILE]
    # Repeats share their microsecond timestamp, which is almost unique on its own: only
    # rows with a shared timestamp are compared field by field (a full unique() over
    # millions of rows and 18 columns costs ~10x).
    stamps = events.get_column(S.TIMESTAMP)
    ordered = stamps.sort()  # a parallel sort finds repeated stamps ~5x faster than a hash
    repeated = ordered.filter(ordered.diff().dt.total_microseconds() == 0)
    if repeated.is_empty() and stamps.null_count() < 2:
        return events, 0
    shared = stamps.is_in(repeated.unique().implode()).fill_null(stamps.null_count() > 1)
    suspects = events.with_row_index("__row").filter(shared)
    repeats = suspects.filter(~pl.struct(fields).is_first_distinct()).get_column("__row")
    if repeats.is_empty():
        return events, 0
    kept = events.with_row_index("__row").filter(~pl.col("__row").is_in(repeats.implode()))
    return kept.drop("__row"), repeats.len()


def _device_info(loaded: list[LoadedFile]) -> pl.DataFrame | None:
    frames = [p.device_info for p in loaded if p.device_info is not None]
    return pl.concat(frames, how="vertical") if frames else None
