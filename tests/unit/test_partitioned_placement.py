"""Network placement on partitions gives the events, candidates and notes of a run in memory.

The network sample (a proxy found from CONNECT, a DMZ sensor host reached by ~2,000
scanners and an inbound beacon, resolvers) is what placement changes most: partitioned
with tiny partitions, it must rank exactly as in memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.progress import NULL_PROGRESS
from detectors.load import load_paths
from detectors.pairs import network as N
from detectors.pairs.context import PairContext
from detectors.run import partitioned as P
from detectors.run.headless import detect
from detectors.run.loop import choose_strategy, run, run_all
from detectors.run.setup import load_config

NETWORK = Path(__file__).parent.parent.parent / "sample_data" / "network"
PATHS = [str(NETWORK / "defender_network_events.csv"), str(NETWORK / "zeek")]
SMALL = "[engine]\nmax_events_in_memory = 1000\npartition_events = 6000\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The partitions' cache in tmp; the folder kept sets go to."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "beacon-triage" / "partitions"


@pytest.fixture(scope="module")
def in_memory():
    return run_all(PairContext.of(load_paths(PATHS, cache=None)), Config(), workers=1)


def _ranked(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(*S.CANDIDATE_KEY, S.C_SCORE, "detectors").sort(
        S.CANDIDATE_KEY, nulls_last=True
    )


def test_the_network_sample_on_partitions_ranks_as_in_memory(in_memory, cache, tmp_path):
    config_file = tmp_path / "small.toml"
    config_file.write_text(SMALL)
    config = load_config(str(config_file))
    strategy = choose_strategy(PATHS, config)
    assert isinstance(strategy, P.Partitioned)
    assert strategy.count == 4  # ~18,600 rows estimated / 6,000
    result = run(strategy, config)
    got, want = _ranked(result.candidates), _ranked(in_memory.candidates)
    assert want.height == 78
    assert got.select(S.CANDIDATE_KEY).equals(want.select(S.CANDIDATE_KEY))
    assert got.get_column("detectors").to_list() == want.get_column("detectors").to_list()
    diff = (got.get_column(S.C_SCORE) - want.get_column(S.C_SCORE)).abs().max()
    assert isinstance(diff, float) and diff <= 1e-9
    assert_frame_equal(result.candidates, in_memory.candidates)
    # the same notes, in the same order, and no "not placed" excuse
    notes = in_memory.context.placement_notes
    assert notes == [
        "monitored host 198.51.100.20 (inferred): reached by 2,002 external sources, opens "
        "connections to 6 addresses",
        "proxy 10.10.0.5:3128 (CONNECT seen): connections through it are keyed by the proxied host",
        # the proxy's own connections: linked across partitions (client and proxy are two)
        "2,271 connections from proxy 10.10.0.5 to the servers linked to their clients' "
        "proxied connections and set aside (not ranked as the proxy's own)",
        "4 connections from proxy 10.10.0.5 not linked and kept as its own: 4 carried no "
        "name (SNI, Host or URL), 0 no client asked for their name within 3,000 ms before",
    ]
    assert [w for w in result.context.warnings if w in notes] == notes
    assert sorted(result.context.warnings) == sorted(in_memory.context.warnings)
    assert not any("not applied" in w or "not placed" in w for w in result.context.warnings)


def test_the_inbound_beacon_lives_in_the_sensor_hosts_partition(in_memory, tmp_path):
    """Turned round, the scanners' and the controller's rows to 198.51.100.20 are that
    host's: all of them in its partition, none left where their source hashed."""
    parts = P.write_partitions(PATHS, tmp_path / "loaded", 4)
    placed = P.place_partitions(parts, tmp_path / "placed", Config().network_settings())
    host = "198.51.100.20"
    where = {
        n: pl.read_parquet(placed.part_files(n)).filter(pl.col(S.DEVICE_NAME) == host).height
        for n in range(placed.count)
    }
    expected = in_memory.context.events.filter(pl.col(S.DEVICE_NAME) == host).height
    assert sorted(where.values())[-1] == expected > 2000  # every scanner reached it
    assert sum(where.values()) == expected  # and no row of it anywhere else
    # the whole placed input is the run in memory's, row for row, in input order
    rows = pl.read_parquet(placed.all_files()).sort(P.INPUT_ROW).drop(P.INPUT_ROW)
    assert_frame_equal(rows, in_memory.context.events)


def test_decisions_from_any_cut_of_the_events_are_those_in_memory():
    """Evidence gathered per piece is mergeable: cut by row number (not by device), the
    pieces decide the proxies and monitored hosts that the whole input does."""
    loaded = load_paths(PATHS, cache=None)
    settings = Config().network_settings()
    whole = N.place(loaded.events, loaded.app, settings)

    def pieces(columns):
        height = loaded.events.height
        for start in range(0, height, 997):  # 24 uneven slices
            yield loaded.events.slice(start, 997).select(columns)

    decided = N.decide(pieces, loaded.app, settings)
    assert_frame_equal(decided.proxies, whole.proxies)
    assert_frame_equal(decided.monitored, whole.monitored)
    assert decided.monitored.get_column("ip").to_list() == ["198.51.100.20"]
    assert decided.endpoints == ["10.10.0.5:3128"]
    # applied per slice, the proxy's egress linked once over every slice's link rows
    events = loaded.events.with_row_index("_row")
    placed = [N.apply(events.slice(start, 997), decided) for start in range(0, events.height, 997)]
    rows = pl.concat([N.link_rows(p, decided, "_row") for p, _ in placed]).sort("_row")
    links = N.link(rows, loaded.app, decided, "_row")
    assert links.count == whole.egress and links.count.linked == 2271
    out = pl.concat([N.apply_links(p, links, "_row") for p, _ in placed]).drop("_row")
    assert not N.has_icmp(loaded.events)  # so no icmp_type column, as in memory
    assert_frame_equal(out.drop(S.ICMP_TYPE), whole.events)
    assert sum(outside for _, outside in placed) == whole.external_only


def test_rows_equal_only_after_placing_are_both_kept(tmp_path):
    """Two inbound connections at one microsecond from two ephemeral ports are two
    rows: placing drops the peer's port, but repeats are judged as loaded (in memory,
    and on partitions, where they are dropped before placing)."""
    header = "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,LocalIP,LocalPort"
    rows = [header]
    for minute in range(30):
        stamp = f"2026-11-20T{minute // 60:02d}:{minute % 60:02d}:00.0000000Z"
        for port in (50001, 50002):  # same instant, two source ports
            rows.append(f"{stamp},id-1,srv-1,InboundConnectionAccepted,8.8.4.4,{port},10.0.0.9,22")
        rows.append(f"{stamp},id-1,srv-1,InboundConnectionAccepted,8.8.4.4,50001,10.0.0.9,22")
    source = tmp_path / "inbound.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    loaded = load_paths([source], cache=None)
    assert "30 duplicate event rows dropped (identical in every field)" in loaded.warnings
    placed = N.place(loaded.events, loaded.app, Config().network_settings())
    assert placed.events.height == 60  # 30 true repeats gone, the 60 others kept
    assert placed.events.get_column(S.REMOTE_PORT).unique().to_list() == [22]
    parts = P.write_partitions([source], tmp_path / "loaded", 2)
    on_disk = P.place_partitions(parts, tmp_path / "placed", Config().network_settings())
    assert on_disk.duplicates == 30
    events = pl.read_parquet(on_disk.all_files()).sort(P.INPUT_ROW).drop(P.INPUT_ROW)
    assert_frame_equal(events, placed.events)


def test_other_network_settings_partition_again_the_same_reuse(cache, tmp_path, monkeypatch):
    source = NETWORK / "defender_network_events.csv"
    writes: list[int] = []
    real = P.write_partitions
    monkeypatch.setattr(P, "write_partitions", lambda *a, **k: writes.append(1) or real(*a, **k))
    first = tmp_path / "a.toml"
    first.write_text(SMALL)
    second = tmp_path / "b.toml"
    second.write_text(SMALL + '[network]\nproxies = ["10.10.0.5:3128"]\n')
    one = detect([str(source)], config_path=str(first), fmt="json")
    assert writes == [1]
    assert detect([str(source)], config_path=str(first), fmt="json") == one
    assert writes == [1]  # same settings: the kept set
    other = detect([str(source)], config_path=str(second), fmt="json")
    assert writes == [1, 1]  # other settings: partitioned and placed again
    assert other == detect([str(source)], config_path=str(second), fmt="json", use_cache=False)
    assert len([s for s in cache.iterdir() if s.name.startswith("set-")]) == 2


def test_new_network_settings_place_an_open_partitioned_run_again(in_memory, cache):
    """The TUI keeps a run open and hunts again after its parameters screen changed
    ``[network]``: the partitions are placed again and the notes follow."""
    from detectors.hunts.registry import all_detectors
    from detectors.run.outcome import merge

    strategy = P.Partitioned(PATHS, count=3)
    off = Config(network={"enabled": False})
    context = strategy.context(off, NULL_PROGRESS)
    assert not context.everyone().placed
    assert not any(w.startswith("monitored host") for w in context.warnings)
    names = list(all_detectors())
    try:
        outcomes = {o.name: o for o in strategy.hunts(context, Config(), names, NULL_PROGRESS)}
        candidates = merge(outcomes, context, Config())
    finally:
        strategy.close()
    assert context.everyone().placed
    notes = in_memory.context.placement_notes
    assert [w for w in context.warnings if w in notes] == notes
    assert_frame_equal(candidates, in_memory.candidates)


def test_icmp_types_column_is_kept_on_every_partition_when_any_row_is_icmp(tmp_path):
    """In memory ``icmp_type`` appears when some row is ICMP; every placed partition then
    carries it (null on the others), and none does when no row is ICMP."""
    header = "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,LocalIP,Protocol"
    rows = [header]
    for minute in range(20):
        stamp = f"2026-11-20T00:{minute:02d}:00.0000000Z"
        for n, protocol in enumerate(("Icmp", *["Tcp"] * 11)):
            rows.append(
                f"{stamp},id-{n},ws-{n},ConnectionSuccess,8.8.8.8,443,10.0.0.{n},{protocol}"
            )
    source = tmp_path / "icmp.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    settings = Config().network_settings()
    loaded = load_paths([source], cache=None)
    placed = N.place(loaded.events, loaded.app, settings).events
    assert placed.get_column(S.REMOTE_PORT).null_count() == 20  # ICMP rows: no port
    parts = P.place_partitions(
        P.write_partitions([source], tmp_path / "l", 3), tmp_path / "p", settings
    )
    files = parts.all_files()
    assert len({f.parent.name for f in files}) >= 2  # the ICMP device and others apart
    assert all(S.ICMP_TYPE in pl.read_parquet_schema(f) for f in files)
    events = pl.read_parquet(files).sort(P.INPUT_ROW).drop(P.INPUT_ROW)
    assert_frame_equal(events, placed)
    tcp = tmp_path / "tcp.csv"
    tcp.write_text("\n".join(r.replace("Icmp", "Tcp") for r in rows) + "\n", encoding="utf-8")
    parts = P.place_partitions(
        P.write_partitions([tcp], tmp_path / "l2", 3), tmp_path / "p2", settings
    )
    assert not any(S.ICMP_TYPE in pl.read_parquet_schema(f) for f in parts.all_files())


def test_repeated_connections_are_dropped_as_loaded_on_partitions(tmp_path):
    """A second copy of conn.log repeats every Zeek connection (scanners, the proxy's
    egress, the inbound beacon): dropped before placing, counted once, as in memory."""
    copy = tmp_path / "conn-copy.log.gz"
    shutil.copyfile(NETWORK / "zeek" / "conn.log.gz", copy)
    paths = [*PATHS, str(copy)]
    memory = run_all(PairContext.of(load_paths(paths, cache=None)), Config(), workers=1)
    parts = P.write_partitions(paths, tmp_path / "parts", 3)
    result = run(P.Partitioned(parts=parts), Config())
    assert_frame_equal(result.candidates, memory.candidates)
    repeated = load_paths([copy], cache=None).events.height
    line = f"{repeated} duplicate event rows dropped (identical in every field)"
    assert line in memory.context.warnings and line in result.context.warnings
    assert sorted(result.context.warnings) == sorted(memory.context.warnings)


def test_a_connect_to_a_public_proxy_is_decided_from_pieces_as_from_the_whole():
    """Pieces keep, of the named rows to public servers, one per device; a proxy seen by
    CONNECT at a public address needs its named rows from every piece (a second pass):
    with the network sample's proxy moved to 203.0.113.5, the counts still agree."""
    loaded = load_paths(PATHS, cache=None)
    moved = pl.col(S.REMOTE_IP).replace({"10.10.0.5": "203.0.113.5"})
    events = loaded.events.with_columns(moved)
    settings = Config().network_settings()
    whole = N.place(events, loaded.app, settings)

    def pieces(columns):
        for start in range(0, events.height, 997):
            yield events.slice(start, 997).select(columns)

    decided = N.decide(pieces, loaded.app, settings)
    assert decided.endpoints == ["203.0.113.5:3128"]
    assert_frame_equal(decided.proxies, whole.proxies)
    targets = N.proxy_targets(loaded.app)
    evidence = pl.concat(N.proxy_evidence(p, targets, settings) for p in pieces(N.PROXY_COLUMNS))
    assert N.missing_evidence(evidence, targets, settings) == ["203.0.113.5:3128"]
    # of the named rows to public servers (no uid asked a proxy), one per device is kept
    public = pl.col(S.REMOTE_URL).is_not_null() & ~pl.col(S.REMOTE_IP).str.starts_with("10.")
    kept = N.proxy_evidence(events, targets, settings).filter(public & pl.col(S.UID).is_null())
    devices = events.filter(public & pl.col(S.UID).is_null()).get_column(S.DEVICE_ID)
    assert kept.height == devices.n_unique() < events.filter(public).height


def test_a_public_connect_proxy_counts_the_named_rows_of_every_piece():
    """Hand-made: a sensor saw 10.1.1.9 send CONNECT evil.example:443 to 203.0.113.5:3128;
    device d1 first named a public server, then sent three names to that proxy. One
    named row per device for public servers would leave d1's proxy rows out; the second
    pass brings them: 2 devices (10.1.1.9, d1) and 4 names (evil, a, b, c)."""
    from detectors.load.common import conform_to
    from detectors.pairs.proxy import X_DEVICES, X_NAMES

    proxy = ("203.0.113.5", 3128)
    rows = [
        ("10.1.1.9", "10.1.1.9", *proxy, None, "u1"),
        ("d1", "10.1.1.20", "93.184.216.34", 443, "https://www.example.org/", None),
        *[("d1", "10.1.1.20", *proxy, f"http://{n}.example/x", None) for n in "abc"],
    ]
    columns = [S.DEVICE_ID, S.LOCAL_IP, S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL, S.UID]
    frame = pl.DataFrame(rows, schema=columns, orient="row")
    events = conform_to(frame, {**S.EVENT_SCHEMA})
    app = conform_to(
        pl.DataFrame(
            {S.APP_UID: ["u1"], S.APP_METHOD: ["CONNECT"], S.APP_URI: ["evil.example:443"]}
        ),
        S.APP_SCHEMA,
    )
    settings = Config().network_settings()

    def pieces(columns):
        yield events.slice(0, 1).select(columns)
        yield events.slice(1).select(columns)

    decided = N.decide(pieces, app, settings)
    whole = N.place(events, app, settings)
    assert decided.proxies.select(N.X_ENDPOINT, X_DEVICES, X_NAMES).rows() == [
        ("203.0.113.5:3128", 2, 4)
    ]
    assert_frame_equal(decided.proxies, whole.proxies)


def test_a_placed_partition_is_put_in_input_order_whether_or_not_its_rows_are_already():
    """Rows gathered from several source partitions are reordered by their input row;
    a partition already in order (one placed file) is handed back as it is."""
    rows = pl.Series(P.INPUT_ROW, [5, 1, 9, 2], dtype=pl.UInt64)
    frame = pl.DataFrame([rows, pl.Series(S.DEVICE_NAME, ["e", "a", "i", "b"])])
    assert P._in_input_order(frame).to_dict(as_series=False) == {
        S.DEVICE_NAME: ["a", "b", "e", "i"]
    }
    ordered = pl.DataFrame([rows.sort(), pl.Series(S.DEVICE_NAME, ["a", "b", "e", "i"])])
    assert P._in_input_order(ordered).to_dict(as_series=False) == {
        S.DEVICE_NAME: ["a", "b", "e", "i"]
    }
