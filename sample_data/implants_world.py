"""A third sample scenario: one week of an office with the implant shapes real C2 has.

Written to ``sample_data/implants/`` (the office and network samples are left alone):
a Defender ``DeviceNetworkEvents`` CSV, Zeek ``conn.log.gz`` and ``dns.log.gz`` from a
sensor on the core switch (it sees the workstations' queries to the internal
resolver), and ``ground_truth.csv`` with one row per planted implant and per benign
periodic program. Seven days from Monday 2026-11-16 00:00 UTC.

Planted (every sleep drawn independently, as implants do):

* ``cs_jitter30_600s`` / ``cs_jitter50_300s``: Cobalt Strike's jitter, each sleep
  uniform on ``[S(1-j), S]`` with j = 0.3 and 0.5;
* ``burst_10min``: 3-6 connections within 10 s, every 10 minutes;
* ``workhours_900s``: only 09:00-17:00 on weekdays;
* ``fourhourly_c2`` (42 connections) and ``daily_checkin`` (7 connections);
* ``dead_c2``: the server is gone: Defender ConnectionFailed, Zeek S0 or REJ only;
* ``campaign_c2``: three workstations beaconing to one rare server;
* ``dns_txt_tunnel``: TXT queries for unique random subdomains of one rare domain
  through the internal resolver (Zeek dns.log only: Defender's DeviceNetworkEvents
  holds no DNS queries).

Benign periodic programs: a telemetry agent every 10 min on two servers, an updater
hourly on four workstations, a sync client every 4 h on all twelve, a backup agent
every 4 h and a licence check daily on one server each, and NTP from the domain
controller every 1,024 s. Noise: browsing in work hours, and an antivirus asking a
reputation service for unique hashed names (a DNS tunnel's look, on every device).

Deterministic: one numpy generator, polars writers, gzip without a time stamp.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from .defender import COLUMNS as DEFENDER_COLUMNS
from .defender import kusto_times
from .truth import COLUMNS as TRUTH_COLUMNS
from .zeek import CONN_FIELDS, CONN_TYPES, DNS_FIELDS, DNS_TYPES, epoch_text, write_log

START = datetime(2026, 11, 16, tzinfo=timezone.utc)  # a Monday
START_S = int(START.timestamp())
DAYS = 7
SPAN_S = DAYS * 86_400
DOMAIN = "corp.example"
RESOLVER = ("dc-01", "10.20.0.10")
FILES = (
    "defender_network_events.csv",
    "zeek/conn.log.gz",
    "zeek/dns.log.gz",
    "ground_truth.csv",
)
WORKSTATIONS = [(f"ws-{i:02d}", f"10.20.1.{10 + i}") for i in range(1, 13)]
SERVERS = [("srv-01", "10.20.2.11"), ("srv-02", "10.20.2.12")]
_B32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass(frozen=True)
class Program:
    """One ground-truth row: who calls what, how often, and in which shape."""

    label: str
    name: str
    devices: tuple[str, ...]
    process: str
    remote: str  # the address; the registered domain for the DNS tunnel
    port: int
    sleep_s: float
    jitter_pct: float
    shape: str  # uniform | one_sided | burst | workhours | dns
    notes: str
    name_seen: str | None = None  # the host name it looks up / Defender's RemoteUrl
    company: str | None = None
    proto: str = "tcp"
    failed: bool = False
    from_day: float = 0.0  # active from this day (0 = the start) to the end
    in_defender: bool = True


def programs() -> list[Program]:
    """The planted implants, then the benign periodic programs."""
    beacon, benign = "beacon", "benign_periodic"
    return [
        Program(beacon, "cs_jitter30_600s", ("ws-02",), "rundll32.exe", "185.225.17.41", 443,
                600, 30, "one_sided", "Cobalt Strike sleep 600 s, jitter 30 %: each sleep "
                "uniform on [420, 600] s; last 3 days", "cdn-static-ms.example", from_day=4),
        Program(beacon, "cs_jitter50_300s", ("ws-03",), "dllhost.exe", "91.219.236.18", 443,
                300, 50, "one_sided", "Cobalt Strike sleep 300 s, jitter 50 %: each sleep "
                "uniform on [150, 300] s; raw IP; last day", from_day=6),
        Program(beacon, "burst_10min", ("ws-04",), "svchost.exe", "45.61.136.77", 443, 600, 5,
                "burst", "3-6 connections within 10 s every 10 min (+-5 %); last day",
                "api-telemetry-cdn.example", from_day=6),
        Program(beacon, "workhours_900s", ("ws-05",), "mshta.exe", "91.243.44.19", 80, 900, 15,
                "workhours", "900 s +-15 %, only 09:00-17:00 on weekdays",
                "news-feed-rss.example"),
        Program(beacon, "fourhourly_c2", ("ws-06",), "explorer.exe", "194.26.29.113", 443,
                14_400, 10, "uniform", "every 4 h +-10 %: 42 connections in the week",
                "sync-docs-cloud.example"),
        Program(beacon, "daily_checkin", ("ws-07",), "taskhostw.exe", "5.252.177.21", 443,
                86_400, 5, "uniform", "once a day +-5 %: 7 connections; raw IP"),
        Program(beacon, "dead_c2", ("ws-08",), "powershell.exe", "45.142.212.61", 8443, 900, 20,
                "uniform", "C2 server gone: every attempt fails (Defender ConnectionFailed, "
                "Zeek S0/REJ); last 2 days", "login-msft-auth.example", failed=True,
                from_day=5),
        Program(beacon, "campaign_c2", ("ws-09", "ws-10", "ws-11"), "rundll32.exe",
                "193.42.33.7", 443, 3600, 20, "uniform", "three workstations beacon to one "
                "rare server, hourly +-20 %", "static-jq-cdn.example"),
        Program(beacon, "dns_txt_tunnel", ("ws-12",), "-", "cdn-metrics-qz.example", 53, 300,
                20, "dns", "TXT queries for unique random subdomains through the internal "
                "resolver (10.20.0.10), 300 s +-20 %; last 2 days; Zeek dns.log only",
                from_day=5, in_defender=False),
        Program(benign, "telemetry_agent", ("srv-01", "srv-02"), "LitwareAgent.exe",
                "52.178.17.3", 443, 600, 3, "uniform", "monitoring agent, every 10 min",
                "ingest.litware.com", company="Litware Inc."),
        Program(benign, "google_update", ("ws-01", "ws-02", "ws-03", "ws-04"),
                "GoogleUpdate.exe", "142.250.180.14", 443, 3600, 2, "uniform",
                "browser updater, hourly", "update.googleapis.com", company="Google LLC"),
        Program(benign, "onedrive_sync", tuple(w for w, _ in WORKSTATIONS), "OneDrive.exe",
                "13.107.42.12", 443, 14_400, 10, "uniform", "sync client on every "
                "workstation, every 4 h", "skyapi.live.net", company="Microsoft Corporation"),
        Program(benign, "backup_4h", ("srv-01",), "FabrikamBackup.exe", "20.71.14.200", 443,
                14_400, 3, "uniform", "backup agent, every 4 h: a benign long sleep",
                "backup.fabrikam.com", company="Fabrikam, Inc."),
        Program(benign, "licence_daily", ("srv-02",), "TailspinLicense.exe", "40.91.76.224",
                443, 86_400, 2, "uniform", "licence check once a day: a benign daily call",
                "licensing.tailspintoys.com", company="Tailspin Toys"),
        Program(benign, "ntp_dc", ("dc-01",), "svchost.exe", "162.159.200.123", 123, 1024, 0.5,
                "uniform", "the domain controller's time service polling NTP",
                "time.cloudflare.com", company="Microsoft Corporation", proto="udp"),
    ]  # fmt: skip


def _devices() -> dict[str, str]:
    return dict([*WORKSTATIONS, *SERVERS, RESOLVER])


def _schedule(rng: np.random.Generator, prog: Program) -> np.ndarray:
    """Connection times (s from the start) of one device running ``prog``."""
    start = prog.from_day * 86_400 + rng.uniform(0, prog.sleep_s)
    n = int((SPAN_S - start) / (prog.sleep_s * (1 - prog.jitter_pct / 100))) + 2
    j = prog.jitter_pct / 100
    if prog.shape == "one_sided":
        gaps = prog.sleep_s * (1 - rng.uniform(0, j, n))
    else:
        gaps = prog.sleep_s * (1 + rng.uniform(-j, j, n))
    times = start + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    times = times[times < SPAN_S]
    if prog.shape == "workhours":  # the implant sleeps outside 09-17 on weekdays
        day = (times // 86_400).astype(np.int64)
        hour = times % 86_400 / 3600
        times = times[(day % 7 < 5) & (hour >= 9) & (hour < 17)]
    if prog.shape == "burst":  # each check-in is 3-6 connections within 10 s
        size = rng.integers(3, 7, times.size)
        starts = np.repeat(times, size)
        offsets = rng.uniform(0, 10, starts.size)
        first = np.concatenate([[0], np.cumsum(size)[:-1]])
        offsets[first] = 0.0
        times = np.sort(starts + offsets)
    return times


def _frame(n: int, **columns: object) -> pl.DataFrame:
    # arrays and lists are columns; anything else is one value repeated
    return pl.DataFrame(
        {k: v if isinstance(v, (np.ndarray, list)) else [v] * n for k, v in columns.items()}
    )


def _random_labels(
    rng: np.random.Generator, n: int, length: int, alphabet: np.ndarray
) -> list[str]:
    """``n`` random labels (base32 or hex), vectorised."""
    codes = alphabet[rng.integers(0, alphabet.size, (n, length))]
    return (
        pl.Series(np.ascontiguousarray(codes).view(f"S{length}").ravel()).cast(pl.String).to_list()
    )


def _connections(rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every connection and every DNS query of the week (before any writer formats them)."""
    ips = _devices()
    conns: list[pl.DataFrame] = []
    queries: list[pl.DataFrame] = []
    for prog in programs():
        for device in prog.devices:
            times = _schedule(rng, prog)
            n = times.size
            if prog.shape == "dns":
                labels = _random_labels(rng, n, 24, _B32)
                queries.append(
                    _frame(n, t=times, device=device, query=[f"{x}.{prog.remote}" for x in labels],
                           qtype="TXT", answer=None, prog=prog.name)
                )  # fmt: skip
                continue
            state = np.where(rng.uniform(size=n) < 2 / 3, "S0", "REJ") if prog.failed else "SF"
            conns.append(
                _frame(n, t=times, device=device, prog=prog.name, process=prog.process,
                       remote=prog.remote, port=prog.port, proto=prog.proto, url=prog.name_seen,
                       company=prog.company, state=state)
            )  # fmt: skip
    conns += _browsing(rng)
    frame = pl.concat(conns, how="diagonal_relaxed")
    frame = frame.with_columns(pl.col("device").replace_strict(ips).alias("device_ip"))
    queries.append(_lookups(frame))
    queries.append(_reputation_lookups(rng))
    dns = pl.concat(queries, how="diagonal_relaxed").with_columns(
        pl.col("device").replace_strict(ips).alias("device_ip")
    )
    return frame.sort("t", "device", "remote"), dns.sort("t", "device", "query")


def _browsing(rng: np.random.Generator) -> list[pl.DataFrame]:
    """People browsing 40 sites in work hours (and a little at other times)."""
    # Most sites are small; the first two are Google's and Microsoft's front ends,
    # which every browser reaches (the updater and the sync client share them).
    sites = ["www.google.com", "www.office.com"] + [f"site{i:02d}.example" for i in range(38)]
    site_ips = ["142.250.180.14", "13.107.42.12"] + [
        f"203.0.{113 + i // 20}.{10 + i % 20}" for i in range(38)
    ]
    out = []
    for device, _ in WORKSTATIONS:
        n = int(rng.integers(150, 250))
        day = rng.integers(0, DAYS, n)
        hour = np.where(rng.uniform(size=n) < 0.9, rng.uniform(9, 17, n), rng.uniform(0, 24, n))
        times = np.sort(day * 86_400 + hour * 3600)
        pick = np.where(rng.uniform(size=n) < 0.3, rng.integers(0, 2, n), rng.integers(2, 40, n))
        out.append(
            _frame(n, t=times, device=device, prog=None, process="msedge.exe",
                   remote=np.array(site_ips)[pick], port=443, proto="tcp",
                   url=np.array(sites)[pick], company="Microsoft Corporation", state="SF")
        )  # fmt: skip
    return out


def _lookups(conns: pl.DataFrame) -> pl.DataFrame:
    """A device looks a name up before its first connection in each hour (the cache)."""
    named = conns.filter(pl.col("url").is_not_null()).sort("t")
    first = named.filter(
        pl.struct("device", "url", (pl.col("t") // 3600).alias("h")).is_first_distinct()
    )
    return first.select(
        (pl.col("t") - 0.05).alias("t"),
        "device",
        pl.col("url").alias("query"),
        pl.lit("A").alias("qtype"),
        pl.col("remote").alias("answer"),
        pl.lit(None, pl.String).alias("prog"),
    )


def _reputation_lookups(rng: np.random.Generator) -> pl.DataFrame:
    """An antivirus asks its reputation service about file hashes: unique names of one
    domain, at random times, on every workstation (prevalent, so never a tunnel)."""
    frames = []
    for device, _ in WORKSTATIONS:
        n = int(rng.integers(40, 70))
        times = np.sort(rng.uniform(0, SPAN_S, n))
        labels = _random_labels(rng, n, 32, _HEX)
        frames.append(
            _frame(n, t=times, device=device,
                   query=[f"{x}.rep.avcloud-lookup.example" for x in labels],
                   qtype="A", answer="127.0.0.2", prog=None)
        )  # fmt: skip
    return pl.concat(frames)


def _device_id(name: str) -> str:
    return hashlib.sha1(f"{name}.{DOMAIN}".encode()).hexdigest()


def write_defender(conns: pl.DataFrame, path: Path, rng: np.random.Generator) -> pl.DataFrame:
    """The DeviceNetworkEvents export (every device onboarded; no DNS query rows)."""
    n = conns.height
    lag = rng.uniform(0, 0.4, n)
    ns = ((conns.get_column("t").to_numpy() + lag) * 1e9).astype(np.int64) + START_S * 10**9
    names = conns.get_column("device").unique().to_list()
    ids = {d: _device_id(d) for d in names}
    workstation = pl.col("device").str.starts_with("ws-")
    frame = conns.with_columns(
        pl.Series("_ns", ns),
        pl.Series("LocalPort", rng.integers(49152, 65535, n)),
    ).select(
        "_ns",
        pl.col("device").replace_strict(ids, return_dtype=pl.String).alias("DeviceId"),
        pl.format("{}.{}", pl.col("device"), pl.lit(DOMAIN)).alias("DeviceName"),
        pl.when(pl.col("state") == "SF")
        .then(pl.lit("ConnectionSuccess"))
        .otherwise(pl.lit("ConnectionFailed"))
        .alias("ActionType"),
        pl.col("remote").alias("RemoteIP"),
        pl.col("port").alias("RemotePort"),
        pl.col("url").alias("RemoteUrl"),
        pl.col("device_ip").alias("LocalIP"),
        "LocalPort",
        pl.when(pl.col("proto") == "udp").then(pl.lit("Udp")).otherwise(pl.lit("Tcp"))
        .alias("Protocol"),
        pl.lit("Public").alias("RemoteIPType"),
        pl.col("process").alias("InitiatingProcessFileName"),
        pl.when(workstation).then(pl.lit("corp")).otherwise(pl.lit("nt authority"))
        .alias("InitiatingProcessAccountDomain"),
        pl.when(workstation).then(pl.lit("user")).otherwise(pl.lit("system"))
        .alias("InitiatingProcessAccountName"),
        pl.col("company").alias("InitiatingProcessVersionInfoCompanyName"),
        pl.lit(None, pl.String).alias("AdditionalFields"),
        "prog",
    ).sort("_ns", "DeviceName")  # fmt: skip
    out = frame.with_columns(kusto_times(frame.get_column("_ns")).alias("Timestamp"))
    out.select(DEFENDER_COLUMNS).write_csv(path)
    return out


def _named(names: list[str], *exprs: pl.Expr) -> list[pl.Expr]:
    """The expressions named after a log's fields, in order."""
    return [e.alias(n) for e, n in zip(exprs, names, strict=True)]


def _uids(rng: np.random.Generator, n: int, prefix: str) -> list[str]:
    return [prefix + s for s in _random_labels(rng, n, 17, _B32)]


def write_zeek(
    conns: pl.DataFrame, dns: pl.DataFrame, folder: Path, rng: np.random.Generator
) -> None:
    """conn.log.gz (the connections and the DNS queries' UDP flows) and dns.log.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    resolver_ip = RESOLVER[1]
    flows = pl.concat(
        [
            conns.select("t", "device_ip", "remote", "port", "proto", "state", "prog"),
            dns.select("t", "device_ip", pl.lit(resolver_ip).alias("remote"),
                       pl.lit(53).alias("port"),
                       pl.lit("udp").alias("proto"), pl.lit("SF").alias("state"), "prog"),
        ],
        how="vertical_relaxed",
    ).sort("t", "device_ip", "remote")  # fmt: skip
    n = flows.height
    # An implant with no task sends the same check-in every time (a fixed-size request
    # and metadata cookie; a few bytes of TLS padding vary); software uploads vary.
    idle = {p.name: int(rng.integers(200, 900)) for p in programs() if p.label == "beacon"}
    ok = pl.col("state") == "SF"
    conn = flows.with_columns(
        pl.Series("uid", _uids(rng, n, "C")),
        pl.Series("op", rng.integers(49152, 65535, n)),
        pl.Series("ob", rng.integers(180, 1400, n)),
        pl.Series("rb", rng.integers(200, 5000, n)),
        pl.Series("dur", rng.uniform(0.005, 1.2, n)),
    ).select(
        _named(
        CONN_FIELDS,
        epoch_text((pl.col("t") * 1e6).cast(pl.Int64) + START_S * 1_000_000),
        pl.col("uid"),
        pl.col("device_ip"),
        pl.col("op").cast(pl.String),
        pl.col("remote"),
        pl.col("port").cast(pl.String),
        pl.col("proto"),
        pl.when(pl.col("port") == 53).then(pl.lit("dns")).when(pl.col("port") == 123)
        .then(pl.lit("ntp")).when(ok & (pl.col("port") == 443)).then(pl.lit("ssl"))
        .otherwise(pl.lit("-")),
        pl.when(ok).then(pl.col("dur").round(6).cast(pl.String)).otherwise(pl.lit("-")),
        pl.when(~ok).then(0)
        .when(pl.col("prog").is_in(list(idle)))
        .then(pl.col("prog").replace_strict(idle, default=0, return_dtype=pl.Int64)
              + pl.col("ob") % 8)
        .otherwise(pl.col("ob")).cast(pl.String),
        pl.when(ok).then(pl.col("rb")).otherwise(0).cast(pl.String),
        pl.col("state"),
        pl.lit("T"),
        pl.lit("F"),
        pl.lit("0"),
        pl.when(ok).then(pl.lit("ShADadFf")).when(pl.col("state") == "REJ").then(pl.lit("Sr"))
        .otherwise(pl.lit("S")),
        pl.lit("1"), pl.lit("60"), pl.lit("1"), pl.lit("60"), pl.lit("(empty)"),
    ))  # fmt: skip
    open_ns, close_ns = START_S * 10**9, (START_S + SPAN_S) * 10**9
    write_log(folder / "conn.log.gz", "conn", CONN_FIELDS, CONN_TYPES, conn, lambda p: p,
              open_ns, close_ns)  # fmt: skip
    m = dns.height
    qtype_codes = {"A": "1", "TXT": "16"}
    rows = dns.with_columns(
        pl.Series("uid", _uids(rng, m, "D")),
        pl.Series("op", rng.integers(49152, 65535, m)),
        pl.Series("trans", rng.integers(1, 65535, m)),
        pl.Series("rtt", rng.uniform(0.001, 0.05, m)),
    ).select(
        _named(
        DNS_FIELDS,
        epoch_text((pl.col("t") * 1e6).cast(pl.Int64) + START_S * 1_000_000),
        pl.col("uid"),
        pl.col("device_ip"),
        pl.col("op").cast(pl.String),
        pl.lit(resolver_ip),
        pl.lit("53"),
        pl.lit("udp"),
        pl.col("trans").cast(pl.String),
        pl.col("rtt").round(6).cast(pl.String),
        pl.col("query"),
        pl.lit("1"),
        pl.lit("C_INTERNET"),
        pl.col("qtype").replace_strict(qtype_codes, return_dtype=pl.String),
        pl.col("qtype"),
        pl.lit("0"),
        pl.lit("NOERROR"),
        pl.lit("F"), pl.lit("F"), pl.lit("T"), pl.lit("T"), pl.lit("0"),
        pl.when(pl.col("qtype") == "TXT").then(pl.lit("TXT 44 ")
        + pl.col("query").str.slice(0, 8)).otherwise(pl.col("answer")).fill_null("-"),
        pl.lit("300.000000"),
        pl.lit("F"),
    ))  # fmt: skip
    write_log(folder / "dns.log.gz", "dns", DNS_FIELDS, DNS_TYPES, rows, lambda p: p,
              open_ns, close_ns)  # fmt: skip


def ground_truth(conns: pl.DataFrame, dns: pl.DataFrame) -> pl.DataFrame:
    """One row per program, with the rows each source logged for it."""
    ips = _devices()
    counts = dict(conns.group_by("prog").len().iter_rows())
    queries = dict(dns.group_by("prog").len().iter_rows())
    out = []
    for p in programs():
        start = datetime.fromtimestamp(START_S + p.from_day * 86_400, tz=timezone.utc)
        rows = counts.get(p.name, 0) if p.in_defender else 0
        out.append(
            {
                "label": p.label,
                "name": p.name,
                "device": ";".join(f"{d}.{DOMAIN}" for d in p.devices),
                "device_ip": ";".join(ips[d] for d in p.devices),
                "process": p.process,
                "remote_ip": p.remote,
                "remote_port": p.port,
                "domain": p.remote if p.shape == "dns" else p.name_seen,
                "sleep_s": p.sleep_s,
                "jitter_pct": p.jitter_pct,
                "jitter_kind": "one_sided" if p.shape == "one_sided" else "uniform",
                "loss_pct": 0.0,
                "schedule": "workhours" if p.shape == "workhours" else "always",
                "devices_count": len(p.devices),
                "in_defender": p.in_defender,
                "in_zeek": True,
                "notes": p.notes,
                "active_from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "active_to": datetime.fromtimestamp(START_S + SPAN_S, tz=timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "defender_mode": "rows",
                "defender_rows": rows,
                "defender_connections": rows,
                "zeek_connections": counts.get(p.name, 0) + queries.get(p.name, 0),
            }
        )
    return pl.DataFrame(out).select(TRUTH_COLUMNS)


def generate_implants(out_dir: str | Path, seed: int = 15) -> pl.DataFrame:
    """Write the implants scenario into ``out_dir`` and return its ground truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    conns, dns = _connections(rng)
    write_defender(conns, out / FILES[0], rng)
    write_zeek(conns, dns, out / "zeek", rng)
    table = ground_truth(conns, dns)
    table.write_csv(out / FILES[3])
    return table
