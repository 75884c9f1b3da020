"""The resolver lookups that precede connections to names, one per name per cache TTL.

A device asks again once its cached answer expired: a connection triggers a lookup when
it falls in a new TTL-long slot for that (device, name), each pair with its own phase.
Only traffic the sensor saw asks (Defender-only programs are not on the wire).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from . import conns as C
from .world import APP_DNS, APP_HTTP, APP_TCP, APP_TLS, APP_TLS_NOSNI, PROCESS_INDEX, Destination

TTL_S = 7200.0  # the resolver cache keeps an answer this long
INSPECTED_SHARE = 0.02  # Defender logs a few DNS exchanges as DnsConnectionInspected
RESOLVED_APPS = (APP_TLS, APP_TLS_NOSNI, APP_HTTP, APP_TCP)


def resolves(dest: Destination) -> bool:
    """Connections to this destination look its name up first (not raw IPs, not proxied)."""
    return dest.domain is not None and dest.app in RESOLVED_APPS


def cache_slot(device: np.ndarray, domain: np.ndarray | int, t_ns: np.ndarray) -> np.ndarray:
    phase = ((device.astype(np.int64) * 7919 + domain * 104729) % 997) / 997 * TTL_S
    return np.floor((t_ns / 1e9 + phase) / TTL_S).astype(np.int64)


def first_in_sorted_runs(device: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Lookups for one program's calls, already ordered by device then time."""
    new = np.ones(device.size, dtype=bool)
    new[1:] = (slot[1:] != slot[:-1]) | (device[1:] != device[:-1])
    return new


def first_by_hash(device: np.ndarray, domain: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Lookups for time-ordered traffic of many names: the first call per (device, name, slot)."""
    key = (device.astype(np.int64) * (int(domain.max(initial=0)) + 1) + domain) * (
        int(slot.max(initial=0)) + 1
    ) + slot
    return pl.Series(key).is_first_distinct().to_numpy()


def add_lookups(
    rows: C.Rows,
    rng: np.random.Generator,
    device: np.ndarray,
    t_ns: np.ndarray,
    dest: np.ndarray,
    name_length: np.ndarray | int,
) -> None:
    """Append the UDP exchanges with the resolver, a few milliseconds before each connection."""
    n = t_ns.size
    before = np.rint(rng.uniform(0.002, 0.04, n) * 1e9).astype(np.int64)
    at = t_ns - before
    inspected = rng.random(n) < INSPECTED_SHARE
    rows.add(
        t_ns=at - at % 100, device=device, proc=PROCESS_INDEX["svchost.exe"], dest=dest,
        prog=-1, app=APP_DNS, ok=True,
        defender=np.where(inspected, C.DEF_ROW, C.DEF_ABSENT), zeek=True,
        bytes_out=name_length + 18, bytes_in=2 * name_length + 34,
        dur_us=np.rint(rng.uniform(0.0004, 0.03, n) * 1e6),
        local_port=C.ephemeral_ports(rng, n), url=True,
    )  # fmt: skip


def add_noise_lookups(
    rows: C.Rows, noise: C.Rows, dests: C.Destinations, rng: np.random.Generator
) -> None:
    """Lookups for the background traffic in ``noise`` (many names, random order)."""
    data = noise.arrays((C.ZEEK, C.DEST, C.DEVICE, C.T_NS))
    wanted = np.array([resolves(d) for d in dests.items])
    keep = np.flatnonzero(data[C.ZEEK] & wanted[data[C.DEST]])
    keep = keep[np.argsort(data[C.T_NS][keep], kind="stable")]  # the first call asks
    device, t_ns, dest = data[C.DEVICE][keep], data[C.T_NS][keep], data[C.DEST][keep]
    domain = dests.domain_of()[dest]
    ask = first_by_hash(device, domain, cache_slot(device, domain, t_ns))
    lengths = np.array([len(d.domain or "") for d in dests.items])
    add_lookups(rows, rng, device[ask], t_ns[ask], dest[ask], lengths[dest[ask]])
