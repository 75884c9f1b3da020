"""What the load and the run hold in memory: the implausible rows dropped (one copy,
counted per kind), and no loaded copy of the events kept by a run that places them once."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.load.common import drop_implausible
from detectors.pairs.context import PairContext
from detectors.pairs.network import place_context
from detectors.run.loop import prepare, run_all
from detectors.run.memory import InMemory

T0 = datetime(2026, 11, 18, tzinfo=timezone.utc)
NETWORK = Path(__file__).resolve().parents[2] / "sample_data" / "network"


def _events(rows: list[tuple[float, str, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                S.TIMESTAMP: T0 + timedelta(seconds=t),
                S.DEVICE_ID: device,
                S.DEVICE_NAME: device,
                S.ACTION: "ConnectionSuccess",
                S.LOCAL_IP: "10.0.0.5",
                S.LOCAL_PORT: 50000,
                S.REMOTE_IP: remote,
                S.REMOTE_PORT: port,
                S.PROTOCOL: "tcp",
                S.PROCESS: "rundll32.exe",
                S.CONNECTIONS: 1,
                S.SOURCE_FILE: "events.csv",
            }
            for t, device, remote, port in rows
        ],
        schema=S.EVENT_SCHEMA,
    )


def test_drop_implausible_counts_each_kind_and_drops_every_bad_row():
    events = _events(
        [
            (0.0, "ws-1", "185.141.27.66", 443),
            (1.0, "ws-1", "10.0.2.256", 443),  # not an address
            (2.0, "ws-1", "185.141.27.66", 70000),  # not a port
            (3.0, "ws-1", "2001:db8::1", 443),  # IPv6: kept
            (4.0, "ws-1", "185.141.27.66", 443),
        ]
    )
    kept, warnings = drop_implausible(events)
    assert kept.get_column(S.TIMESTAMP).to_list() == [
        T0,
        T0 + timedelta(seconds=3),
        T0 + timedelta(seconds=4),
    ]
    assert warnings == [
        "1 rows with a remote_port outside 0-65535 dropped (first in events.csv)",
        "1 rows with a remote_ip that is not an IP address dropped (first in events.csv)",
    ]


def _beacon() -> PairContext:
    rows = [(600.0 * i, "ws-1", "185.141.27.66", 443) for i in range(40)]
    rows += [(900.0 * i + 13, "ws-2", "185.141.27.66", 443) for i in range(30)]
    return PairContext(events=_events(rows))


def test_a_run_lets_the_loaded_events_go_and_refuses_to_place_again():
    context = _beacon()
    result = run_all(context, Config(), workers=1)
    assert result.candidates.height > 0
    assert context._loaded_events is None  # placed once: no loaded copy beside the placed
    with pytest.raises(RuntimeError, match="cannot be placed again"):
        place_context(context, Config(network={"internal": ["185.141.27.0/24"]}).network_settings())


def test_a_released_run_ranks_as_one_that_kept_its_loaded_events():
    released = run_all(_beacon(), Config(), workers=1).candidates
    kept = _beacon()
    place_context(kept, Config().network_settings())  # placed, loaded copy kept
    assert kept._loaded_events is not None
    assert run_all(kept, Config(), workers=1).candidates.equals(released)


def test_a_given_context_keeps_its_loaded_events_so_new_settings_place_again():
    context = prepare(InMemory.of(_beacon()), Config())  # no files to read again
    assert context.events.height == 70
    place_context(context, Config(network={"internal": ["185.141.27.0/24"]}).network_settings())
    # the destination is now ours: every row is internal, none hunted
    assert context.events.get_column(S.DIRECTION).unique().to_list() == [S.DIR_INTERNAL]


def test_files_placed_again_are_read_again_and_placed_as_a_fresh_load():
    path = NETWORK / "defender_network_events.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        records = sum(1 for _ in csv.DictReader(handle))  # every row is a plausible event
    context = prepare(InMemory([str(path)], use_cache=False), Config())
    assert context._loaded_events is None  # not kept beside the placed events
    first = context.events
    other = Config(network={"internal": ["10.0.0.0/8", "8.8.8.0/24"], "proxies": []})
    place_context(context, other.network_settings())
    assert context._loaded_events is not None
    assert context._loaded_events.height == records  # the file read again, whole
    fresh = prepare(InMemory([str(path)], use_cache=False), other)
    assert context.events.equals(fresh.events)
    assert not context.events.equals(first)  # the new settings did change the placement


def test_aligned_rechunks_only_a_frame_whose_columns_are_cut_differently():
    from detectors.load.common import aligned

    a = pl.concat([pl.Series("a", [1, 2]), pl.Series("a", [3])], rechunk=False)
    b = pl.concat([pl.Series("b", [1]), pl.Series("b", [2, 3])], rechunk=False)
    c = pl.concat([pl.Series("c", [4, 5]), pl.Series("c", [6])], rechunk=False)
    mixed = aligned(pl.DataFrame([a, b]))
    assert mixed.n_chunks("all") == [1, 1]
    assert mixed.rows() == [(1, 1), (2, 2), (3, 3)]
    same = aligned(pl.DataFrame([a, c, pl.Series("lit", [7, 7, 7])]))
    assert same.n_chunks("all") == [2, 2, 1]  # one layout (and a literal): no copy
