"""The Zeek logs as a sensor archives them: dated folders of hourly-rotated, gzipped logs.

``zeek_archive/2026-11-18/conn.00:00:00-01:00:00.log.gz`` and the same for dns, http and
ssl, each a complete log (header, rows, ``#close``), cut by the connection's start
hour. Beside them, what a real archive also holds and the loader must skip: hourly
``weird``, ``stats`` and ``capture_loss`` logs, a ``dhcp`` log for the hours a lease was
renewed, and a README. Only the first ``hours`` hours, to keep the shipped copy small.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path

from . import conns as C
from .zeek import (
    CONN_FIELDS,
    CONN_TYPES,
    DNS_FIELDS,
    DNS_TYPES,
    HTTP_FIELDS,
    HTTP_TYPES,
    SSL_FIELDS,
    SSL_TYPES,
    ZeekWriter,
    write_log,
)

HOUR_NS = 3600 * 1_000_000_000
README = """Zeek logs of sensor-1, rotated hourly (log-rotate-interval 1 hr), gzipped by the
archiver into one folder per day. Open the folder with beacon-triage: the conn, dns,
http and ssl logs are read, the others are skipped.
"""


def _other_log(path: Path, name: str, fields: str, types: str, rows: list[str], t_ns: int) -> None:
    stamp = datetime.fromtimestamp(t_ns // 1_000_000_000, tz=timezone.utc)
    text = (
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        f"#path\t{name}\n#open\t{stamp:%Y-%m-%d-%H-%M-%S}\n#fields\t{fields}\n#types\t{types}\n"
        + "".join(f"{row}\n" for row in rows)
        + f"#close\t{stamp:%Y-%m-%d-%H}-59-59\n"
    )
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


def write_archive(writer: ZeekWriter, folder: Path, hours: int = 24) -> list[Path]:
    """Write the first ``hours`` hours as an archive under ``folder``; the conn logs' paths."""
    start = writer.sc.start_ns
    logs = (
        ("conn", CONN_FIELDS, CONN_TYPES, writer.conn_rows(), writer.conn_lines),
        ("dns", DNS_FIELDS, DNS_TYPES, writer.dns_rows(), writer.dns_lines),
        ("http", HTTP_FIELDS, HTTP_TYPES, writer.http_rows(), writer.http_lines),
        ("ssl", SSL_FIELDS, SSL_TYPES, writer.ssl_rows(), writer.ssl_lines),
    )
    hour_of = {name: rows.get_column(C.T_NS) // HOUR_NS for name, _, _, rows, _ in logs}
    conns = []
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README").write_text(README)
    for hour in range(hours):
        t0 = start + hour * HOUR_NS
        day = folder / datetime.fromtimestamp(t0 // 10**9, tz=timezone.utc).strftime("%Y-%m-%d")
        day.mkdir(exist_ok=True)
        span = f"{hour % 24:02d}:00:00-{hour % 24 + 1:02d}:00:00"
        for name, fields, types, rows, render in logs:
            part = rows.filter(hour_of[name] == t0 // HOUR_NS)
            path = day / f"{name}.{span}.log.gz"
            write_log(path, name, fields, types, part, render, t0, t0 + HOUR_NS - 1)
            if name == "conn":
                conns.append(path)
        ts = f"{t0 // 10**9 + 1799}.000000"
        _other_log(day / f"weird.{span}.log.gz", "weird", "ts\tuid\tid.orig_h\tname\tnotice\tpeer",
                   "time\tstring\taddr\tstring\tbool\tstring",
                   [f"{ts}\t-\t-\ttruncated_header\tF\tsensor-1"], t0)  # fmt: skip
        _other_log(day / f"stats.{span}.log.gz", "stats", "ts\tpeer\tmem\tpkts_proc\tbytes_recv",
                   "time\tstring\tcount\tcount\tcount", [f"{ts}\tsensor-1\t412\t18211\t9120334"],
                   t0)  # fmt: skip
        _other_log(day / f"capture_loss.{span}.log.gz", "capture_loss",
                   "ts\tts_delta\tpeer\tgaps\tacks\tpercent_lost",
                   "time\tinterval\tstring\tcount\tcount\tdouble",
                   [f"{ts}\t3600.000000\tsensor-1\t0\t14022\t0.0"], t0)  # fmt: skip
        if hour % 8 == 3:  # leases renewed every 8 hours
            _other_log(day / f"dhcp.{span}.log.gz", "dhcp",
                       "ts\tuids\tclient_addr\tserver_addr\tmac\thost_name\tassigned_addr\tlease_time",
                       "time\tset[string]\taddr\taddr\tstring\tstring\taddr\tinterval",
                       [f"{ts}\tCdhcp{hour}\t10.0.2.16\t10.0.0.2\t00:15:5d:01:02:10\tws-007"
                        f"\t10.0.2.16\t86400.000000"], t0)  # fmt: skip
    return conns
