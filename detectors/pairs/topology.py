"""Where a connection sits in the site's network: direction, monitored hosts, protocol.

Every connection gets a direction from the one place that knows where our network
ends (``config.NetworkSettings``): *outbound* (one of ours to the internet),
*inbound* (the internet to one of ours), *internal* (ours to ours) and
*external-only* (neither end is ours: transit a sensor happened to see). "Ours" means
an address in the internal subnets, or a monitored host: a public address a sensor
watches, declared or inferred here.

Two kinds of rows need two rules:

* a *host* row (Defender, Elastic Defend: the device logged its own connection) has
  a device that is ours by definition; the direction comes from the action
  (``InboundConnectionAccepted`` / ``connection_accepted`` are inbound) and whether
  the remote address is ours;
* a *sensor* row (Zeek, a mapped firewall CSV: the loader set the device to the
  originating address, so ``device_id == local_ip`` and no process) has two
  addresses, each ours or not.

Inbound rows are turned round so that the device is always our host: a sensor's
inbound row becomes (device = the monitored host, remote = the external source,
remote port = the port served on our host), and a host's inbound row gets the served
port as its remote port (the peer's port is ephemeral). So an inbound pair is
"external source -> our host:port", and counting devices never counts the internet
scanners that reach a sensor host.

Everything is vectorised: IPv4 membership is integer arithmetic in polars; IPv6
addresses (few) are tested once per distinct address with ``ipaddress``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.chunks import like
from detectors.pairs.icmp import sensor_type

_INBOUND_ACTIONS = (S.ACTION_INBOUND, S.ECS_INBOUND)
# Addresses that never leave the local segment (multicast, broadcast, "this network",
# the reserved 240/4): a remote end here is never the internet, whatever the settings.
LOCAL_SEGMENT = ("224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8", "ff00::/8", "::/128")
_V4 = r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$"

# Monitored-host inference output.
M_IP = "ip"
M_SOURCES = "external_sources"  # distinct non-internal addresses that reached it
M_DESTINATIONS = "destinations"  # distinct addresses it opened connections to
M_DECLARED = "declared"  # from the config (true) or inferred from the data (false)
MONITORED_SCHEMA: dict[str, pl.DataType] = {
    M_IP: pl.String(),
    M_SOURCES: pl.UInt32(),
    M_DESTINATIONS: pl.UInt32(),
    M_DECLARED: pl.Boolean(),
}

# Protocol names as the sources write them -> the canonical value.
_PROTOCOLS = {
    "tcp": S.PROTO_TCP, "tcpv4": S.PROTO_TCP, "tcpv6": S.PROTO_TCP, "6": S.PROTO_TCP,
    "udp": S.PROTO_UDP, "udpv4": S.PROTO_UDP, "udpv6": S.PROTO_UDP, "17": S.PROTO_UDP,
    "icmp": S.PROTO_ICMP, "icmpv4": S.PROTO_ICMP, "icmpv6": S.PROTO_ICMP,
    "ipv6-icmp": S.PROTO_ICMP, "icmp6": S.PROTO_ICMP, "1": S.PROTO_ICMP, "58": S.PROTO_ICMP,
}  # fmt: skip


# --- addresses -----------------------------------------------------------------------


def _v4_number(ip: pl.Expr) -> pl.Expr:
    """An IPv4 address (or IPv4-mapped IPv6) as an integer; null for anything else."""
    text = ip.str.strip_chars().str.replace(r"^(?i)::ffff:", "")
    parts = text.str.extract_groups(_V4)
    octets = [parts.struct.field(str(i)).cast(pl.Int64, strict=False) for i in (1, 2, 3, 4)]
    valid = pl.all_horizontal([(o >= 0) & (o <= 255) for o in octets])
    number = octets[0] * 16777216 + octets[1] * 65536 + octets[2] * 256 + octets[3]
    return pl.when(valid).then(number)


def _split_networks(
    networks: Sequence[str],
) -> tuple[list[tuple[int, int]], list[ipaddress.IPv6Network]]:
    v4: list[tuple[int, int]] = []
    v6: list[ipaddress.IPv6Network] = []
    for text in networks:
        net = ipaddress.ip_network(text.strip(), strict=False)
        if isinstance(net, ipaddress.IPv4Network):
            v4.append((int(net.network_address), int(net.broadcast_address)))
        else:
            v6.append(net)
    return v4, v6


def in_networks(ips: pl.Series, networks: Sequence[str]) -> pl.Series:
    """True where the address lies in one of ``networks`` (CIDR blocks or addresses).

    Each distinct value is tested once (a site has thousands of addresses in millions
    of rows: the regex parse per row cost 47 s per million rows): IPv4 as integer
    ranges, parsed once per value; other text (IPv6, names, junk) with ``ipaddress``.
    The rows then take their value's answer from a hash lookup. Null and names are
    never inside: a proxied host name is not one of our addresses.
    """
    v4, v6 = _split_networks(networks)
    distinct = ips.drop_nulls().unique().rename("ip").to_frame()
    distinct = distinct.with_columns(_v4_number(pl.col("ip")).alias("_n"))
    number = pl.col("_n")
    inside_v4 = pl.any_horizontal([number.is_between(lo, hi) for lo, hi in v4] or [pl.lit(False)])
    hits = distinct.filter(inside_v4.fill_null(False)).get_column("ip").to_list()
    if v6:
        others = distinct.filter(number.is_null() & pl.col("ip").str.contains(":"))
        hits += [ip for ip in others.get_column("ip").to_list() if _in_v6(ip, v6)]
    if not hits:  # no address inside (the internet side): no second pass over the rows
        return pl.Series("inside", np.zeros(ips.len(), dtype=bool))
    if len(hits) == distinct.height:  # every address inside (the devices' own side)
        return ips.is_not_null().alias("inside")
    hit = pl.Series(hits, dtype=ips.dtype).implode()
    return ips.is_in(hit).fill_null(False).alias("inside")


def _in_v6(text: str, networks: list[ipaddress.IPv6Network]) -> bool:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return isinstance(addr, ipaddress.IPv6Address) and any(addr in net for net in networks)


def sensor_rows() -> pl.Expr:
    """Rows a network sensor wrote: the loader made the originator the device."""
    return (pl.col(S.DEVICE_ID) == pl.col(S.LOCAL_IP)).fill_null(False) & pl.col(
        S.PROCESS
    ).is_null()


# --- protocol --------------------------------------------------------------------------


def protocol_expr() -> pl.Expr:
    """The protocol as "tcp", "udp" or "icmp" (Defender's Tcp/TcpV4, Zeek's tcp, numbers);
    null when unknown or another protocol."""
    raw = pl.col(S.PROTOCOL).str.strip_chars().str.to_lowercase()
    return raw.replace_strict(_PROTOCOLS, default=None, return_dtype=pl.String()).alias(S.PROTOCOL)


def normalize_protocol(events: pl.DataFrame) -> pl.DataFrame:
    """Canonical protocol values, and no ports on ICMP rows.

    ICMP has types and codes, not ports (Zeek writes the type as ``id.orig_p`` and the
    code as ``id.resp_p``): an ICMP row's remote port is null, so its pair is
    (device, remote address) and nothing is ever ranked by an ICMP "port"; a sensor
    row's type is kept in ``icmp_type`` (``detectors.pairs.icmp``), shown, never ranked.
    """
    # canonical value per distinct text (a handful), then looked up per row
    distinct = events.select(pl.col(S.PROTOCOL).unique().drop_nulls())
    canonical = distinct.with_columns(protocol_expr().alias("_c"))
    mapping = dict(zip(*canonical.get_columns(), strict=True))
    if any(text != value for text, value in mapping.items()):  # else the column stays shared
        events = events.with_columns(
            pl.col(S.PROTOCOL).replace_strict(mapping, default=None, return_dtype=pl.String())
        )
    icmp = (pl.col(S.PROTOCOL) == S.PROTO_ICMP).fill_null(False)
    if not events.select(icmp.any()).item():  # no ICMP: the ports stay as loaded, shared
        return events
    return events.with_columns(
        pl.when(icmp).then(None).otherwise(pl.col(S.REMOTE_PORT)).alias(S.REMOTE_PORT),
        sensor_type(icmp, sensor_rows()),  # the type is kept as what it is (pairs.icmp)
    )


# --- monitored hosts ---------------------------------------------------------------------


def infer_monitored(events: pl.DataFrame, settings: NetworkSettings) -> pl.DataFrame:
    """Monitored hosts: declared ones, plus public addresses that look like a sensor's host.

    A sensor on an internet-facing server sees that server's address receive
    connections from thousands of distinct external sources (scanners, clients) and
    originate the site's own traffic (updates, NTP, DNS). An address with at least
    ``monitored_min_sources`` distinct non-internal originators reaching it that
    itself originates connections to at least ``monitored_min_destinations`` distinct
    addresses is inferred (sensor rows only: a host row's device is ours already).
    One row per host (``MONITORED_SCHEMA``), most sources first.
    """
    # only distinct (local, remote) pairs are counted: the sensor rows' two addresses,
    # projected before filtering (filtering the frame copied every column of every row)
    sensor = (
        events.lazy()
        .filter(sensor_rows() & pl.col(S.REMOTE_IP).is_not_null())
        .select(S.LOCAL_IP, S.REMOTE_IP)
        .unique()
        .collect()
    )
    declared = pl.DataFrame(
        {M_IP: list(settings.monitored)}, schema={M_IP: pl.String()}
    ).with_columns(pl.lit(True).alias(M_DECLARED))
    local_internal = in_networks(sensor.get_column(S.LOCAL_IP), settings.internal)
    remote_internal = in_networks(sensor.get_column(S.REMOTE_IP), settings.internal)
    sensor = sensor.with_columns(local_internal.alias("_li"), remote_internal.alias("_ri"))
    received = (
        sensor.filter(~pl.col("_li") & ~pl.col("_ri"))
        .group_by(pl.col(S.REMOTE_IP).alias(M_IP))
        .agg(pl.col(S.LOCAL_IP).n_unique().cast(pl.UInt32).alias(M_SOURCES))
    )
    originated = (
        sensor.filter(~pl.col("_li"))
        .group_by(pl.col(S.LOCAL_IP).alias(M_IP))
        .agg(pl.col(S.REMOTE_IP).n_unique().cast(pl.UInt32).alias(M_DESTINATIONS))
    )
    facts = received.join(originated, on=M_IP, how="full", coalesce=True).with_columns(
        pl.col(M_SOURCES).fill_null(0), pl.col(M_DESTINATIONS).fill_null(0)
    )
    inferred = pl.DataFrame(schema={M_IP: pl.String()})
    if settings.infer_monitored:
        inferred = facts.filter(
            (pl.col(M_SOURCES) >= settings.monitored_min_sources)
            & (pl.col(M_DESTINATIONS) >= settings.monitored_min_destinations)
        ).select(M_IP)
    hosts = (
        pl.concat([declared, inferred.with_columns(pl.lit(False).alias(M_DECLARED))])
        .unique(M_IP, keep="first", maintain_order=True)
        .join(facts, on=M_IP, how="left")
    )
    return (
        hosts.with_columns(pl.col(M_SOURCES).fill_null(0), pl.col(M_DESTINATIONS).fill_null(0))
        .select(list(MONITORED_SCHEMA))
        .cast(MONITORED_SCHEMA)  # type: ignore[arg-type]
        .sort([M_SOURCES, M_IP], descending=[True, False])
    )


def describe_monitored(hosts: pl.DataFrame) -> list[str]:
    """One line per monitored host for the user: which, and why it counts as ours."""
    lines = []
    for row in hosts.iter_rows(named=True):
        how = "declared in [network] monitored" if row[M_DECLARED] else "inferred"
        lines.append(
            f"monitored host {row[M_IP]} ({how}): reached by {row[M_SOURCES]:,} external "
            f"sources, opens connections to {row[M_DESTINATIONS]:,} addresses"
        )
    return lines


# --- direction ----------------------------------------------------------------------------


def direction(
    events: pl.DataFrame, settings: NetworkSettings, monitored: Sequence[str]
) -> pl.Series:
    """Each row's direction (``S.DIRECTIONS``; null without a remote address).

    A row re-keyed to a proxied host name is outbound (the name is not ours); a remote
    end on the local segment (multicast, broadcast) is internal; see the module
    docstring for host and sensor rows.
    """
    sensor = events.select(sensor_rows()).to_series()
    return _direction(events, settings, monitored, sensor)


def _direction(
    events: pl.DataFrame, settings: NetworkSettings, monitored: Sequence[str], sensor: pl.Series
) -> pl.Series:
    """``direction`` given each row's ``sensor_rows()``, cut as ``events``' columns."""
    ours = (*settings.internal, *monitored)
    remote_ours = in_networks(events.get_column(S.REMOTE_IP), (*ours, *LOCAL_SEGMENT))
    ro = pl.col("ro")
    host_dir = (
        pl.when(ro)
        .then(pl.lit(S.DIR_INTERNAL))
        .when(pl.col("accepted"))
        .then(pl.lit(S.DIR_INBOUND))
        .otherwise(pl.lit(S.DIR_OUTBOUND))
    )
    frame = events.select(
        pl.col(S.ACTION).is_in(list(_INBOUND_ACTIONS)).fill_null(False).alias("accepted"),
        pl.col(S.REMOTE_IP).is_null().alias("no_remote"),
    ).with_columns(remote_ours.alias("ro"))
    if not sensor.any():  # host rows only: the local end is ours, not looked at
        expr = pl.when(pl.col("no_remote")).then(None).otherwise(host_dir)
    else:
        local_ours = in_networks(events.get_column(S.LOCAL_IP), ours)
        frame = frame.with_columns(sensor.alias("sensor"), local_ours.alias("lo"))
        lo = pl.col("lo") | ~pl.col("sensor")
        sensor_dir = (
            pl.when(lo & ro)
            .then(pl.lit(S.DIR_INTERNAL))
            .when(lo)
            .then(pl.lit(S.DIR_OUTBOUND))
            .when(ro)
            .then(pl.lit(S.DIR_INBOUND))
            .otherwise(pl.lit(S.DIR_EXTERNAL_ONLY))
        )
        expr = (
            pl.when(pl.col("no_remote"))
            .then(None)
            .when(pl.col("sensor"))
            .then(sensor_dir)
            .otherwise(host_dir)
        )
    values = frame.select(expr.cast(pl.String).alias(S.DIRECTION)).to_series()
    return like(values, events.to_series(0))


def orient_inbound(events: pl.DataFrame) -> pl.DataFrame:
    """Turn inbound rows round so the device is our host (see the module docstring).

    Sensor rows swap ends (device, local and remote addresses, bytes). The served port
    on our host becomes both the local and the remote port of every inbound row (the
    peer's ephemeral port is dropped), so one external source polling one service is
    one pair however many ephemeral ports it uses.
    """
    return _orient(events, events.select(sensor_rows()).to_series())


def _orient(events: pl.DataFrame, sensor_row: pl.Series) -> pl.DataFrame:
    """``orient_inbound`` given each row's ``sensor_rows()``."""
    inbound = events.get_column(S.DIRECTION) == S.DIR_INBOUND
    sensor_in = (inbound & sensor_row).fill_null(False)
    host_in = (inbound & ~sensor_row).fill_null(False)
    any_sensor, any_host = sensor_in.any(), host_in.any()
    if not any_sensor and not any_host:
        return events
    # the masks join the frame as columns cut as its own (``chunks``), then go
    layout = events.to_series(0)
    masks = (like(sensor_in, layout).alias("_si"), like(host_in, layout).alias("_hi"))
    sensor, host = pl.col("_si"), pl.col("_hi")

    def pick(when: pl.Expr, then: str, other: str) -> pl.Expr:
        return pl.when(when).then(pl.col(then)).otherwise(pl.col(other)).alias(other)

    # Only the columns some row changes are rewritten: the others stay the loaded
    # events' own buffers (the run keeps those too, to place again with new settings).
    if not any_sensor:
        picks = [pick(host, S.LOCAL_PORT, S.REMOTE_PORT)]
    else:
        picks = [
            pick(sensor, S.REMOTE_IP, S.DEVICE_ID),
            pick(sensor, S.REMOTE_IP, S.DEVICE_NAME),
            pick(sensor, S.REMOTE_IP, S.LOCAL_IP),
            pick(sensor, S.LOCAL_IP, S.REMOTE_IP),
            pick(sensor, S.REMOTE_PORT, S.LOCAL_PORT),
            pick(host, S.LOCAL_PORT, S.REMOTE_PORT),
            pick(sensor, S.BYTES_IN, S.BYTES_OUT),
            pick(sensor, S.BYTES_OUT, S.BYTES_IN),
        ]
    return events.with_columns(*masks).with_columns(picks).drop("_si", "_hi")


def annotate(
    events: pl.DataFrame, settings: NetworkSettings, monitored: Sequence[str]
) -> pl.DataFrame:
    """Protocol normalised, a direction on every row, inbound rows oriented to our host.

    Which rows a sensor wrote is found once for both steps (they do not change it)."""
    events = normalize_protocol(events)
    sensor = events.select(sensor_rows()).to_series()
    events = events.with_columns(_direction(events, settings, monitored, sensor))
    return _orient(events, sensor)


def hunted_mask(frame: pl.DataFrame, type_column: str | None = S.REMOTE_IP_TYPE) -> pl.Series:
    """True where a row is traffic between our hosts and the internet.

    Placed events (with ``direction``): outbound or inbound, which includes rows
    re-keyed to a proxied host. Events never placed (a detector run on its own):
    the remote address is public, as ``netclass.public_mask`` says.
    """
    if S.DIRECTION in frame.columns:
        hunted = frame.get_column(S.DIRECTION).is_in(list(S.HUNTED_DIRECTIONS))
        return hunted.fill_null(False).alias("is_public")
    from detectors.base.netclass import public_mask

    return public_mask(frame, S.REMOTE_IP, type_column)
