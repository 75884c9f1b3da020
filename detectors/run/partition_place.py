"""Input bigger than memory, second step: the partitions placed in the network
(``pairs.network``) and written again, keyed by each event's *placed* device
(``place_partitions`` says how and why).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.load import _without_duplicates
from detectors.pairs.network import (
    Links,
    apply,
    apply_links,
    decide,
    link,
    link_rows,
    no_links,
)
from detectors.pairs.population import INPUT_ROW
from detectors.run.partition_write import PARTITION, Partitions, partition_key

# --- placing the partitions in the network ---------------------------------------------------

PLACING_THREADS = 2  # partitions placed at once (see ``place_partitions``)


def empty_placed() -> pl.DataFrame:
    """No events, with the columns of placed partitions."""
    topology = {
        INPUT_ROW: pl.UInt64(),
        S.VIA_PROXY: pl.String(),
        S.ICMP_TYPE: pl.Int32(),
        S.DIRECTION: pl.String(),
        S.PROXY_SERVER: pl.String(),
    }
    return pl.DataFrame(schema={**S.EVENT_SCHEMA, **topology})


def place_partitions(
    parts: Partitions,
    directory: Path,
    settings: NetworkSettings,
    progress: Progress = NULL_PROGRESS,
) -> Partitions:
    """``parts`` placed in the network (``pairs.network``), written under ``directory``.

    The decisions need every event (which address:port is a proxy, which public address
    a sensor watches): two passes over a few columns of each partition gather the small
    evidence they are taken from. Then each partition's exact repeats are dropped (they
    share a device, so a partition holds all of them, and a run in memory drops them
    before placing) and its rows placed: once more first when some row comes from a
    proxy's address, to gather the rows its egress is linked by (client and proxy are
    two devices: linked once over all of them); then written, linked, to the partition
    of their *placed* device: an inbound row turned round belongs with our host, so every
    pair and every fact about one device stays in one partition.

    ``PLACING_THREADS`` partitions are placed at once: one alone kept two cores ~1.75
    busy (its write is partly serial); two hold a partition more in memory.
    """

    def pieces(columns: Sequence[str]) -> Iterator[pl.DataFrame]:
        for number in range(parts.count):
            files = parts.part_files(number)
            if files:
                yield pl.read_parquet(files, columns=list(columns))

    progress.report("load", 0.0, "placing the events in the network")
    decisions = decide(pieces, parts.app, settings)

    def placed(number: int) -> tuple[pl.DataFrame, int, int]:
        """Partition ``number`` deduplicated and placed (egress not linked yet)."""
        files = parts.part_files(number)
        if not files:
            return empty_placed().drop(S.PROXY_SERVER), 0, 0
        frame, dropped = _without_duplicates(pl.read_parquet(files), ignore=(INPUT_ROW,))
        events, outside = apply(frame, decisions)
        return events, dropped, outside

    def rows_to_link(number: int) -> pl.DataFrame:
        return link_rows(placed(number)[0], decisions, INPUT_ROW)

    def write(number: int, links: Links) -> tuple[int, int]:
        """Partition ``number`` placed, linked and written; its repeats and outside rows."""
        events, dropped, outside = placed(number)
        events = apply_links(events, links, INPUT_ROW)
        if not decisions.icmp:
            events = events.drop(S.ICMP_TYPE)
        if events.height:
            _write_placed(events, directory / f"file-{number:05d}", parts.count)
        return dropped, outside

    external_only = duplicates = 0
    links = no_links(decisions)
    with ThreadPoolExecutor(PLACING_THREADS, thread_name_prefix="placing") as pool:
        if decisions.from_proxy:  # the rows a proxy's egress is linked by, from every partition
            rows = pl.concat(pool.map(rows_to_link, range(parts.count))).sort(INPUT_ROW)
            links = link(rows, parts.app, decisions, INPUT_ROW)
            del rows
        written = pool.map(partial(write, links=links), range(parts.count))
        for done, (dropped, outside) in enumerate(written, 1):
            progress.report("load", done / parts.count, f"placed partition {done}")
            duplicates, external_only = duplicates + dropped, external_only + outside
    return dataclasses.replace(
        parts,
        directory=directory,
        placed=True,
        duplicates=duplicates,
        notes=decisions.notes(external_only, links.count),
    )


def _write_placed(events: pl.DataFrame, folder: Path, count: int) -> None:
    """``events`` (one source partition, placed) into ``folder``'s partition folders, by
    their placed device, in the layout ``_sink`` writes (``__partition=K/00000000.parquet``).

    Written eagerly, a frame per placed partition: nearly every row stays in its own
    partition (only turned-round rows move), and the streaming partitioned sink cost 1.8x
    the CPU of a plain write of the same frame. Row groups of 100k rows: the partition is
    read whole or scanned by the population, never sought row by row, and larger groups
    are a third cheaper to write and half the size on disk. No statistics: they serve to
    skip row groups by range, and no query here could skip one. zstd at level 1: a tenth
    less CPU than its default level for 2 % more disk, and read back as fast (20M events
    in 7 partitions: 11.3 -> 10.3 s of CPU, 303 -> 309 MB).
    """
    keys = events.select(partition_key(count)).to_series()
    if keys.min() == keys.max():  # the usual case: no row left its source partition
        groups = {keys[0]: events}
    else:
        groups = {
            key[0]: frame
            for key, frame in events.with_columns(keys.alias(PARTITION))
            .partition_by(PARTITION, maintain_order=True, include_key=False, as_dict=True)
            .items()
        }
    del keys
    for key, frame in groups.items():
        target = folder / f"{PARTITION}={key}"
        target.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(
            target / "00000000.parquet",
            row_group_size=100_000,
            statistics=False,
            compression_level=1,
        )
