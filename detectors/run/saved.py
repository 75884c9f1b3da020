"""A finished run on disk: candidates plus each candidate's connections, for offline triage.

A hunt over a data lake ends on a cluster; the analyst triages on a laptop, maybe with
no network. ``save_run`` writes what triage needs into one folder (Parquet, readable
by any tool): the ranked candidates with their evidence and facts, and every event of
each candidate's (device, remote address) pair, from which the charts are drawn
(connection times, intervals). ``load_run`` reads it back as candidates and a dataset
holding just those events; nothing is recomputed, so the list is the cluster's.

Layout: ``run.json`` (what made it), ``candidates.parquet``, ``events.parquet``,
``names.parquet``, ``app.parquet`` and, when the run had one, ``device_info.parquet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.pairs.context import PairContext
from detectors.pairs.population import DEVICE_KEY

MARKER = "run.json"
FORMAT = "beacon-triage-run"
VERSION = 1
_DEV = "_device"


@dataclass
class SavedRun:
    """A run read back: its ranked candidates and the candidates' own events."""

    candidates: pl.DataFrame
    dataset: PairContext
    info: dict[str, object]


def is_saved_run(path: str | Path) -> bool:
    """Whether ``path`` is a folder ``save_run`` wrote."""
    return (Path(path) / MARKER).is_file()


def candidate_events(events: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """Events of the candidates' (device, remote address) pairs, in input order."""
    device = DEVICE_KEY.alias(_DEV)
    pairs = candidates.select(
        pl.col(S.C_DEVICE).alias(_DEV), pl.col(S.C_REMOTE_IP).alias(S.REMOTE_IP)
    ).unique()
    return (
        events.with_columns(device)
        .join(pairs, on=[_DEV, S.REMOTE_IP], how="semi", nulls_equal=True)
        .drop(_DEV)
    )


def save_run(directory: Path, candidates: pl.DataFrame, dataset: PairContext, engine: str) -> None:
    """Write the run (see the module docstring); the marker goes last, so a folder
    with a marker is complete."""
    from detectors.base.atomic import atomic_write_text

    try:
        directory.mkdir(parents=True, exist_ok=True)
        events = candidate_events(dataset.events, candidates)
        uids = events.get_column(S.UID).drop_nulls().unique()
        ips = candidates.get_column(S.C_REMOTE_IP).drop_nulls().unique()
        candidates.write_parquet(directory / "candidates.parquet")
        events.write_parquet(directory / "events.parquet")
        dataset.names.filter(pl.col(S.NAME_IP).is_in(ips.implode())).write_parquet(
            directory / "names.parquet"
        )
        dataset.app.filter(pl.col(S.APP_UID).is_in(uids.implode())).write_parquet(
            directory / "app.parquet"
        )
        if dataset.device_info is not None:
            dataset.device_info.write_parquet(directory / "device_info.parquet")
        info = {
            "format": FORMAT,
            "version": VERSION,
            "engine": engine,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": list(dataset.files),
            "candidates": candidates.height,
            "events": events.height,
        }
        atomic_write_text(directory / MARKER, json.dumps(info, indent=2) + "\n")
    except OSError as exc:
        raise InputError(
            f"cannot save the run: {exc.strerror or exc}", file=str(directory)
        ) from None


def load_run(directory: str | Path) -> SavedRun:
    """Read a saved run; a folder that is not one, or is damaged, is one InputError."""
    folder = Path(directory)
    marker = folder / MARKER
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"not a saved run ({MARKER}: {exc})", file=str(folder)) from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise InputError(f"not a saved run ({MARKER} has another format)", file=str(folder))
    if info.get("version") != VERSION:
        raise InputError(
            f"saved run version {info.get('version')!r} not supported", file=str(folder)
        )
    try:
        candidates = pl.read_parquet(folder / "candidates.parquet")
        events = pl.read_parquet(folder / "events.parquet")
        names = pl.read_parquet(folder / "names.parquet")
        app = pl.read_parquet(folder / "app.parquet")
        info_path = folder / "device_info.parquet"
        device_info = pl.read_parquet(info_path) if info_path.is_file() else None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"damaged saved run: {exc}", file=str(folder)) from None
    missing = [c for c in S.EVENT_SCHEMA if c not in events.columns]
    if missing:
        raise InputError(f"damaged saved run: events.parquet lacks {missing[0]}", file=str(folder))
    dataset = PairContext(
        events=events.select([pl.col(c).cast(t) for c, t in S.EVENT_SCHEMA.items()]),
        names=names,
        app=app,
        device_info=device_info,
        files=[str(f) for f in info.get("files", []) if isinstance(f, str)],
    )
    return SavedRun(candidates, dataset, info)
