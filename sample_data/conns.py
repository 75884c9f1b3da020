"""The connection table every generator appends to and every writer reads.

One row is one connection as it happened on the wire, plus how Defender recorded it
and whether the Zeek sensor saw it. Generators append numpy blocks; the table is built
once, in generation order, with numeric columns only: each writer sorts what it writes,
and makes text from small lookup tables at the very end, which keeps ten million rows
fast.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .world import Destination

T_NS = "t_ns"  # epoch nanoseconds, a multiple of 100 (Defender's tick)
DEVICE = "device"  # index into Devices
PROC = "proc"  # index into world.PROCESS_NAMES
DEST = "dest"  # index into the destination table
PROG = "prog"  # index into programs.PROGRAMS, -1 for background traffic
APP = "app"  # world.APP_*
OK = "ok"  # False: the far end never answered
DEFENDER = "defender"  # DEF_*
ZEEK = "zeek"  # the sensor saw it
BYTES_OUT = "bytes_out"
BYTES_IN = "bytes_in"
DUR_US = "dur_us"
LOCAL_PORT = "local_port"  # ephemeral port (the peer's for inbound connections)
URL = "url"  # Defender knew the name (RemoteUrl filled)

DTYPES: dict[str, type] = {
    T_NS: np.int64, DEVICE: np.int32, PROC: np.int16, DEST: np.int32, PROG: np.int16,
    APP: np.int8, OK: np.bool_, DEFENDER: np.int8, ZEEK: np.bool_, BYTES_OUT: np.int64,
    BYTES_IN: np.int64, DUR_US: np.int64, LOCAL_PORT: np.int32, URL: np.bool_,
}  # fmt: skip

# How Defender recorded a connection.
DEF_ROW = 0  # a row of its own
DEF_UNLOGGED = 1  # not at all (Defender does not log every connection)
DEF_AGGREGATED = 2  # only inside an hourly *AggregatedReport row
DEF_ABSENT = 3  # Defender never sees this kind of traffic

# Defender's hourly reports (with DEVICE, PROC, DEST, PROG, OK).
AGG_CONNECTIONS = "connections"
AGG_FIRST_NS = "first_ns"
AGG_LAST_NS = "last_ns"


class Rows:
    """Collects column blocks from the generators and stacks them once at the end."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, np.ndarray]] = []

    def add(self, **cols: np.ndarray | int | bool | float) -> None:
        n = int(np.asarray(cols[T_NS]).shape[0])
        if n:
            self.blocks.append({k: np.broadcast_to(np.asarray(v), (n,)) for k, v in cols.items()})

    def extend(self, other: Rows) -> None:
        self.blocks.extend(other.blocks)

    def arrays(self, columns: tuple[str, ...] = tuple(DTYPES)) -> dict[str, np.ndarray]:
        """The given columns, concatenated in generation order (not sorted: whoever needs
        an order sorts the few columns it needs)."""
        return {
            name: np.concatenate([b[name] for b in self.blocks] or [np.zeros(0)]).astype(
                DTYPES[name]
            )
            for name in columns
        }

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.arrays())


class Destinations:
    """The destination table; programs and pools register entries and get indices."""

    def __init__(self) -> None:
        self.items: list[Destination] = []
        self.index: dict[Destination, int] = {}
        self.domain_ids: dict[str, int] = {}

    def add(self, dest: Destination) -> int:
        if dest not in self.index:
            self.index[dest] = len(self.items)
            self.items.append(dest)
            if dest.domain is not None:
                self.domain_ids.setdefault(dest.domain, len(self.domain_ids))
        return self.index[dest]

    def domain_of(self) -> np.ndarray:
        """Per destination, the id of its name (-1 without one)."""
        return np.array([self.domain_ids.get(d.domain or "", -1) for d in self.items])


def ephemeral_ports(rng: np.random.Generator, n: int) -> np.ndarray:
    """Windows' dynamic port range."""
    return rng.integers(49152, 65536, n)
