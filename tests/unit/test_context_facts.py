"""Population facts of ``rank.evidence.context_facts``: devices per port, process, domain.

Counted by hand on a small network: four workstations, one of which (ws-4) only
talks to a private address, so it counts for nothing that is about public traffic.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from detectors.base import schema as S
from detectors.pairs.context import PairContext
from detectors.rank import evidence as E

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)

# (device, process, remote IP, port, RemoteUrl)
CONNECTIONS = [
    ("ws-1", "a.exe", "8.8.8.8", 443, "x.evil.example"),
    ("ws-1", "a.exe", "1.1.1.1", 80, None),
    ("ws-2", "a.exe", "8.8.8.8", 443, None),
    ("ws-2", "b.exe", "9.9.9.9", 8443, "y.evil.example"),
    ("ws-3", "b.exe", "1.1.1.1", 443, None),
    ("ws-4", "b.exe", "10.0.0.5", 443, None),
]


def _context() -> PairContext:
    rows = [
        {
            S.TIMESTAMP: T0 + timedelta(minutes=i),
            S.DEVICE_NAME: device,
            S.PROCESS: process,
            S.ACTION: S.ACTION_SUCCESS,
            S.REMOTE_IP: ip,
            S.REMOTE_PORT: port,
            S.REMOTE_URL: url,
        }
        for i, (device, process, ip, port, url) in enumerate(CONNECTIONS * 3)
    ]
    return PairContext(events=S.conform(pl.DataFrame(rows), "mde.csv").collect())


def test_population_facts_count_devices_as_counted_by_hand():
    keys = pl.DataFrame(
        {
            S.C_DEVICE: ["ws-1", "ws-3"],
            S.C_PROCESS: ["a.exe", "b.exe"],
            S.C_REMOTE_IP: ["8.8.8.8", "1.1.1.1"],
            S.C_REMOTE_PORT: pl.Series([443, 443], dtype=pl.Int32),
        }
    )
    facts = E.context_facts(_context(), keys).sort(S.C_DEVICE)
    # Devices with public traffic: ws-1, ws-2, ws-3 (not ws-4, private only).
    assert facts.get_column(E.F_HOSTS).to_list() == [3, 3]
    # Public traffic to port 443: ws-1, ws-2 (a.exe) and ws-3 (b.exe); ws-4 is private.
    assert facts.get_column(E.F_PORT_DEVICES).to_list() == [3, 3]
    # a.exe on ws-1, ws-2; b.exe on ws-2, ws-3, ws-4 (every outbound row counts).
    assert facts.get_column(E.F_PROCESS_DEVICES).to_list() == [2, 3]
    # a.exe to 443 on both its devices; b.exe to 443 on ws-3 and ws-4 of its three.
    assert facts.get_column(E.F_PROCESS_PORT_SHARE).to_list() == [1.0, 2 / 3]
    # 8.8.8.8 is reached by ws-1 and ws-2; 1.1.1.1 by ws-1 and ws-3.
    assert facts.get_column(E.F_IP_DEVICES).to_list() == [2, 2]
    # evil.example: ws-1 (its URL on 8.8.8.8), ws-2 (8.8.8.8 is named x.evil.example;
    # and y.evil.example on 9.9.9.9). 1.1.1.1 has no name, so no domain.
    assert facts.get_column(E.F_DOMAIN).to_list() == ["evil.example", None]
    assert facts.get_column(E.F_DOMAIN_DEVICES).to_list() == [2, None]
