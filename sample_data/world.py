"""The simulated organisation: its devices, users, processes and the internet they reach.

Everything here is small lookup tables; the per-connection arrays in ``simulate.py``
index into them, so the writers turn indices into text with one gather per column.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

# A Wednesday: the default three days are all workdays, so work-hours traffic shows daily.
START = datetime(2026, 11, 18, tzinfo=timezone.utc)
START_WEEKDAY = START.weekday()  # Monday = 0
WORK_HOURS = (9, 17)  # UTC; the office is in London

AD_DOMAIN = "contoso"  # InitiatingProcessAccountDomain of signed-in users
DNS_DOMAIN = "contoso.com"  # devices are named ws-001.contoso.com
PROXY_IP = "10.0.0.8"  # an explicit HTTP proxy a few applications use
PROXY_PORT = 3128
EGRESS_IP = "81.2.69.160"  # DeviceInfo PublicIP: everyone leaves through one NAT address

MAC_SHARE = 0.08  # of workstations
SERVER_SHARE = 1 / 6  # of devices
WINDOWS11_SHARE = 0.7  # of Windows workstations; the rest run Windows 10

# (OSPlatform, OSVersion, OSBuild) as Defender's DeviceInfo reports them.
OS_WINDOWS11 = ("Windows11", "10.0", "22631")
OS_WINDOWS10 = ("Windows10", "10.0", "19045")
OS_MACOS = ("macOS", "14.6", "")
SERVER_OS = (
    ("WindowsServer2022", "10.0", "20348"),
    ("WindowsServer2019", "10.0", "17763"),
    ("WindowsServer2022", "10.0", "20348"),
    ("WindowsServer2016", "10.0", "14393"),
    ("WindowsServer2022", "10.0", "20348"),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "amira adam alex bea carlos chen dana eli fatima gita hana ivan jade kofi lena "
    "marco nadia omar priya quinn rosa sam tariq uma victor wei xena yusuf zoe "
    "aaron bianca diego elena felix grace hugo ines jonas kira liam"
)
_LAST = _words(
    "khan smith garcia wong okafor novak silva patel costa berg muller rossi kim "
    "nguyen ali haddad larsen moreau ivanova tanaka reyes fischer obi brown"
)


@dataclass(frozen=True)
class Devices:
    """One entry per device; workstations come first, then servers."""

    names: np.ndarray  # DeviceName, lowercase FQDN as Defender reports it
    ids: np.ndarray  # DeviceId, 40 hex digits
    ips: np.ndarray  # LocalIP / Zeek id.orig_h
    is_server: np.ndarray
    is_mac: np.ndarray
    os: np.ndarray  # index into os_table
    os_table: tuple[tuple[str, str, str], ...]
    users: np.ndarray  # signed-in user's account name ("" on servers)
    browser: np.ndarray  # 0 = Chrome, 1 = Edge: each user has a favourite

    @property
    def count(self) -> int:
        return int(self.names.shape[0])

    @property
    def windows_workstations(self) -> np.ndarray:
        return np.flatnonzero(~self.is_server & ~self.is_mac)

    @property
    def workstations(self) -> np.ndarray:
        return np.flatnonzero(~self.is_server)

    @property
    def servers(self) -> np.ndarray:
        return np.flatnonzero(self.is_server)

    @property
    def windows(self) -> np.ndarray:
        return np.flatnonzero(~self.is_mac)


def _host_ip(prefix_octets: tuple[int, int], index: int, first_subnet: int) -> str:
    """The index-th host address in 10.x.y.z, 250 hosts per /24 starting at .10."""
    subnet = first_subnet + index // 250
    return (
        f"{prefix_octets[0]}.{prefix_octets[1] + subnet // 256}.{subnet % 256}.{10 + index % 250}"
    )


def _hex_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    raw = digits[rng.integers(0, 16, size=(count, 40))]
    return np.array([bytes(row).decode() for row in raw], dtype=object)


def _user_names(rng: np.random.Generator, count: int) -> np.ndarray:
    pairs = [f"{f}.{last}" for f in _FIRST for last in _LAST]
    order = rng.permutation(len(pairs))
    names = [pairs[order[i % len(pairs)]] for i in range(count)]
    return np.array(
        [n if i < len(pairs) else f"{n}{i // len(pairs)}" for i, n in enumerate(names)],
        dtype=object,
    )


def build_devices(count: int, rng: np.random.Generator) -> Devices:
    """``count`` devices: about a sixth servers (at least 2), a few Macs, the rest Windows."""
    if count < 8:
        raise ValueError("the scenario needs at least 8 devices")
    n_srv = max(2, round(count * SERVER_SHARE))
    n_ws = count - n_srv
    n_mac = max(1, round(n_ws * MAC_SHARE))
    ws_width = max(3, len(str(n_ws)))
    srv_width = max(2, len(str(n_srv)))
    names = [f"ws-{i + 1:0{ws_width}d}.{DNS_DOMAIN}" for i in range(n_ws)]
    names += [f"srv-{i + 1:0{srv_width}d}.{DNS_DOMAIN}" for i in range(n_srv)]
    ips = [_host_ip((10, 0), i, 2) for i in range(n_ws)]
    ips += [f"10.0.1.{10 + i}" if i < 240 else _host_ip((10, 128), i, 0) for i in range(n_srv)]
    is_server = np.zeros(count, dtype=bool)
    is_server[n_ws:] = True
    is_mac = np.zeros(count, dtype=bool)
    is_mac[n_ws - n_mac : n_ws] = True  # the last workstations are the Macs
    os_table = (OS_WINDOWS11, OS_WINDOWS10, OS_MACOS, *SERVER_OS)
    os_index = np.where(rng.random(count) < WINDOWS11_SHARE, 0, 1)
    os_index[is_mac] = 2
    os_index[n_ws:] = 3 + np.arange(n_srv) % len(SERVER_OS)
    users = _user_names(rng, count)
    users[n_ws:] = ""
    return Devices(
        names=np.array(names, dtype=object),
        ids=_hex_ids(rng, count),
        ips=np.array(ips, dtype=object),
        is_server=is_server,
        is_mac=is_mac,
        os=os_index,
        os_table=os_table,
        users=users,
        browser=(rng.random(count) < 0.4).astype(np.int8),
    )


def select_devices(selector: str, devices: Devices, rng: np.random.Generator) -> np.ndarray:
    """Device indices for a program's ``where``.

    ``win`` every Windows device; ``win_ws`` every Windows workstation; ``win_ws:0.8`` a
    random 80 % of them; ``ws:3,19`` / ``srv:2`` the 3rd and 19th Windows workstation / 2nd
    server (1-based, wrapping round when the organisation is smaller).
    """
    kind, _, arg = selector.partition(":")
    pool = {
        "win": devices.windows,
        "win_ws": devices.windows_workstations,
        "ws": devices.windows_workstations,
        "srv": devices.servers,
    }[kind]
    if not arg:
        return pool
    if kind == "win_ws":
        share = float(arg)
        keep = max(1, round(pool.size * share))
        return np.sort(rng.choice(pool, size=keep, replace=False))
    ordinals = [int(x) - 1 for x in arg.split(",")]
    return np.unique(pool[np.array(ordinals) % pool.size])


# --- processes --------------------------------------------------------------------------
MICROSOFT = "Microsoft Corporation"
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
EDGE_UA = CHROME_UA + " Edg/131.0.0.0"
MAC_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Process:
    """InitiatingProcessFileName with its company, account kind and HTTP user agent."""

    file: str
    company: str  # "" = the binary has no version info (renamed or home-made)
    account: str  # "user" | "system" | "network service" | "local service"
    user_agent: str = "-"


PROCESSES: dict[str, Process] = {
    p.file: p
    for p in (
        Process("chrome.exe", "Google LLC", "user", CHROME_UA),
        Process("msedge.exe", MICROSOFT, "user", EDGE_UA),
        Process("OUTLOOK.EXE", MICROSOFT, "user", "Microsoft Office/16.0"),
        Process("ms-teams.exe", MICROSOFT, "user", EDGE_UA),
        Process("Google Chrome Helper", "Google LLC", "user", MAC_UA),
        Process("Microsoft Teams", MICROSOFT, "user", MAC_UA),
        Process("MsMpEng.exe", MICROSOFT, "system"),
        Process("OneDrive.exe", MICROSOFT, "user"),
        Process("GoogleUpdate.exe", "Google LLC", "system", "Google Update/1.3.36.372;winhttp"),
        Process("svchost.exe", MICROSOFT, "network service", "Microsoft-CryptoAPI/10.0"),
        Process("python.exe", "Python Software Foundation", "user", "pip/24.3.1"),
        Process("System", "", "system"),
        Process("fbkagent.exe", "Fabrikam, Inc.", "system"),
        Process("litmon.exe", "Litware, Inc.", "system"),
        Process("TailspinUpdater.exe", "Tailspin Toys", "system"),
        Process("nwsync.exe", "Northwind Traders", "user"),
        # the implants
        Process("rundll32.exe", MICROSOFT, "user"),
        Process("powershell.exe", MICROSOFT, "user"),
        Process("dllhost32.exe", "", "user"),
        Process("msiexec.exe", MICROSOFT, "user"),
        Process("dllhost.exe", MICROSOFT, "user"),
        Process("explorer.exe", MICROSOFT, "user"),
        Process(
            "mshta.exe", MICROSOFT, "user", "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1)"
        ),
        Process(
            "regsvr32.exe",
            MICROSOFT,
            "user",
            "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        ),
        Process("spoolsv.exe", MICROSOFT, "system"),
        Process(
            "msbuild.exe",
            MICROSOFT,
            "user",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/96.0.4664.110 Safari/537.36",
        ),
    )
}
PROCESS_NAMES: tuple[str, ...] = tuple(PROCESSES)
PROCESS_INDEX = {name: i for i, name in enumerate(PROCESS_NAMES)}


# --- destinations -------------------------------------------------------------------------
# Application kinds: how a connection looks on the wire (Zeek service and its logs).
APP_TCP = 0  # opaque TCP, conn.log only
APP_TLS = 1  # TLS with SNI
APP_TLS_NOSNI = 2  # TLS without SNI
APP_HTTP = 3  # HTTP with a Host header
APP_HTTP_NOHOST = 4  # HTTP/1.0 without a Host header
APP_CONNECT = 5  # HTTP CONNECT through the explicit proxy
APP_DNS = 6  # a DNS lookup (UDP to the resolver) for the destination's name
APP_INBOUND = 7  # someone else connected to this device


@dataclass(frozen=True)
class Destination:
    """Where a connection goes: the remote end, its name (or none) and how it talks."""

    ip: str
    port: int
    domain: str | None
    app: int
    uri: str = "/"
    method: str = "GET"
    user_agent: str | None = None  # overrides the process's own (NCSI, CryptoAPI)


# Public address blocks of the big clouds and CDNs the benign traffic lands in.
_BENIGN_PREFIXES = (
    "13.107",
    "20.190",
    "40.126",
    "52.96",
    "142.250",
    "172.217",
    "151.101",
    "104.16",
    "23.32",
    "3.120",
    "18.165",
    "54.230",
    "199.232",
    "140.82",
    "157.240",
)

# Sites people browse, most popular first (a Zipf-like share is given by rank).
WEB_SITES = (
    "www.google.com",
    "www.bing.com",
    "login.microsoftonline.com",
    "www.office.com",
    "contoso.sharepoint.com",
    "fonts.gstatic.com",
    "www.youtube.com",
    "github.com",
    "stackoverflow.com",
    "en.wikipedia.org",
    "www.linkedin.com",
    "www.bbc.co.uk",
    "news.ycombinator.com",
    "docs.python.org",
    "ajax.googleapis.com",
    "cdn.jsdelivr.net",
    "www.gov.uk",
    "www.theguardian.com",
    "learn.microsoft.com",
    "pypi.org",
    "www.amazon.co.uk",
    "www.reddit.com",
    "i.imgur.com",
    "www.nytimes.com",
    "weather.com",
    "www.atlassian.com",
    "contoso.atlassian.net",
    "slack.com",
    "zoom.us",
    "www.dropbox.com",
    "drive.google.com",
    "mail.google.com",
    "www.apple.com",
    "support.microsoft.com",
    "www.mozilla.org",
    "developer.mozilla.org",
    "www.w3.org",
    "www.cloudflare.com",
    "s3.amazonaws.com",
    "bucket-eu.s3.eu-west-2.amazonaws.com",
    "d3c4f5.cloudfront.net",
    "www.ft.com",
    "www.economist.com",
    "www.ebay.co.uk",
    "www.booking.com",
    "www.trainline.com",
    "www.tfl.gov.uk",
    "www.nhs.uk",
    "www.hsbc.co.uk",
    "www.barclays.co.uk",
    "medium.com",
    "www.notion.so",
    "www.figma.com",
    "gitlab.com",
    "registry.npmjs.org",
    "hub.docker.com",
    "www.reuters.com",
    "www.wired.com",
    "arxiv.org",
    "scholar.google.com",
)
M365_SITES = (
    "outlook.office365.com",
    "teams.microsoft.com",
    "attachments.office.net",
    "statics.teams.cdn.office.net",
)
# Plain-HTTP background lookups Windows makes (NCSI, certificate revocation).
HTTP_BACKGROUND = (
    ("www.msftconnecttest.com", "/connecttest.txt", "Microsoft NCSI"),
    ("ocsp.digicert.com", "/MFEwTzBNMEswSTAJBgUrDgMCGgUABBQ", "Microsoft-CryptoAPI/10.0"),
    (
        "crl.microsoft.com",
        "/pki/crl/products/MicRooCerAut2011_2011_03_22.crl",
        "Microsoft-CryptoAPI/10.0",
    ),
)
WINDOWS_UPDATE = (
    "fe3cr.delivery.mp.microsoft.com",
    "slscr.update.microsoft.com",
    "settings-win.data.microsoft.com",
)


# Where internet-wide scanners knock from (research scanners and hosting providers).
SCANNER_PREFIXES = ("162.142", "167.94", "71.6", "89.248", "193.163", "198.235", "80.82", "94.102")


def public_ips(
    rng: np.random.Generator,
    count: int,
    taken: set[str],
    prefixes: tuple[str, ...] = _BENIGN_PREFIXES,
) -> list[str]:
    """``count`` distinct global unicast addresses in the given /16 blocks."""
    out: list[str] = []
    while len(out) < count:
        prefix = prefixes[int(rng.integers(len(prefixes)))]
        ip = f"{prefix}.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"
        if ip not in taken and ipaddress.ip_address(ip).is_global:
            taken.add(ip)
            out.append(ip)
    return out
