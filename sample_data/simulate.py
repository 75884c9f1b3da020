"""Run the scenario: the world, its periodic programs and its background traffic.

The writers in ``defender.py`` and ``zeek.py`` only format what is decided here, so both
views of the network tell the same story.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from . import conns as C
from . import dns, noise, periodic
from .clock import DAY, START_NS
from .programs import PROGRAMS
from .world import Destination, Devices, build_devices, select_devices


@dataclass
class Scenario:
    """The simulated days: who exists, where they connect, and every connection."""

    devices: Devices
    dests: list[Destination]
    program_devices: list[np.ndarray]  # device indices running each of PROGRAMS
    program_windows: list[tuple[float, float]]  # active (from, to) seconds after the start
    conns: pl.DataFrame  # conns.DTYPES columns, in generation order
    reports: pl.DataFrame  # Defender's hourly aggregated reports (conns.AGG_* columns)
    start_ns: int
    span_s: float

    @property
    def dns_server(self) -> str:
        """The domain controller (the first server) resolves names for everyone."""
        return str(self.devices.ips[self.devices.servers[0]])


def rng_stream(seed: int, part: int) -> np.random.Generator:
    """One independent random stream per part, so tuning one part leaves the others alone."""
    return np.random.default_rng([seed, part])


def simulate(days: float = 3, devices: int = 30, seed: int = 7, scale: float = 1.0) -> Scenario:
    """Build the whole scenario; the same arguments always give the same connections.

    ``scale`` multiplies the background traffic (browsing, Windows chatter).
    """
    if days <= 0:
        raise ValueError("days must be positive")
    span_s = float(days) * DAY
    world = build_devices(devices, rng_stream(seed, 0))
    dests = C.Destinations()
    taken = {p.dest.ip for p in PROGRAMS}
    rows = C.Rows()
    reports: list[pl.DataFrame] = []
    program_devices: list[np.ndarray] = []
    windows: list[tuple[float, float]] = []
    for k, program in enumerate(PROGRAMS):
        rng = rng_stream(seed, 100 + k)
        on = select_devices(program.where, world, rng)
        window = periodic.active_window(program, span_s)
        program_devices.append(on)
        windows.append(window)
        periodic.add_program(rows, reports, rng, k, program, on, window, dests)
    background = C.Rows()
    noise.add_browsing(background, rng_stream(seed, 1), world, dests, taken, span_s, scale)
    noise.add_background(background, rng_stream(seed, 2), world, dests, taken, span_s, scale)
    dns.add_noise_lookups(rows, background, dests, rng_stream(seed, 3))
    rows.extend(background)
    hourly = pl.concat(reports)
    return Scenario(
        world, dests.items, program_devices, windows, rows.frame(), hourly, START_NS, span_s
    )
