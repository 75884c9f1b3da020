"""Background traffic: people browsing, Windows' own chatter, inbound connections.

Random in time (Poisson, shaped by the office's hours) and spread over many
destinations, so it is what periodic programs have to stand out from.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import conns as C
from .clock import HOUR, in_work_hours, to_ns, weekend_daytime
from .world import (
    APP_CONNECT,
    APP_HTTP,
    APP_INBOUND,
    APP_TLS,
    HTTP_BACKGROUND,
    M365_SITES,
    PROCESS_INDEX,
    PROXY_IP,
    PROXY_PORT,
    SCANNER_PREFIXES,
    WEB_SITES,
    WINDOWS_UPDATE,
    Destination,
    Devices,
    public_ips,
    select_devices,
)


def _poisson_times(
    rng: np.random.Generator,
    devices: np.ndarray,
    span_s: float,
    rate_per_h: float,
    shape: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Events at ``rate_per_h * shape(t)`` per device (shape <= 1), by thinning."""
    n = rng.poisson(rate_per_h * span_s / HOUR * devices.size)
    t = rng.uniform(0, span_s, n)
    dev = devices[rng.integers(0, devices.size, n)] if devices.size else np.zeros(0, int)
    keep = rng.random(n) < shape(t)
    return dev[keep], t[keep]


def _always(t: np.ndarray) -> np.ndarray:
    return np.ones_like(t)


def _office_shape(t: np.ndarray) -> np.ndarray:
    """People browse in work hours, a little in weekend daytime, rarely at night."""
    return np.where(in_work_hours(t), 1.0, np.where(weekend_daytime(t), 0.2, 0.06))


def add_browsing(
    rows: C.Rows,
    rng: np.random.Generator,
    devices: Devices,
    dests: C.Destinations,
    taken: set[str],
    span_s: float,
    scale: float,
) -> None:
    """Bursts of connections (a page and its resources) from browsers, Outlook and Teams."""
    web_ips = np.array(public_ips(rng, 2 * len(WEB_SITES), taken)).reshape(-1, 2)
    m365_ips = np.array(public_ips(rng, 2 * len(M365_SITES), taken)).reshape(-1, 2)

    def table(sites: tuple[str, ...], ips: np.ndarray, port: int, app: int) -> np.ndarray:
        return np.array(
            [[dests.add(Destination(str(ip), port, s, app)) for ip in ips[k]] for k, s in
             enumerate(sites)]
        )  # fmt: skip

    web_tls, web_http = (
        table(WEB_SITES, web_ips, 443, APP_TLS),
        table(WEB_SITES, web_ips, 80, APP_HTTP),
    )
    m365_tls = table(M365_SITES, m365_ips, 443, APP_TLS)
    dev, t0 = _poisson_times(rng, devices.workstations, span_s, 1.6 * scale, _office_shape)
    bursts = t0.size
    size = 1 + rng.poisson(2.0, bursts)
    rep = np.repeat(np.arange(bursts), size)
    gaps = rng.exponential(1.5, rep.size)
    firsts = np.cumsum(size) - size
    gaps[firsts] = 0.0
    cum = np.cumsum(gaps)
    t = t0[rep] + cum - np.repeat(cum[firsts], size)  # may spill past the end: cut below
    # what the burst is: 0 favourite browser, 1 the other browser, 2 Outlook, 3 Teams
    kind = rng.choice(4, size=bursts, p=[0.55, 0.10, 0.20, 0.15])
    fav = devices.browser[dev]
    browser_proc = np.array([PROCESS_INDEX["chrome.exe"], PROCESS_INDEX["msedge.exe"]])
    proc = np.select(
        [kind == 0, kind == 1, kind == 2],
        [browser_proc[fav], browser_proc[1 - fav], PROCESS_INDEX["OUTLOOK.EXE"]],
        PROCESS_INDEX["ms-teams.exe"],
    )
    mac = devices.is_mac[dev]
    proc = np.where(
        mac,
        np.where(
            kind >= 2, PROCESS_INDEX["Microsoft Teams"], PROCESS_INDEX["Google Chrome Helper"]
        ),
        proc,
    )
    is_web = (kind < 2)[rep]
    n = rep.size
    rank = np.arange(1, len(WEB_SITES) + 1)
    weights = rank**-1.1 / np.sum(rank**-1.1)
    site = rng.choice(len(WEB_SITES), size=n, p=weights)
    which_ip = rng.integers(0, 2, n)
    plain = rng.random(n) < 0.03
    web_dest = np.where(plain, web_http[site, which_ip], web_tls[site, which_ip])
    m365_dest = m365_tls[rng.integers(0, len(M365_SITES), n), which_ip]
    dest = np.where(is_web, web_dest, m365_dest)
    app = np.where(is_web & plain, APP_HTTP, APP_TLS)
    ok = rng.random(n) >= 0.02
    inside = t < span_s
    rows.add(
        t_ns=to_ns(t[inside]), device=dev[rep][inside], proc=proc[rep][inside],
        dest=dest[inside], prog=-1, app=app[inside], ok=ok[inside], defender=C.DEF_ROW,
        zeek=True,
        bytes_out=np.where(ok, np.rint(rng.lognormal(np.log(900), 0.9, n)), 0)[inside],
        bytes_in=np.where(ok, np.rint(rng.lognormal(np.log(15000), 1.8, n)), 0)[inside],
        dur_us=np.where(ok, rng.lognormal(np.log(1.5), 1.3, n) * 1e6, 0)[inside],
        local_port=C.ephemeral_ports(rng, n)[inside], url=(rng.random(n) < 0.85)[inside],
    )  # fmt: skip


def add_background(
    rows: C.Rows,
    rng: np.random.Generator,
    devices: Devices,
    dests: C.Destinations,
    taken: set[str],
    span_s: float,
    scale: float,
) -> None:
    """Windows' own chatter, a developer's pip through the proxy, and inbound connections."""
    svchost = PROCESS_INDEX["svchost.exe"]
    windows = devices.windows
    wu_ips = public_ips(rng, len(WINDOWS_UPDATE), taken)
    wu = np.array(
        [
            dests.add(Destination(ip, 443, d, APP_TLS))
            for ip, d in zip(wu_ips, WINDOWS_UPDATE, strict=True)
        ]
    )
    dev, t = _poisson_times(rng, windows, span_s, 0.2 * scale, _always)
    _add_simple(rows, rng, t, dev, svchost, wu[rng.integers(0, wu.size, t.size)],
                APP_TLS, (1500, 0.5), (40000, 1.5))  # fmt: skip

    http_ips = public_ips(rng, len(HTTP_BACKGROUND), taken)
    http = np.array([
        dests.add(Destination(ip, 80, host, APP_HTTP, uri, "GET", ua))
        for ip, (host, uri, ua) in zip(http_ips, HTTP_BACKGROUND, strict=True)
    ])  # fmt: skip
    dev, t = _poisson_times(rng, windows, span_s, 0.12 * scale, _always)
    _add_simple(rows, rng, t, dev, svchost, http[rng.integers(0, http.size, t.size)],
                APP_HTTP, (180, 0.1), (1500, 0.8))  # fmt: skip

    developers = select_devices("ws:2,4", devices, rng)
    pip = np.array([
        dests.add(Destination(PROXY_IP, PROXY_PORT, host, APP_CONNECT, f"{host}:443", "CONNECT"))
        for host in ("pypi.org", "files.pythonhosted.org")
    ])  # fmt: skip
    dev, t = _poisson_times(rng, developers, span_s, 0.4 * scale, in_work_hours)
    pip_dest = pip[rng.integers(0, pip.size, t.size)]
    python = PROCESS_INDEX["python.exe"]
    _add_simple(rows, rng, t, dev, python, pip_dest, APP_CONNECT, (2000, 0.5), (9e4, 1.5))

    # internet scanners knock on the web server's HTTPS port (Defender and Zeek both see it)
    web_server = select_devices("srv:5", devices, rng)
    dev, t = _poisson_times(rng, web_server, span_s, 1.0, _always)
    scanner_ips = public_ips(rng, t.size, taken, SCANNER_PREFIXES)
    scanners = np.array(
        [dests.add(Destination(ip, 443, None, APP_INBOUND)) for ip in scanner_ips], dtype=np.int64
    )
    _add_simple(rows, rng, t, dev, PROCESS_INDEX["System"], scanners, APP_INBOUND,
                (300, 0.3), (1200, 0.3))  # fmt: skip

    # the IT admin's workstation opens RDP and SMB sessions to servers (east-west: no Zeek)
    admin = select_devices("ws:1", devices, rng)
    admin_ip = str(devices.ips[admin[0]])
    rdp = dests.add(Destination(admin_ip, 3389, None, APP_INBOUND))
    smb = dests.add(Destination(admin_ip, 445, None, APP_INBOUND))
    dev, t = _poisson_times(rng, devices.servers, span_s, 0.1, in_work_hours)
    is_rdp = rng.random(t.size) < 0.5
    rows.add(
        t_ns=to_ns(t), device=dev,
        proc=np.where(is_rdp, svchost, PROCESS_INDEX["System"]), dest=np.where(is_rdp, rdp, smb),
        prog=-1, app=APP_INBOUND, ok=True, defender=C.DEF_ROW, zeek=False, bytes_out=0,
        bytes_in=0, dur_us=0, local_port=C.ephemeral_ports(rng, t.size), url=False,
    )  # fmt: skip


def _add_simple(
    rows: C.Rows,
    rng: np.random.Generator,
    t: np.ndarray,
    dev: np.ndarray,
    proc: int,
    dest: np.ndarray,
    app: int,
    out_spec: tuple[float, float],
    in_spec: tuple[float, float],
) -> None:
    n = t.size
    rows.add(
        t_ns=to_ns(t), device=dev, proc=proc, dest=dest, prog=-1, app=app, ok=True,
        defender=C.DEF_ROW, zeek=True,
        bytes_out=np.rint(rng.lognormal(np.log(out_spec[0]), out_spec[1], n)),
        bytes_in=np.rint(rng.lognormal(np.log(in_spec[0]), in_spec[1], n)),
        dur_us=rng.lognormal(np.log(0.4), 0.8, n) * 1e6, local_port=C.ephemeral_ports(rng, n),
        url=rng.random(n) < 0.9,
    )  # fmt: skip
