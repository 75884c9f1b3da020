"""A second sample scenario: one day of a network with the topology real sites have.

Written beside the office sample (``sample_data/network/``), which it leaves alone:

* an explicit proxy (``proxy.corp``, 10.10.0.5:3128) that 16 of the 24 workstations
  use for all web traffic: Zeek sees conn rows to 10.10.0.5:3128 and http.log
  ``CONNECT host:443`` (HTTPS) or ``GET http://host/...`` (plain HTTP) requests;
  Defender logs rows to the proxy address with the proxied host as ``RemoteUrl``;
  the same sensor sees the proxy's own connection to the server a moment later
  (conn.log from 10.10.0.5, ssl.log ``server_name`` or http.log ``Host`` naming the
  host), and the proxy's own update checks (no name); the proxy is not onboarded to
  Defender; the other 8 workstations go out directly (NAT);
* a DMZ web server (``dmz-web-01``, 198.51.100.20) on which the Zeek sensor also runs:
  about 2,000 internet scanners touch it, three uptime checkers poll it, and it runs
  chrony and resolves through a public resolver itself;
* two domain controllers that forward DNS to public resolvers, three Linux servers
  and the DMZ server polling four NTP-pool addresses every 1,024 s (chrony's default
  maximum poll), a monitoring agent reporting to its SaaS every 120 s;
* four planted beacons: HTTPS through the proxy (CONNECT), plain HTTP through the
  proxy (absolute URI), one direct, and one inbound: a controller polling an implant
  on the DMZ server.

Every planted beacon and benign periodic program is a row of ``ground_truth.csv``
(the office sample's columns). A proxied program's remote address is the proxied
host name (how candidates are keyed); an inbound one's device is the DMZ server and
its remote address the controller. Deterministic: one seed, numpy only.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from .defender import COLUMNS as DEFENDER_COLUMNS
from .defender import kusto_times
from .truth import COLUMNS as TRUTH_COLUMNS
from .zeek import epoch_text, write_log

START = datetime(2026, 11, 18, tzinfo=timezone.utc)
START_S = int(START.timestamp())
DAY_S = 86_400
DOMAIN = "corp.example"
PROXY_IP, PROXY_PORT = "10.10.0.5", 3128
DMZ_NAME, DMZ_IP = f"dmz-web-01.{DOMAIN}", "198.51.100.20"
DCS = [(f"dc-01.{DOMAIN}", "10.10.0.10"), (f"dc-02.{DOMAIN}", "10.10.0.11")]
LINUX = [(f"srv-app-0{i}.{DOMAIN}", f"10.10.2.{10 + i}") for i in (1, 2, 3)]
MONITOR_HOST = (f"srv-mon-01.{DOMAIN}", "10.10.2.20")
NTP_POOL = ["162.159.200.123", "185.125.190.57", "91.189.91.157", "194.58.202.148"]
PUBLIC_DNS = ["8.8.8.8", "1.1.1.1"]
FILES = (
    "defender_network_events.csv",
    "zeek/conn.log.gz",
    "zeek/http.log",
    "ground_truth.csv",
    "zeek/ssl.log",
)
# The proxy's own connection to the server starts this long after the client's request
# (s, spread by uid): within [network] proxy_egress_window_ms, as a proxy on a LAN is.
EGRESS_DELAY_S = (0.02, 0.9)

# Zeek field lists (a subset of conn and http, as a site may configure them).
CONN_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "history",
]
CONN_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "string",
]
HTTP_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "trans_depth",
    "method",
    "host",
    "uri",
    "version",
    "user_agent",
    "status_code",
]
HTTP_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "count",
    "string",
    "string",
    "string",
    "string",
    "string",
    "count",
]
SSL_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "version",
    "server_name",
    "established",
]
SSL_TYPES = ["time", "string", "addr", "port", "addr", "port", "string", "string", "bool"]


@dataclass
class Device:
    name: str
    ip: str
    proxied: bool = False

    @property
    def device_id(self) -> str:
        return hashlib.sha1(self.name.encode()).hexdigest()


@dataclass
class Program:
    """One periodic program (a ground-truth row) and the connections it made."""

    label: str
    name: str
    devices: list[Device]
    process: str
    remote: str  # address, or host name when proxied (how candidates are keyed)
    port: int
    sleep_s: float
    jitter_pct: float
    notes: str
    proto: str = "tcp"
    proxied: str | None = None  # "CONNECT" or "GET" through the proxy
    inbound: bool = False
    uri: str = "/"
    rows: dict[str, int] = field(default_factory=dict)


_ORDINARY: dict[str, object] = {
    "prog": None,
    "proto": "tcp",
    "method": None,
    "uri": "/",
    "inbound": False,
    "state": "SF",
}


def _times(rng: np.random.Generator, sleep: float, jitter: float, span: float) -> np.ndarray:
    """Connection times (s from the start): each sleep drawn independently, as implants do."""
    n = int(span / sleep * 1.3) + 4
    gaps = sleep * (1 + rng.uniform(-jitter / 100, jitter / 100, n))
    times = rng.uniform(0, sleep) + np.cumsum(gaps)
    return times[times < span]


def _public_ips(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct global unicast IPv4 addresses (internet scanners)."""
    out: dict[str, None] = {}
    while len(out) < n:
        for value in rng.integers(0x05000000, 0xDF000000, size=n, dtype=np.int64):
            addr = ipaddress.IPv4Address(int(value))
            if addr.is_global and not str(addr).startswith("198.51.100."):
                out.setdefault(str(addr), None)
            if len(out) == n:
                break
    return list(out)


def _world() -> tuple[list[Device], list[Device], Device, list[Device], list[Device], Device]:
    ws = [
        Device(f"ws-{i:02d}.{DOMAIN}", f"10.10.1.{10 + i}", proxied=i <= 16) for i in range(1, 25)
    ]
    dcs = [Device(n, ip) for n, ip in DCS]
    linux = [Device(n, ip) for n, ip in LINUX]
    dmz = Device(DMZ_NAME, DMZ_IP)
    return ws, dcs, dmz, linux, [Device(*MONITOR_HOST)], Device(f"proxy.{DOMAIN}", PROXY_IP)


def programs() -> list[Program]:
    """The planted beacons and benign periodic programs."""
    ws, dcs, dmz, linux, monitor, _ = _world()
    by_name = {d.name.split(".")[0]: d for d in ws}
    beacons = [
        Program(
            "beacon",
            "p_proxied_connect_240s",
            [by_name["ws-07"]],
            "rundll32.exe",
            "cdn.sync-update.example",
            443,
            240,
            25,
            "HTTPS beacon through the proxy (CONNECT); every conn row goes to 10.10.0.5:3128",
            proxied="CONNECT",
        ),
        Program(
            "beacon",
            "p_proxied_http_600s",
            [by_name["ws-12"]],
            "powershell.exe",
            "telemetry.weather-app.example",
            80,
            600,
            10,
            "plain-HTTP beacon through the proxy (absolute-URI GET)",
            proxied="GET",
            uri="/api/v2/report",
        ),
        Program(
            "beacon",
            "p_direct_120s",
            [by_name["ws-20"]],
            "updater.exe",
            "185.220.101.44",
            443,
            120,
            20,
            "direct beacon from a workstation without the proxy",
        ),
        Program(
            "beacon",
            "p_inbound_dmz_275s",
            [dmz],
            "kworkerd",
            "45.77.12.34",
            8080,
            275,
            27,
            "a controller polls an implant on the internet-facing server the sensor "
            "runs on (curl every 200-350 s)",
            inbound=True,
        ),
    ]
    benign = [
        Program(
            "benign_periodic",
            "b_teams_presence_proxy",
            [d for d in ws if d.proxied][:8],
            "ms-teams.exe",
            "presence.teams.example",
            443,
            900,
            5,
            "presence heartbeat through the proxy on 8 workstations",
            proxied="CONNECT",
        ),
        Program(
            "benign_periodic",
            "b_monitoring_agent",
            monitor,
            "zabbix_agentd",
            "52.17.88.10",
            10051,
            120,
            2,
            "monitoring agent active checks to its SaaS",
        ),
        Program(
            "benign_periodic",
            "b_uptime_checker",
            [dmz],
            "nginx",
            "34.82.10.15",
            443,
            300,
            3,
            "an uptime service polls the public web server",
            inbound=True,
        ),
    ]
    for i, server in enumerate(NTP_POOL, start=1):
        benign.append(
            Program(
                "benign_periodic",
                f"b_chrony_pool_{i}",
                [*linux, dmz],
                "chronyd",
                server,
                123,
                1024,
                0.5,
                "chrony polling an NTP-pool address (maxpoll 10)",
                proto="udp",
            )
        )
    for resolver in PUBLIC_DNS:
        benign.append(
            Program(
                "benign_periodic",
                f"b_dns_forward_{resolver}",
                dcs,
                "dns.exe",
                resolver,
                53,
                300,
                30,
                "domain controllers forwarding DNS to a public resolver",
                proto="udp",
            )
        )
    return beacons + benign


def _rows(rng: np.random.Generator, span: float) -> pl.DataFrame:
    """Every connection of the day, one row each, before any writer formats it."""
    ws, dcs, dmz, _, _, _ = _world()
    rows: list[pl.DataFrame] = []

    def add(device: Device, times: np.ndarray, **values: object) -> None:
        """Rows of one device at ``times``; unnamed fields are an ordinary outbound,
        unproxied, unlabelled TCP connection that completed."""
        n = times.size
        base = {"t": times, "device": [device.name] * n, "device_ip": [device.ip] * n}
        fields = {**_ORDINARY, **values}
        rows.append(pl.DataFrame({**base, **{k: [v] * n for k, v in fields.items()}}))

    for prog in programs():
        for device in prog.devices:
            times = _times(rng, prog.sleep_s, prog.jitter_pct, span)
            if prog.name == "p_inbound_dmz_275s":  # curl between 200 and 350 s
                times = np.cumsum(rng.uniform(200, 350, int(span / 200) + 2))
                times = times[times < span]
            add(
                device,
                times,
                prog=prog.name,
                process=prog.process,
                remote=prog.remote,
                port=prog.port,
                proto=prog.proto,
                method=prog.proxied,
                uri=prog.uri,
                inbound=prog.inbound,
            )
    # Browsing: proxied workstations through the proxy, the others directly.
    sites = [f"site{i:03d}.example" for i in range(150)]
    site_ips = _public_ips(rng, 60)
    for device in ws:
        n = int(rng.integers(40, 80))
        times = np.sort(rng.uniform(0, span, n))
        picks = rng.integers(0, len(sites), n)
        for t, k in zip(times, picks, strict=True):
            if device.proxied:
                add(
                    device,
                    np.array([t]),
                    process="msedge.exe",
                    remote=sites[k],
                    port=443,
                    method="CONNECT",
                )
            else:
                add(
                    device,
                    np.array([t]),
                    process="msedge.exe",
                    remote=site_ips[k % 60],
                    port=443,
                    url=sites[k],
                )
        # DNS to the domain controllers: internal, never hunted
        for t in np.sort(rng.uniform(0, span, 15)):
            dc = dcs[int(t) % 2]
            add(
                device,
                np.array([t]),
                process="svchost.exe",
                remote=dc.ip,
                port=53,
                proto="udp",
            )
    # The DMZ server's own traffic and the scanners that hit it.
    add(
        dmz,
        np.sort(rng.uniform(0, span, 30)),
        process="systemd-resolved",
        remote="8.8.8.8",
        port=53,
        proto="udp",
    )
    add(
        dmz,
        np.sort(rng.uniform(0, span, 4)),
        process="apt",
        remote="91.189.91.83",
        port=80,
    )
    scanners = _public_ips(rng, 2000)
    ports = np.array([22, 23, 80, 443, 445, 3389, 8080])
    for ip in scanners:
        k = int(rng.integers(1, 4))
        for t, port in zip(rng.uniform(0, span, k), rng.choice(ports, k), strict=True):
            open_port = int(port) in (80, 443, 22)
            add(
                dmz,
                np.array([t]),
                process="nginx" if port != 22 else "sshd",
                remote=ip,
                port=int(port),
                inbound=True,
                state="SF" if open_port else "REJ",
            )
    frame = pl.concat(rows, how="diagonal_relaxed").sort("t", "device", "remote")
    n = frame.height
    return frame.with_columns(
        pl.Series("eph", rng.integers(49152, 65535, n), dtype=pl.Int32),
        pl.Series("orig_bytes", rng.integers(200, 1800, n), dtype=pl.Int64),
        pl.Series("resp_bytes", rng.integers(300, 6000, n), dtype=pl.Int64),
        pl.Series("duration", rng.uniform(0.01, 1.5, n)),
        pl.Series("uid_n", rng.permutation(n) + 10_000_000, dtype=pl.Int64),
        pl.Series("defender_lag", rng.uniform(0, 0.4, n)),
    )


def _uid() -> pl.Expr:
    return pl.format("CN{}x", pl.col("uid_n").cast(pl.String))


def _named(rows: pl.DataFrame, names: list[str], *exprs: pl.Expr) -> pl.DataFrame:
    """``rows.select(exprs)`` with the columns named after the log's fields."""
    return rows.select([e.alias(n) for e, n in zip(exprs, names, strict=True)])


def server_ip(name: str) -> str:
    """The public address a proxied host name resolves to (fixed per name: a CDN block)."""
    digest = hashlib.sha1(name.encode()).digest()
    return f"151.101.{digest[0]}.{digest[1] % 254 + 1}"


def proxy_egress(rows: pl.DataFrame) -> pl.DataFrame:
    """The proxy's own connections, as the sensor sees them: one per proxied request,
    from the proxy to the host's address, a moment after the client's request (the
    same program label), plus the proxy's own update checks (no name: never linked)."""
    via = rows.filter(pl.col("method").is_not_null())
    names = via.get_column("remote").unique().sort().to_list()
    low, high = EGRESS_DELAY_S
    delay = low + (pl.col("uid_n") % 997).cast(pl.Float64) / 997 * (high - low)
    own = via.with_columns(
        (pl.col("t") + delay).alias("t"),
        pl.lit(PROXY_IP).alias("device_ip"),
        pl.col("remote").alias("egress_name"),
        pl.col("remote").replace_strict({n: server_ip(n) for n in names}).alias("remote"),
        pl.col("method").alias("egress_method"),
        pl.lit(None, pl.String).alias("method"),
        pl.lit(f"proxy.{DOMAIN}").alias("device"),
        (pl.col("uid_n") + 50_000_000).alias("uid_n"),
        (49152 + pl.col("uid_n") % 16000).cast(pl.Int32).alias("eph"),
    )
    updates = rows.head(4).with_columns(
        pl.Series("t", [3.3 * 3600 + 6 * 3600 * i for i in range(4)]),
        pl.lit(PROXY_IP).alias("device_ip"),
        pl.lit(f"proxy.{DOMAIN}").alias("device"),
        pl.lit("apt").alias("process"),
        pl.lit("91.189.91.83").alias("remote"),
        pl.lit(80, pl.Int64).alias("port"),
        pl.lit("tcp").alias("proto"),
        pl.lit(None, pl.String).alias("method"),
        pl.lit(None, pl.String).alias("prog"),
        pl.lit(False).alias("inbound"),
        pl.lit("SF").alias("state"),
        (pl.int_range(4) + 90_000_000).cast(pl.Int64).alias("uid_n"),
    )
    return pl.concat([own, updates], how="diagonal_relaxed").sort("t", maintain_order=True)


def write_zeek(rows: pl.DataFrame, folder: Path) -> dict[str, int]:
    """conn.log.gz, http.log and ssl.log as a sensor on the LAN and on the DMZ server
    writes them: the proxy's clients, the proxy's own connections, the DMZ's traffic."""
    folder.mkdir(parents=True, exist_ok=True)
    egress = proxy_egress(rows)
    rows = pl.concat([rows, egress], how="diagonal_relaxed").sort("t", maintain_order=True)
    proxied = pl.col("method").is_not_null()
    inbound = pl.col("inbound")
    us = (pl.col("t") * 1e6).cast(pl.Int64) + START_S * 1_000_000
    conn = _named(
        rows,
        CONN_FIELDS,
        epoch_text(us),
        _uid(),
        pl.when(inbound).then(pl.col("remote")).otherwise(pl.col("device_ip")).alias("o"),
        pl.col("eph").cast(pl.String).alias("op"),
        pl.when(proxied)
        .then(pl.lit(PROXY_IP))
        .when(inbound)
        .then(pl.col("device_ip"))
        .otherwise(pl.col("remote"))
        .alias("r"),
        pl.when(proxied).then(pl.lit(PROXY_PORT)).otherwise(pl.col("port")).cast(pl.String),
        pl.col("proto"),
        pl.when(proxied)
        .then(pl.lit("http"))
        .when(pl.col("egress_method") == "CONNECT")
        .then(pl.lit("ssl"))
        .when(pl.col("egress_method") == "GET")
        .then(pl.lit("http"))
        .when(pl.col("port") == 53)
        .then(pl.lit("dns"))
        .when(pl.col("port") == 123)
        .then(pl.lit("ntp"))
        .otherwise(pl.lit("-")),
        pl.col("duration").round(6).cast(pl.String),
        pl.when(pl.col("state") == "SF").then(pl.col("orig_bytes")).otherwise(0).cast(pl.String),
        pl.when(pl.col("state") == "SF").then(pl.col("resp_bytes")).otherwise(0).cast(pl.String),
        pl.col("state"),
        pl.when(pl.col("state") == "SF").then(pl.lit("ShADadFf")).otherwise(pl.lit("Sr")),
    )
    close_ns = (START_S + DAY_S) * 1_000_000_000
    write_log(
        folder / "conn.log.gz",
        "conn",
        CONN_FIELDS,
        CONN_TYPES,
        conn,
        lambda p: p,
        START_S * 1_000_000_000,
        close_ns,
    )
    # requests to the proxy (CONNECT, absolute URI), and the proxy's own plain-HTTP
    # requests to the servers (relative URI, Host naming the host)
    via = rows.filter(proxied | (pl.col("egress_method") == "GET")).with_columns(
        pl.coalesce("method", "egress_method").alias("method"),
        pl.coalesce("egress_name", "remote").alias("name"),
        pl.col("egress_method").is_not_null().alias("own"),
    )
    target = pl.format("{}:{}", pl.col("name"), pl.col("port"))
    absolute = pl.format("http://{}{}", pl.col("name"), pl.col("uri"))
    own = pl.col("own")
    http = _named(
        via,
        HTTP_FIELDS,
        epoch_text(us + 1500),
        _uid(),
        pl.col("device_ip"),
        pl.col("eph").cast(pl.String),
        pl.when(own).then(pl.col("remote")).otherwise(pl.lit(PROXY_IP)),
        pl.when(own).then(pl.col("port")).otherwise(pl.lit(PROXY_PORT)).cast(pl.String),
        pl.lit("1"),
        pl.col("method"),
        pl.when(pl.col("method") == "CONNECT").then(target).otherwise(pl.col("name")),
        pl.when(pl.col("method") == "CONNECT")
        .then(target)
        .when(own)
        .then(pl.col("uri"))
        .otherwise(absolute),
        pl.lit("1.1"),
        pl.when(pl.col("process") == "powershell.exe")
        .then(pl.lit("Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1"))
        .otherwise(pl.lit("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/131.0")),
        pl.lit("200"),
    )
    write_log(
        folder / "http.log",
        "http",
        HTTP_FIELDS,
        HTTP_TYPES,
        http,
        lambda p: p,
        START_S * 1_000_000_000,
        close_ns,
    )
    tls = rows.filter(pl.col("egress_method") == "CONNECT")
    ssl = _named(
        tls,
        SSL_FIELDS,
        epoch_text((pl.col("t") * 1e6).cast(pl.Int64) + START_S * 1_000_000 + 3000),
        _uid(),
        pl.col("device_ip"),
        pl.col("eph").cast(pl.String),
        pl.col("remote"),
        pl.col("port").cast(pl.String),
        pl.lit("TLSv13"),
        pl.col("egress_name"),
        pl.lit("T"),
    )
    write_log(
        folder / "ssl.log",
        "ssl",
        SSL_FIELDS,
        SSL_TYPES,
        ssl,
        lambda p: p,
        START_S * 1_000_000_000,
        close_ns,
    )
    return {"conn": conn.height, "http": http.height, "ssl": ssl.height}


def write_defender(rows: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The DeviceNetworkEvents export: what each onboarded device logged of its own traffic.

    Scanners' connections to closed ports are not accepted, so Defender has no row for
    them; the proxy itself is not onboarded.
    """
    seen = rows.filter(pl.col("state") == "SF")
    proxied = pl.col("method").is_not_null()
    inbound = pl.col("inbound")
    ns = ((pl.col("t") + pl.col("defender_lag")) * 1e9).cast(pl.Int64) + START_S * 1_000_000_000
    remote_ip = pl.when(proxied).then(pl.lit(PROXY_IP)).otherwise(pl.col("remote"))
    private = remote_ip.str.starts_with("10.")
    ids = {d: hashlib.sha1(d.encode()).hexdigest() for d in seen.get_column("device").unique()}
    frame = seen.select(
        ns.alias("_ns"),
        pl.col("device").replace_strict(ids, return_dtype=pl.String).alias("DeviceId"),
        pl.col("device").alias("DeviceName"),
        pl.when(inbound)
        .then(pl.lit("InboundConnectionAccepted"))
        .otherwise(pl.lit("ConnectionSuccess"))
        .alias("ActionType"),
        remote_ip.alias("RemoteIP"),
        pl.when(proxied)
        .then(pl.lit(PROXY_PORT))
        .when(inbound)
        .then(pl.col("eph"))
        .otherwise(pl.col("port"))
        .alias("RemotePort"),
        pl.when(proxied).then(pl.col("remote")).otherwise(pl.col("url")).alias("RemoteUrl"),
        pl.col("device_ip").alias("LocalIP"),
        pl.when(inbound).then(pl.col("port")).otherwise(pl.col("eph")).alias("LocalPort"),
        pl.when(pl.col("proto") == "udp")
        .then(pl.lit("Udp"))
        .otherwise(pl.lit("Tcp"))
        .alias("Protocol"),
        pl.when(private).then(pl.lit("Private")).otherwise(pl.lit("Public")).alias("RemoteIPType"),
        pl.col("process").alias("InitiatingProcessFileName"),
        pl.when(pl.col("device").str.starts_with("ws-"))
        .then(pl.lit("corp"))
        .when(pl.col("device").str.starts_with("dc-"))
        .then(pl.lit("nt authority"))
        .otherwise(pl.lit(None, pl.String))
        .alias("InitiatingProcessAccountDomain"),
        pl.when(pl.col("device").str.starts_with("ws-"))
        .then(pl.lit("user"))
        .when(pl.col("device").str.starts_with("dc-"))
        .then(pl.lit("system"))
        .otherwise(pl.lit("root"))
        .alias("InitiatingProcessAccountName"),
        pl.lit(None, pl.String).alias("InitiatingProcessVersionInfoCompanyName"),
        pl.lit(None, pl.String).alias("AdditionalFields"),
        pl.col("prog"),
    ).sort("_ns")
    out = frame.with_columns(kusto_times(frame.get_column("_ns")).alias("Timestamp"))
    out.select(DEFENDER_COLUMNS).write_csv(path)
    return out


def ground_truth(
    rows: pl.DataFrame, defender: pl.DataFrame, zeek_conn: pl.DataFrame
) -> pl.DataFrame:
    """One row per program, with the rows each source logged for it."""
    d_counts = dict(defender.group_by("prog").len().iter_rows())
    z_counts = dict(zeek_conn.group_by("prog").len().iter_rows())
    out = []
    for p in programs():
        out.append(
            {
                "label": p.label,
                "name": p.name,
                "device": ";".join(d.name for d in p.devices),
                "device_ip": ";".join(d.ip for d in p.devices),
                "process": p.process,
                "remote_ip": p.remote,
                "remote_port": p.port,
                "domain": p.remote if p.proxied else None,
                "sleep_s": p.sleep_s,
                "jitter_pct": p.jitter_pct,
                "jitter_kind": "uniform",
                "loss_pct": 0.0,
                "schedule": "always",
                "devices_count": len(p.devices),
                "in_defender": True,
                "in_zeek": True,
                "notes": p.notes,
                "active_from": START.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "active_to": datetime.fromtimestamp(START_S + DAY_S, tz=timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "defender_mode": "rows",
                "defender_rows": d_counts.get(p.name, 0),
                "defender_connections": d_counts.get(p.name, 0),
                "zeek_connections": z_counts.get(p.name, 0),
            }
        )
    return pl.DataFrame(out).select(TRUTH_COLUMNS)


def generate_network(out_dir: str | Path, seed: int = 14) -> pl.DataFrame:
    """Write the network scenario into ``out_dir`` and return its ground truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = _rows(rng, float(DAY_S))
    write_zeek(rows, out / "zeek")
    defender = write_defender(rows, out / FILES[0])
    table = ground_truth(rows, defender, rows)
    table.write_csv(out / FILES[3])
    return table
