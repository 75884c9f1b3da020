"""Placement's shortcuts checked against plain per-row references.

Placement answers per distinct address (``in_networks``), skips the local end when no
row is a sensor's, and writes re-keyed values into the frame's own chunks
(``pairs.chunks``). Each is compared here with the obvious per-row computation on
frames cut into chunks, with IPv4, IPv6, IPv4-mapped, junk and null addresses.
"""

from __future__ import annotations

import ipaddress
from itertools import pairwise

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.chunks import like, scatter
from detectors.pairs.network import place
from detectors.pairs.topology import LOCAL_SEGMENT, direction, in_networks
from tests.unit.test_proxy import app
from tests.unit.test_topology import defender, events, zeek

ADDRESSES = [
    "10.0.2.5", "10.255.255.255", "172.16.0.1", "172.32.0.1", "192.168.1.9", "8.8.8.8",
    "203.0.113.7", "0.0.0.0", "224.0.0.251", " 10.0.0.9 ", "::ffff:10.1.2.3",
    "::FFFF:8.8.4.4", "fd00::1", "fe80::1", "2001:db8::5", "::1", "::", "ff02::fb",
    "999.1.1.1", "10.0.0", "not-an-ip", "cdn.example", "", None,
]  # fmt: skip
NETWORKS = [
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "203.0.113.7", "fd00::/8",
    "fe80::/10", "2001:db8::/32", "::1", *LOCAL_SEGMENT,
]  # fmt: skip


def inside(text: str | None, networks: list[str]) -> bool:
    """The per-row reference: ``ipaddress`` on the one value; an IPv4-mapped IPv6
    address written with a dotted quad is its IPv4 address; names and junk are outside."""
    if text is None:
        return False
    text = text.strip()
    if text.lower().startswith("::ffff:") and "." in text:
        text = text[7:]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    return any(address.version == n.version and address in n for n in nets)


def cut(values: list, dtype: pl.DataType, cuts: list[int]) -> pl.Series:
    """A series of ``values`` in chunks ending at ``cuts`` (as a loaded frame is)."""
    bounds = sorted({c % (len(values) + 1) for c in cuts} | {0, len(values)})
    parts = [pl.Series("x", values[a:b], dtype=dtype) for a, b in pairwise(bounds)]
    return pl.concat(parts, rechunk=False) if parts else pl.Series("x", [], dtype=dtype)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(ADDRESSES), max_size=40),
    st.lists(st.sampled_from(NETWORKS), max_size=5),
    st.lists(st.integers(0, 40), max_size=4),
)
def test_in_networks_matches_a_per_row_reference(values, networks, cuts):
    got = in_networks(cut(values, pl.String(), cuts), networks)
    assert got.dtype == pl.Boolean and got.null_count() == 0
    assert got.to_list() == [inside(v, networks) for v in values]


def reference_direction(row: dict, ours: list[str]) -> str | None:
    """The module docstring's rules, one row at a time."""
    if row[S.REMOTE_IP] is None:
        return None
    remote = inside(row[S.REMOTE_IP], [*ours, *LOCAL_SEGMENT])
    sensor = row[S.DEVICE_ID] == row[S.LOCAL_IP] and row[S.PROCESS] is None
    if not sensor:
        if remote:
            return S.DIR_INTERNAL
        accepted = row[S.ACTION] in (S.ACTION_INBOUND, S.ECS_INBOUND)
        return S.DIR_INBOUND if accepted else S.DIR_OUTBOUND
    local = inside(row[S.LOCAL_IP], ours)
    if local:
        return S.DIR_INTERNAL if remote else S.DIR_OUTBOUND
    return S.DIR_INBOUND if remote else S.DIR_EXTERNAL_ONLY


ROW = st.tuples(
    st.booleans(),  # a sensor's row (else a host's)
    st.sampled_from([a for a in ADDRESSES if a]),  # local
    st.sampled_from(ADDRESSES),  # remote
    st.sampled_from([S.ACTION_SUCCESS, S.ACTION_INBOUND, S.ECS_INBOUND, None]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(ROW, max_size=30),
    st.lists(st.sampled_from(["203.0.113.7", "8.8.8.8", "2001:db8::5"]), max_size=2),
    st.lists(st.integers(0, 30), max_size=3),
)
def test_direction_matches_a_per_row_reference(rows, monitored, cuts):
    built = [
        zeek(local, remote) if is_sensor else defender(remote, action=action, local_ip=local)
        for is_sensor, local, remote, action in rows
    ]
    frame = events(built)
    frame = frame.select(cut(frame.get_column(c).to_list(), frame.schema[c], cuts).alias(c)
                         for c in frame.columns)  # fmt: skip
    settings_ = NetworkSettings()
    got = direction(frame, settings_, monitored)
    ours = [*settings_.internal, *monitored]
    assert got.to_list() == [reference_direction(r, ours) for r in frame.iter_rows(named=True)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=1, max_size=30),
    st.lists(st.integers(0, 30), max_size=4),
    st.data(),
)
def test_scatter_into_chunks_equals_a_plain_scatter(values, cuts, data):
    column = cut(values, pl.String(), cuts)
    layout = cut(list(range(len(values))), pl.Int64(), data.draw(st.lists(st.integers(0, 30))))
    rows = sorted(data.draw(st.sets(st.integers(0, len(values) - 1))))
    new = data.draw(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=len(rows),
                             max_size=len(rows)))  # fmt: skip
    at = pl.Series(rows, dtype=pl.UInt32)
    got = scatter(column, at, pl.Series(new, dtype=pl.String), layout)
    expected = column.rechunk().scatter(at, pl.Series(new, dtype=pl.String)) if rows else column
    assert got.to_list() == expected.to_list()
    assert [c.len() for c in got.get_chunks()] == [c.len() for c in layout.get_chunks()]
    assert like(got.rechunk(), layout).to_list() == got.to_list()


def test_placed_columns_keep_the_loaded_chunks():
    """A frame read in pieces keeps its pieces through placement: a column in one chunk
    beside columns in several made polars copy the whole frame before every later step
    (the cost this guards). The rows are those of the same frame in one chunk."""
    rows = [
        defender("10.0.0.5", remote_port=3128, remote_url="https://c2.example/x"),
        defender("8.8.8.8", action=S.ACTION_INBOUND, local_port=22),
        zeek("198.51.100.4", "203.0.113.7", 443),  # a scanner reaching our host
        zeek("10.0.2.9", "93.184.216.34", 80),
        defender("10.0.0.5", remote_port=3128, remote_url="http://upd.example/"),
        zeek("203.0.113.7", "1.1.1.1", 53, proto="udp"),
    ]
    whole = events(rows * 3)
    pieces = pl.concat([whole.slice(0, 5), whole.slice(5, 9), whole.slice(14, 4)], rechunk=False)
    settings_ = NetworkSettings(proxies=("10.0.0.5:3128",), monitored=("203.0.113.7",))
    placed = place(pieces, app([]), settings_).events
    assert placed.equals(place(whole, app([]), settings_).events, null_equal=True)
    assert placed.get_column(S.VIA_PROXY).drop_nulls().to_list() == ["10.0.0.5:3128"] * 6
    changed = (S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL, S.VIA_PROXY, S.DIRECTION, S.DEVICE_ID)
    for name in changed:
        assert [c.len() for c in placed.get_column(name).get_chunks()] == [5, 9, 4], name
