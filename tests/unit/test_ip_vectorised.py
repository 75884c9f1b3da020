"""The vectorised IPv4 fast path gives exactly what ``ipaddress`` gives, per address.

Marks and allow-list entries are matched on normalised addresses; the fast path (a regex
plus integer arithmetic in polars) must agree with the reference (``ipaddress`` per
distinct value) on every awkward input, or a mark would silently stop matching.
"""

from __future__ import annotations

import ipaddress

import polars as pl

from detectors.base import schema as S
from detectors.base.netclass import ipv4_int, is_canonical_ipv4
from detectors.curate.allowlist import H_HI, H_LO, _ip_int, _Matcher, parse_entry
from detectors.curate.triage import _JOIN, _key_columns, _norm_ip

AWKWARD = [
    "1.2.3.4",
    "0.0.0.0",
    "255.255.255.255",
    "256.1.1.1",  # not an address
    "01.2.3.4",  # leading zero: ipaddress refuses it
    " 10.0.0.1 ",  # spaces around
    "10.0.0.1\t",
    "::ffff:10.0.0.1",  # IPv4-mapped IPv6
    "2001:DB8::1",  # upper-case IPv6
    "2001:0db8:0000::0001",
    "1.2.3",
    "1.2.3.4.5",
    "a.b.c.d",
    "",
    None,
]


def test_canonical_ipv4_is_exactly_what_ipaddress_prints_itself_as():
    frame = pl.DataFrame({"ip": AWKWARD}, schema={"ip": pl.String})
    got = frame.select(is_canonical_ipv4(pl.col("ip"))).to_series().to_list()
    for text, canonical in zip(AWKWARD, got, strict=True):
        try:
            expected = str(ipaddress.IPv4Address(text)) == text
        except (ValueError, TypeError):
            expected = False
        assert canonical is expected, text


def test_ipv4_int_matches_ipaddress():
    texts = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "10.200.3.77"]
    got = pl.DataFrame({"ip": texts}).select(ipv4_int(pl.col("ip"))).to_series().to_list()
    assert got == [int(ipaddress.IPv4Address(t)) for t in texts]


def test_triage_key_column_equals_the_per_value_reference():
    frame = pl.DataFrame({S.C_REMOTE_IP: AWKWARD}, schema={S.C_REMOTE_IP: pl.String})
    keys = frame.with_columns(_key_columns(frame)).get_column(_JOIN[2]).to_list()
    assert keys == [_norm_ip(v) for v in AWKWARD]


def test_allowlist_ip_columns_equal_the_per_value_reference():
    frame = pl.DataFrame({S.C_REMOTE_IP: AWKWARD}, schema={S.C_REMOTE_IP: pl.String})
    entry = parse_entry({"remote_ip": "10.0.0.0/8", "reason": "r"}, 0)
    matcher = _Matcher(frame, [entry])
    hi, lo = matcher.frame.get_column(H_HI), matcher.frame.get_column(H_LO)
    for text, h, low in zip(AWKWARD, hi.to_list(), lo.to_list(), strict=True):
        bits = _ip_int(text) if text is not None else None
        assert (h, low) == (
            (bits >> 64, bits & ((1 << 64) - 1)) if bits is not None else (None, None)
        ), text
    hits = matcher.frame.select(matcher.mask(entry)).to_series().to_list()
    # 10.0.0.1 with spaces and as ::ffff:10.0.0.1 are in 10.0.0.0/8; "01.2.3.4" is no address
    assert [t for t, hit in zip(AWKWARD, hits, strict=True) if hit] == [
        " 10.0.0.1 ",
        "10.0.0.1\t",
        "::ffff:10.0.0.1",
    ]
