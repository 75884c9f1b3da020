"""The ground truth: one row per planted beacon and per benign periodic program.

Written from the same ``PROGRAMS`` table the simulation ran, with the row counts the
writers actually produced, so an evaluation can score detectors without guessing.
"""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from .programs import AGGREGATED, PROGRAMS, ROWS
from .simulate import Scenario

COLUMNS = (
    "label",
    "name",
    "device",  # DeviceName(s), ';'-separated when the program runs on several
    "device_ip",  # the same devices' addresses (Zeek's view of a device)
    "process",
    "remote_ip",
    "remote_port",
    "domain",
    "sleep_s",
    "jitter_pct",
    "jitter_kind",
    "loss_pct",
    "schedule",
    "devices_count",
    "in_defender",
    "in_zeek",
    "notes",
    "active_from",  # first moment the program may call (UTC)
    "active_to",
    "defender_mode",  # rows | aggregated
    "defender_rows",  # rows in defender_network_events for this program
    "defender_connections",  # connections those rows stand for (aggregated rows count many)
    "zeek_connections",  # conn.log rows
)


def _iso(start_ns: int, seconds: float) -> str:
    moment = datetime.fromtimestamp(start_ns / 1e9 + seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def ground_truth(
    sc: Scenario,
    defender_counts: dict[int, tuple[int, int]],
    zeek_counts: dict[int, int],
) -> pl.DataFrame:
    """The ground-truth table in ``COLUMNS`` order."""
    records = []
    for k, p in enumerate(PROGRAMS):
        on = sc.program_devices[k]
        lo, hi = sc.program_windows[k]
        rows, conns = defender_counts.get(k, (0, 0))
        records.append(
            {
                "label": p.label,
                "name": p.name,
                "device": ";".join(str(x) for x in sc.devices.names[on]),
                "device_ip": ";".join(str(x) for x in sc.devices.ips[on]),
                "process": p.process,
                "remote_ip": p.dest.ip,
                "remote_port": p.dest.port,
                "domain": p.dest.domain,
                "sleep_s": float(p.sleep_s),
                "jitter_pct": float(p.jitter_pct),
                "jitter_kind": p.jitter_kind,
                "loss_pct": float(p.loss_pct),
                "schedule": p.schedule,
                "devices_count": int(on.size),
                "in_defender": p.defender in (ROWS, AGGREGATED),
                "in_zeek": p.zeek,
                "notes": p.notes,
                "active_from": _iso(sc.start_ns, lo),
                "active_to": _iso(sc.start_ns, hi),
                "defender_mode": p.defender,
                "defender_rows": rows,
                "defender_connections": conns,
                "zeek_connections": zeek_counts.get(k, 0),
            }
        )
    schema = {
        "remote_port": pl.Int32,
        "devices_count": pl.Int32,
        "defender_rows": pl.Int64,
        "defender_connections": pl.Int64,
        "zeek_connections": pl.Int64,
        "domain": pl.String,
    }
    return pl.DataFrame(records, schema_overrides=schema).select(COLUMNS)
