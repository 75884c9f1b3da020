"""The periodic programs of the scenario: planted beacons and benign look-alikes.

Each program is a line in ``PROGRAMS``; the ground truth is written from this table, so
what is planted and what is documented can never drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from .world import (
    APP_CONNECT,
    APP_HTTP,
    APP_HTTP_NOHOST,
    APP_TCP,
    APP_TLS,
    APP_TLS_NOSNI,
    PROXY_IP,
    PROXY_PORT,
    Destination,
)

BEACON = "beacon"
BENIGN = "benign_periodic"

# How Defender records a program's connections.
ROWS = "rows"  # one ConnectionSuccess/Request/Failed row per connection
AGGREGATED = "aggregated"  # only hourly *AggregatedReport rows
ABSENT = "absent"


@dataclass(frozen=True)
class Program:
    """A process that calls one destination every ``sleep_s`` seconds from some devices."""

    name: str
    label: str
    process: str
    where: str  # device selector, see world.select_devices
    dest: Destination
    sleep_s: float
    jitter_pct: float = 0.0
    jitter_kind: str = "uniform"  # uniform: sleep*U(1-j, 1+j); one_sided: sleep*(1-U(0, j))
    loss_pct: float = 0.0  # share of connections Defender does not log
    schedule: str = "always"  # always | workhours
    active_from_h: float = 0.0  # hours from the start; negative counts back from the end
    active_until_h: float | None = None  # None = the end; negative counts back from the end
    defender: str = ROWS
    zeek: bool = True
    url_share: float = 0.9  # share of Defender rows that carry RemoteUrl
    bytes_out: tuple[float, float] = (1000.0, 0.02)  # mean, relative spread
    bytes_in: tuple[float, float] = (500.0, 0.02)
    task_share: float = 0.0  # share of beacon calls that return a tasking (bigger reply)
    fail_pct: float = 0.0  # random connection failures
    outage: tuple[float, float] | None = None  # (from hour, hours) the far end is down
    notes: str = ""

    @property
    def mean_interval_s(self) -> float:
        """The expected time between calls: one-sided jitter only shortens sleeps."""
        if self.jitter_kind == "one_sided":
            return self.sleep_s * (1 - self.jitter_pct / 200)
        return self.sleep_s


def _tls(ip: str, port: int, domain: str | None) -> Destination:
    return Destination(ip, port, domain, APP_TLS)


# fmt: off
PROGRAMS: tuple[Program, ...] = (
    # ---- planted beacons --------------------------------------------------------------
    Program(
        "a_rundll32_60s", BEACON, "rundll32.exe", "ws:3",
        _tls("185.141.27.66", 443, "static.msft-cdn-sync.example"),
        sleep_s=60, jitter_pct=10, active_from_h=-16, bytes_out=(1180, 0.01),
        bytes_in=(420, 0.02), task_share=0.02,
        notes="classic 60 s HTTPS beacon, last 16 h only",
    ),
    Program(
        "b_powershell_300s", BEACON, "powershell.exe", "ws:7",
        _tls("91.215.85.14", 8443, "api.weather-widget.example"),
        sleep_s=300, jitter_pct=30, bytes_out=(2400, 0.02), bytes_in=(900, 0.03),
        task_share=0.03, outage=(26.0, 2.0),
        notes="C2 down for 2 h on day 2 (ConnectionFailed rows, Zeek S0/REJ)",
    ),
    Program(
        "c_renamed_5s", BEACON, "dllhost32.exe", "ws:11",
        _tls("45.153.160.2", 443, "kb-update.example"),
        sleep_s=5, jitter_pct=20, active_from_h=-10.9, active_until_h=-10.4,
        bytes_out=(350, 0.02), bytes_in=(210, 0.02), task_share=0.05,
        notes="interactive 5 s session for 30 min; renamed binary without version info; "
        "whole-second deltas would look jittery",
    ),
    Program(
        "d_msiexec_lossy", BEACON, "msiexec.exe", "ws:5",
        _tls("104.168.32.50", 443, "dl.office-templates.example"),
        sleep_s=600, jitter_pct=0, loss_pct=40, bytes_out=(800, 0.01), bytes_in=(3100, 0.01),
        notes="no jitter but Defender misses 40 % of connections, so deltas are 2x/3x the "
        "sleep; Zeek sees every connection",
    ),
    Program(
        "e_cobaltstrike_120s", BEACON, "dllhost.exe", "ws:9",
        Destination("185.62.57.90", 443, "jquery-cdn.example", APP_TLS_NOSNI),
        sleep_s=120, jitter_pct=50, jitter_kind="one_sided", active_from_h=-24,
        url_share=0.0, bytes_out=(560, 0.02), bytes_in=(350, 0.02), task_share=0.03,
        notes="Cobalt Strike jitter sleep*(1-U(0,0.5)); TLS without SNI; name only in dns.log",
    ),
    Program(
        "f_explorer_2h", BEACON, "explorer.exe", "ws:13,14",
        _tls("45.95.147.236", 443, "backup-eu.example"),
        sleep_s=7200, jitter_pct=10, bytes_out=(4100, 0.02), bytes_in=(1200, 0.02),
        notes="long sleep: 36 calls a device over 3 days; spread to a second device",
    ),
    Program(
        "g_mshta_workhours", BEACON, "mshta.exe", "ws:15",
        Destination("91.243.44.11", 80, "news-feed.example", APP_HTTP, "/rss/headlines.xml"),
        sleep_s=900, jitter_pct=15, schedule="workhours", bytes_out=(410, 0.02),
        bytes_in=(1650, 0.02), task_share=0.03,
        notes="plain HTTP with an IE7 user agent nobody else uses; 09:00-17:00 weekdays",
    ),
    Program(
        "h_regsvr32_rawip", BEACON, "regsvr32.exe", "ws:17",
        Destination("104.234.118.7", 4444, None, APP_HTTP_NOHOST, "/submit.php?id=8812", "POST"),
        sleep_s=900, jitter_pct=20, url_share=0.0, bytes_out=(230, 0.02),
        bytes_in=(180, 0.02), task_share=0.03,
        notes="raw IP, no name anywhere; HTTP/1.0 POST without a Host header on port 4444",
    ),
    Program(
        "i_spoolsv_aggregated", BEACON, "spoolsv.exe", "ws:21",
        _tls("185.117.88.3", 443, "print-drivers.example"),
        sleep_s=60, jitter_pct=10, defender=AGGREGATED, zeek=False,
        notes="only in hourly ConnectionSuccessAggregatedReport rows (about 60 a hour)",
    ),
    Program(
        "j_tailspin_new_dest", BEACON, "TailspinUpdater.exe", "srv:4",
        _tls("91.134.9.160", 443, "cdn.tailspin-updates.example"),
        sleep_s=1800, jitter_pct=10, active_from_h=-20, bytes_out=(1500, 0.02),
        bytes_in=(800, 0.02),
        notes="supply chain: third-party updater on a server reaches a new, rare destination "
        "in the last day only",
    ),
    Program(
        "k_msbuild_proxy", BEACON, "msbuild.exe", "ws:23",
        Destination(PROXY_IP, PROXY_PORT, "graph-sync.example", APP_CONNECT,
                    "graph-sync.example:443", "CONNECT"),
        sleep_s=900, jitter_pct=20, url_share=1.0, bytes_out=(1900, 0.02),
        bytes_in=(5200, 0.02),
        notes="through the explicit proxy: the remote end is the proxy (private); the C2 "
        "name is only in the CONNECT request (http.log) and Defender's RemoteUrl",
    ),
    # ---- benign periodic software on many devices (prevalence filters these) ----------
    Program(
        "msmpeng_cloud", BENIGN, "MsMpEng.exe", "win",
        _tls("13.107.5.88", 443, "wdcp.microsoft.com"),
        sleep_s=300, jitter_pct=5, defender=AGGREGATED, zeek=False, fail_pct=0.3,
        notes="Defender cloud check on every Windows device; aggregated, about 12 a hour",
    ),
    Program(
        "teams_heartbeat", BENIGN, "ms-teams.exe", "win_ws",
        _tls("52.113.194.132", 443, "teams.events.data.microsoft.com"),
        sleep_s=90, jitter_pct=30, schedule="workhours", defender=AGGREGATED, zeek=False,
        notes="aggregated, about 40 a hour in work hours only",
    ),
    Program(
        "onedrive_sync", BENIGN, "OneDrive.exe", "win_ws",
        _tls("13.107.42.12", 443, "skyapi.live.net"),
        sleep_s=7200, jitter_pct=10, bytes_out=(2100, 0.1), bytes_in=(5400, 0.1),
    ),
    Program(
        "google_update", BENIGN, "GoogleUpdate.exe", "win_ws:0.8",
        _tls("142.250.180.14", 443, "update.googleapis.com"),
        sleep_s=3600, jitter_pct=2, bytes_out=(1300, 0.02), bytes_in=(2800, 0.02),
        notes="hourly update check on 80 % of workstations",
    ),
    # ---- benign periodic software on few devices (the hard negatives) -----------------
    Program(
        "fabrikam_backup", BENIGN, "fbkagent.exe", "srv:2,3",
        _tls("20.71.14.200", 443, "vault.fabrikam.com"),
        sleep_s=900, jitter_pct=3, bytes_out=(48000, 0.3), bytes_in=(1200, 0.05),
        notes="backup agent on 2 servers; upload sizes vary",
    ),
    Program(
        "litware_monitoring", BENIGN, "litmon.exe", "srv:2,4,5",
        Destination("52.178.17.3", 8086, "ingest.litware.com", APP_TCP),
        sleep_s=60, jitter_pct=2, defender=AGGREGATED, bytes_out=(1024, 0.005),
        bytes_in=(64, 0.0),
        notes="monitoring agent on 3 servers, identical bytes every minute; Defender "
        "aggregates it (about 60 a hour)",
    ),
    Program(
        "tailspin_licence", BENIGN, "TailspinUpdater.exe", "srv:4",
        _tls("40.91.76.224", 443, "license.tailspintoys.com"),
        sleep_s=14400, jitter_pct=5, bytes_out=(900, 0.01), bytes_in=(1400, 0.01),
        notes="licence check every 4 h on one server",
    ),
    Program(
        "northwind_sync", BENIGN, "nwsync.exe", "ws:2,4",
        _tls("20.50.73.9", 443, "sync.northwindtraders.com"),
        sleep_s=1800, jitter_pct=5, bytes_out=(700, 0.2), bytes_in=(500, 0.2),
        notes="line-of-business sync client on 2 workstations",
    ),
)
# fmt: on
