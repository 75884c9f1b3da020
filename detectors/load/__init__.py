"""Loaders: files of any supported format into one canonical ``Loaded``.

Public entry point: ``load_paths(paths, source_format=None, mapping=None, progress=...)``.
Each path may be a file, a directory (walked recursively unless ``recursive=False``,
dotfiles and dot-folders skipped; files holding nothing usable counted in one warning
line, see ``paths``) or a glob; formats may be mixed and are told apart by content
(``sniff``) unless ``source_format`` forces one for every file. Zeek TSV logs of one
kind with the same header (rotated hourly logs) are read ``BATCH_FILES`` to a scan.
Events, names and app rows of all files are concatenated (events that repeat exactly,
as overlapping exports do, are kept once, with a warning); DeviceInfo rows go to
``Loaded.device_info``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError, UsageError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.load.common import LoadedFile, reading
from detectors.load.dataset import Loaded
from detectors.load.deviceinfo import load_deviceinfo
from detectors.load.ecs import load_ecs
from detectors.load.mapped_csv import load_mapped_csv
from detectors.load.mde import load_mde
from detectors.load.paths import expand, found_instead, skip_label, skip_summary
from detectors.load.sniff import (
    CSV_MAPPED,
    DEVICEINFO,
    ECS,
    HEAD_BYTES,
    MDE_CSV,
    MDE_JSON,
    MDE_JSONL,
    MDE_PARQUET,
    SOURCE_FORMATS,
    WINDOWS_EVTX,
    WINDOWS_JSON,
    ZEEK_JSON,
    ZEEK_TSV,
    read_head,
    sniff_format,
)
from detectors.load.windows import load_windows
from detectors.load.zeek import load_zeek, load_zeek_many, log_kind, log_of_header, used_log
from detectors.load.zeek_tsv import ZeekHeader, header_of, repeats_other_fields

if TYPE_CHECKING:
    from detectors.load.cache import LoadCache

_ZEEK = (ZEEK_TSV, ZEEK_JSON)

__all__ = [
    "SOURCE_FORMATS",
    "expand_paths",
    "format_of",
    "load_file",
    "load_paths",
    "sniff_format",
]

Loader = Callable[[Path, Mapping[str, str] | None], LoadedFile]

# Formats whose conversion the load cache saves: text parsing. Defender Parquet is not
# cached: its copy read back only a fifth faster, and writing it cost as much again.
CACHED_FORMATS = frozenset(
    {MDE_CSV, MDE_JSON, MDE_JSONL, DEVICEINFO, ZEEK_TSV, ZEEK_JSON, ECS, CSV_MAPPED}
)
# Rotated logs of one kind are read this many files to a scan: one polars pipeline per
# batch instead of ~20 per file (a day of hourly logs of 24 sensors, or a month of one
# sensor's, is one scan), and still a progress report every few seconds.
BATCH_FILES = 2000
_KEEP_BYTES = 256 << 20  # file text the planning read may keep for the batch read

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
    WINDOWS_JSON: lambda p, m: load_windows(p, "json"),
    WINDOWS_EVTX: lambda p, m: load_windows(p, "evtx"),
}


def _expand(paths: Sequence[str | Path], recursive: bool = True) -> list[tuple[Path, bool]]:
    """(file, found by listing a directory) for every file ``paths`` name, in order, once."""
    return expand(paths, recursive)


def expand_paths(paths: Sequence[str | Path], recursive: bool = True) -> list[Path]:
    """Files named by ``paths`` (files, directories, globs), in order, each once."""
    return [path for path, _ in expand(paths, recursive)]


def format_of(
    path: Path,
    source_format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    head: bytes | None = None,
) -> str:
    """The format a file will be loaded as; InputError if it cannot be loaded at all.

    ``head``: the file's first ``HEAD_BYTES`` when the caller has read them already.
    """
    if not (read_head(path, 4096) if head is None else head[:4096]).strip():
        raise InputError("file is empty", file=str(path))
    fmt = source_format or sniff_format(path, head)
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


@dataclass
class _Plan:
    """One file to read (or a batch of rotated logs read in one scan)."""

    paths: list[Path]
    fmt: str
    log: str = ""  # the Zeek log kind (conn, open_conn, dns...), "" for other formats
    header: ZeekHeader | None = None
    # each file's whole text when the planning read already held all of it (small
    # rotated logs), so the batch does not read it again; None: read it then
    contents: list[bytes | None] = field(default_factory=list)


def _plan(
    files: list[tuple[Path, bool]],
    source_format: str | None,
    mapping: Mapping[str, str] | None,
) -> tuple[list[_Plan], list[tuple[Path, str]], InputError | None]:
    """What to read and how (batches of same-header Zeek TSV logs), and what to skip."""
    batch_files = BATCH_FILES  # read here, so a test can make batches small
    plans: list[_Plan] = []
    skipped: list[tuple[Path, str]] = []
    first_error: InputError | None = None
    batches: dict[tuple[object, ...], _Plan] = {}
    kept = 0  # bytes of file text held for the batches
    for path, listed in files:
        try:
            with reading(path):
                head = read_head(path)  # one read of each file decides everything below
                fmt = format_of(path, source_format, mapping, head)
                header = header_of(head, path) if fmt == ZEEK_TSV else None
                log = zeek_log(path, fmt, header)
        except InputError as error:
            if not listed:
                raise
            first_error = first_error or error
            skipped.append((path, skip_label(path, error.message)))
            continue
        if fmt in _ZEEK and used_log(log) is None:
            skipped.append((path, f"Zeek {log} logs"))
            continue
        if fmt != ZEEK_TSV:
            plans.append(_Plan([path], fmt, log))
            continue
        assert header is not None
        with reading(path):
            whole = len(head) < HEAD_BYTES  # the head is the whole (small) file
            if repeats_other_fields(path, header, head if whole else None):
                plans.append(_Plan([path], fmt, log))  # a concatenated log: read on its own
                continue
        key = (log, *header.signature())
        batch = batches.get(key)
        if batch is None or len(batch.paths) >= batch_files:
            batch = batches[key] = _Plan([], fmt, log, header)
            plans.append(batch)
        batch.paths.append(path)
        keep = whole and kept + len(head) <= _KEEP_BYTES
        kept += len(head) if keep else 0
        batch.contents.append(head if keep else None)
    return plans, skipped, first_error


def zeek_log(path: Path, fmt: str, header: ZeekHeader | None) -> str:
    """The Zeek log kind of a file ("" when not Zeek), from its parsed header if TSV."""
    if fmt == ZEEK_TSV and header is not None:
        return log_of_header(header, path)
    return log_kind(path, "json") if fmt == ZEEK_JSON else ""


def _read(plan: _Plan, mapping: Mapping[str, str] | None, store: LoadCache | None) -> LoadedFile:
    if len(plan.paths) > 1 and plan.header is not None:
        try:
            return load_zeek_many(plan.paths, plan.header, plan.log, plan.contents)
        except InputError:
            for path in plan.paths:  # find the file and line to name
                with reading(path):
                    load_zeek(path, "tsv")
            raise
    path = plan.paths[0]
    with reading(path):  # a corrupt file is the user's problem to hear about, in one line
        if store is not None and plan.fmt in CACHED_FORMATS:
            return store.load(path, plan.fmt, mapping, partial(_LOADERS[plan.fmt], path, mapping))
        return _LOADERS[plan.fmt](path, mapping)


def check_request(paths: Sequence[object], source_format: str | None) -> None:
    """Before anything is read, whichever engine reads: a known ``--source-format``
    (a usage error otherwise) and at least one input."""
    if source_format is not None and source_format not in SOURCE_FORMATS:
        raise UsageError(
            f"unknown source format '{source_format}'; choose one of: " + ", ".join(SOURCE_FORMATS),
            field="source-format",
        )
    if not paths:
        raise InputError("no input files given")


def load_paths(
    paths: Sequence[str | Path],
    source_format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress = NULL_PROGRESS,
    cache: LoadCache | bool | None = True,
    recursive: bool = True,
    require_events: bool = True,
) -> Loaded:
    """Load every file named by ``paths`` into one ``Loaded`` (see the module docstring).

    A file named explicitly (or by a glob) in an unrecognised format is an error; one
    found by listing a directory is skipped (a README beside the exports should not stop
    the run): one warning line counts every skipped file by kind. Paths that yield no
    connection event at all are an error saying what they held instead (unless not
    ``require_events``: a caller reading only names or DeviceInfo). Big text files
    go through ``cache`` (True: the configured ``detectors.load.cache``; False/None: none).
    """
    from detectors.load.cache import default_cache

    store = default_cache() if cache is True else (cache or None)
    check_request(paths, source_format)
    files = expand(paths, recursive)
    progress.report("load", 0.0, f"{len(files)} files")
    plans, skipped, first_error = _plan(files, source_format, mapping)
    loaded: list[LoadedFile] = []
    used: list[Path] = []
    warnings: list[str] = []
    done = len(skipped)
    held: list[tuple[Path, str]] = []  # files read that hold no events, for the error
    for plan in plans:
        part = _read(plan, mapping, store)
        done += len(plan.paths)
        if part.skipped:
            skipped += [(p, part.skipped) for p in plan.paths]
        else:
            loaded.append(part)
            used += plan.paths
            if part.events is None or part.events.is_empty():
                held += [(p, _held(part, plan)) for p in plan.paths]
        where = plan.paths[0] if len(plan.paths) == 1 else f"{len(plan.paths)} {plan.log} logs"
        warnings += [f"{where}: {w}" for w in part.warnings]
        name = plan.paths[0].name if len(plan.paths) == 1 else where
        progress.report("load", done / len(files), f"{name}: {part.rows} rows")
    summary = skip_summary(skipped)
    if summary:
        warnings.insert(0, summary)
    order = {path: i for i, (path, _) in enumerate(files)}
    used.sort(key=order.__getitem__)
    events, duplicates = _without_duplicates(_events(loaded))
    if duplicates:
        warnings.append(f"{duplicates} duplicate event rows dropped (identical in every field)")
    if events.is_empty() and require_events:
        if first_error is not None and not used and len(skipped) == 1:
            raise first_error  # one stray file named by a folder: its own reason
        raise InputError(
            "no connection events found; these paths hold " + found_instead(held + skipped),
            file=", ".join(str(p) for p in paths),
        )
    return Loaded(
        events=events,
        names=_concat([p.names for p in loaded], S.NAMES_SCHEMA).unique(maintain_order=True),
        app=_app(loaded),
        device_info=_device_info(loaded),
        dns=_concat([p.dns for p in loaded], S.DNS_SCHEMA).sort(S.DNS_TIME, maintain_order=True),
        files=[str(f) for f in used],
        warnings=warnings,
        skipped=[(str(path), why) for path, why in skipped],
    )


def _held(part: LoadedFile, plan: _Plan) -> str:
    """What a file without events held, in words for the no-events error."""
    if part.device_info is not None and part.device_info.height:
        return "DeviceInfo files"
    if part.rows:
        return f"Zeek {plan.log} logs" if plan.log else "files of names only"
    return "files without rows"


def _events(loaded: list[LoadedFile]) -> pl.DataFrame:
    """Every event; a Zeek open_conn row only when its uid was not also logged closed."""
    closed = _concat([p.events for p in loaded if not p.still_open], S.EVENT_SCHEMA)
    still_open = _concat([p.events for p in loaded if p.still_open], S.EVENT_SCHEMA)
    if still_open.is_empty():
        return closed
    seen = closed.get_column(S.UID).drop_nulls().unique().implode()
    fresh = still_open.filter(~pl.col(S.UID).is_in(seen)).unique(
        subset=[S.UID], keep="first", maintain_order=True
    )
    return pl.concat([closed, fresh], how="vertical")


def _app(loaded: list[LoadedFile]) -> pl.DataFrame:
    closed = _concat([p.app for p in loaded if not p.still_open], S.APP_SCHEMA)
    still_open = _concat([p.app for p in loaded if p.still_open], S.APP_SCHEMA)
    if still_open.is_empty():
        return closed
    seen = closed.get_column(S.APP_UID).drop_nulls().unique().implode()
    fresh = still_open.filter(~pl.col(S.APP_UID).is_in(seen)).unique(
        subset=[S.APP_UID, S.APP_KIND], keep="first", maintain_order=True
    )
    return pl.concat([closed, fresh], how="vertical")


def _concat(frames: list[pl.DataFrame | None], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    present = [f for f in frames if f is not None]
    if not present:
        return pl.DataFrame(schema=dict(schema))
    return pl.concat(present, how="vertical")


def _without_duplicates(
    events: pl.DataFrame, ignore: tuple[str, ...] = ()
) -> tuple[pl.DataFrame, int]:
    """Events with exact repeats dropped (the first kept), and how many were dropped.

    Overlapping exports, or one export saved twice under two names, repeat rows; kept,
    they would double counts and bucket variances, so results would depend on how the
    data was cut into files. Two real connections never agree in every field (the local
    port, the microsecond), so only repeats go. ``source_file`` is not compared, nor the
    columns named in ``ignore`` (a partition's input positions).
    """
    fields = [c for c in events.columns if c != S.SOURCE_FILE and c not in ignore]
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
