"""ICMP keeps its type (Zeek's id.orig_p) as a type, shown as ``icmp/8 echo``, never a port."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs import icmp
from detectors.pairs.topology import annotate
from detectors.rank.scoring import explain
from detectors.report.output import to_table
from detectors.run.headless import detect
from tests.unit.test_topology import T0, defender, events, zeek


def test_zeek_icmp_type_kept_and_port_dropped_for_each_direction():
    rows = [
        zeek("10.0.2.7", "8.8.4.4", 0, proto="icmp", **{S.LOCAL_PORT: 8}),  # echo out
        zeek("45.77.1.2", "10.0.2.9", 1, proto="icmp", **{S.LOCAL_PORT: 3}),  # in: code 1
        zeek("10.0.2.7", "2001:db8::7", 0, proto="icmp", **{S.LOCAL_PORT: 128}),
        zeek("10.0.2.7", "8.8.4.4", 443),  # TCP: its port stays a port, no type
        defender("8.8.4.4", **{S.PROTOCOL: "Icmp", S.REMOTE_PORT: 0}),  # host row: no type
    ]
    got = annotate(events(rows), NetworkSettings(), [])
    assert got.select(S.DEVICE_ID, S.REMOTE_IP, S.REMOTE_PORT, S.ICMP_TYPE).rows() == [
        ("10.0.2.7", "8.8.4.4", None, 8),
        ("10.0.2.9", "45.77.1.2", None, 3),  # turned round: the type travels with the row
        ("10.0.2.7", "2001:db8::7", None, 128),
        ("10.0.2.7", "8.8.4.4", 443, None),
        ("a" * 40, "8.8.4.4", None, None),
    ]


def test_label_names_v4_and_v6_types_and_numbers_the_rest():
    v4, v6 = ["8.8.4.4", "8.8.4.4", "1.2.3.4"], ["2001:db8::7"] * 2
    frame = pl.DataFrame(
        {S.ICMP_TYPE: [8, 0, 3, 128, 3, 42, None], S.REMOTE_IP: [*v4, *v6, "1.2.3.4", "1.2.3.4"]}
    )
    assert frame.select(icmp.label()).to_series().to_list() == [
        "icmp/8 echo", "icmp/0 echo-reply", "icmp/3 unreachable", "icmp/128 echo",
        "icmp/3 time-exceeded", "icmp/42", None,
    ]  # fmt: skip


def test_labels_of_a_candidate_sorted_by_type_and_null_without_types():
    frame = pl.DataFrame(
        {
            "k": [1, 1, 1, 2],
            S.ICMP_TYPE: [8, 0, 8, None],
            S.REMOTE_IP: ["8.8.4.4"] * 4,
        },
        schema_overrides={S.ICMP_TYPE: pl.Int32},
    )
    got = frame.group_by("k").agg(icmp.labels().alias("l")).sort("k")
    assert got.get_column("l").to_list() == ["icmp/0 echo-reply, icmp/8 echo", None]


def _candidate(**extra) -> dict:
    base = {
        S.C_DEVICE: "10.0.2.7", S.C_PROCESS: None, S.C_REMOTE_IP: "8.8.4.4",
        S.C_REMOTE_PORT: None, S.C_SCORE: 0.5, S.C_DETECTOR: "intervals",
        S.C_CONNECTIONS: 30, S.C_DOMAIN: None,
    }  # fmt: skip
    return {**base, **extra}


def test_explain_and_table_show_icmp_type_instead_of_a_port():
    row = _candidate(**{S.C_ICMP: "icmp/8 echo"})
    assert explain(row).splitlines()[0] == "10.0.2.7  -  ->  8.8.4.4 icmp/8 echo"
    table = to_table(pl.DataFrame([row, _candidate(**{S.C_REMOTE_PORT: 443, S.C_ICMP: None})]))
    remotes = [line[44:73].rstrip() for line in table.splitlines()[2:4]]
    assert remotes == ["8.8.4.4 icmp/8 echo", "8.8.4.4:443"]


def test_explain_shows_the_servers_behind_the_proxy():
    row = _candidate(
        **{S.C_REMOTE_IP: "c2.example", S.C_REMOTE_PORT: 443, S.C_VIA_PROXY: "10.0.0.5:3128",
           S.C_SERVER_IPS: ["192.0.2.10", "203.0.113.9"]}
    )  # fmt: skip
    assert explain(row).splitlines()[0] == (
        "10.0.2.7  -  ->  c2.example:443  via proxy 10.0.0.5:3128 → 192.0.2.10, 203.0.113.9"
    )


def test_detect_ranks_a_ping_beacon_by_address_with_its_type(tmp_path):
    """A host pinging every 60 s: one candidate, no port, its type shown."""
    header = (
        "#separator \\x09\n#path\tconn\n"
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state\n"
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\n"
    )
    lines = []
    for i in range(40):
        ts = (T0 + timedelta(seconds=60 * i + (i % 3))).timestamp()
        lines.append(f"{ts:.6f}\tC{i}\t10.0.2.7\t8\t203.0.113.50\t0\ticmp\tOTH")
    (tmp_path / "conn.log").write_text(header + "\n".join(lines) + "\n")
    out = json.loads(detect([str(tmp_path / "conn.log")], fmt="json", use_cache=False))
    got = {(c[S.C_REMOTE_IP], c[S.C_REMOTE_PORT], c[S.C_ICMP]) for c in out}
    assert got == {("203.0.113.50", None, "icmp/8 echo")}


def test_tui_remote_cell_reads_the_type():
    from tui.view import C_PROTOCOL, _remote_width, remote_cell

    row = _candidate(**{S.C_ICMP: "icmp/8 echo", C_PROTOCOL: "icmp"})
    assert remote_cell(row) == "8.8.4.4 icmp/8 echo"
    assert remote_cell({**row, S.C_ICMP: None}) == "8.8.4.4 icmp"
    frame = pl.DataFrame([row], schema_overrides={S.C_REMOTE_PORT: pl.Int32})
    assert _remote_width(frame) == len("8.8.4.4 icmp/8 echo")
