"""Responsive columns: what fits at which width, never cutting an address (issue 18)."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
from tui_fixtures import make_app, settle

from detectors.base import schema as S
from tui.view import (
    C_PROTOCOL,
    GAP,
    layout,
    measure_columns,
    pair_protocols,
    remote_text,
    with_protocol,
)
from tui.widgets.candidate_table import CandidateTable

UTC = timezone.utc


def _frame(process: list | None = None, domain: list | None = None) -> pl.DataFrame:
    n = 3
    return pl.DataFrame(
        {
            S.C_DEVICE: ["ws-017.contoso.com", "10.0.2.26", "srv-04"],
            S.C_PROCESS: process or ["regsvr32.exe", "a.exe", "TailspinUpdate.exe"],
            S.C_REMOTE_IP: ["104.234.118.7", "2001:db8::1", "9.9.9.9"],
            S.C_REMOTE_PORT: [4444, 65535, None],
            S.C_SCORE: [0.9, 0.5, 0.1],
            S.C_DOMAIN: domain or ["a.example", None, "b.example"],
            S.C_INTERVAL: [900.0, 60.0, 5.0],
            S.C_JITTER: [20.0, 1234.5, 0.0],
            S.C_CONNECTIONS: [289, 1_234_567, 3],
            S.C_DETECTORS: [["intervals"], ["buckets", "intervals"], []],
            S.C_FIRST_SEEN: [datetime(2026, 11, 20, tzinfo=UTC)] * n,
            S.C_LAST_SEEN: [datetime(2026, 11, 20, tzinfo=UTC)] * n,
        },
        schema_overrides={S.C_PROCESS: pl.String, S.C_DOMAIN: pl.String},
    )


def test_remote_cell_marks_udp_and_icmp_and_brackets_ipv6():
    assert remote_text("1.2.3.4", 443, "tcp") == "1.2.3.4:443"
    assert remote_text("1.2.3.4", 53, "udp") == "1.2.3.4:53/udp"
    assert remote_text("1.2.3.4", 3, "icmp") == "1.2.3.4 icmp"  # never ":3"
    assert remote_text("2001:db8::1", 443, None) == "[2001:db8::1]:443"
    assert remote_text("1.2.3.4", None, None) == "1.2.3.4"


def test_80_columns_keep_score_device_remote_interval_jitter_at_full_width():
    shown = dict((c.key, w) for c, w in layout(_frame(), 78))
    assert {"score", "device", "remote", "interval", "jitter"} <= set(shown)
    assert sum(shown.values()) + GAP * (len(shown) - 1) <= 78
    # "[2001:db8::1]:65535" is 19 cells; a number column fits its widest value.
    assert shown["remote"] >= len("[2001:db8::1]:65535")
    assert shown["jitter"] >= len("1234.5%")
    assert shown["device"] >= len("10.0.2.26")
    assert "first" not in shown  # times give way first


def test_wide_screen_shows_every_column():
    shown = [c.key for c, _ in layout(_frame(), 200)]
    assert shown == [
        "mark", "score", "device", "process", "remote", "domain", "interval", "jitter",
        "conns", "detectors", "first", "last",
    ]  # fmt: skip


def test_an_all_empty_column_is_hidden_and_its_width_goes_to_the_rest():
    zeek = _frame(process=[None, "", None])
    keys = [c.key for c, _ in layout(zeek, 200)]
    assert "process" not in keys and "domain" in keys
    no_dns = _frame(domain=[None, None, None])
    assert "domain" not in [c.key for c, _ in layout(no_dns, 200)]


def test_protocols_join_on_the_candidate_key():
    events = pl.DataFrame(
        {
            S.DEVICE_NAME: ["ws", "ws", "ws"],
            S.PROCESS: ["p", "p", None],
            S.REMOTE_IP: ["1.2.3.4", "1.2.3.4", "5.6.7.8"],
            S.REMOTE_PORT: [53, 53, 3],
            S.PROTOCOL: ["Udp", "Udp", "icmp"],
        }
    )
    candidates = pl.DataFrame(
        {
            S.C_DEVICE: ["ws", "ws", "ws"],
            S.C_PROCESS: ["p", None, "q"],
            S.C_REMOTE_IP: ["1.2.3.4", "5.6.7.8", "9.9.9.9"],
            S.C_REMOTE_PORT: [53, 3, 1],
        }
    )
    joined = with_protocol(candidates, pair_protocols(events))
    assert joined[C_PROTOCOL].to_list() == ["udp", "icmp", None]


async def test_80x24_shows_12_rows_and_the_footer_keeps_help(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        table = app.main_screen.query_one(CandidateTable)
        assert table.size.height >= 13  # header + 12 rows
        header = table.render_line(0).text
        for title in ("score", "device", "remote", "interval", "jitter"):
            assert title in header
        assert "45.77.10.20:8443" in table.render_line(2).text + table.render_line(1).text
        footer = "".join(
            seg.text for strip in app.screen._compositor.render_strips()[-1:] for seg in strip
        )
        assert " ".join(footer.split()).count("? Help") == 1, footer


def test_inbound_and_proxied_remote_cells_keep_the_address_whole():
    assert remote_text("1.2.3.4", 443, "tcp", inbound=True) == "← 1.2.3.4:443"
    proxied = remote_text("1.2.3.4", 443, None, proxy="proxy.corp")
    assert proxied == "1.2.3.4:443 via proxy proxy.corp"
    frame = _frame().with_columns(
        pl.Series(S.C_VIA_PROXY, ["p" * 80, None, None]),
        pl.Series(S.C_DIRECTION, [None, S.DIR_INBOUND, None]),
    )
    shown = dict((c.key, w) for c, w in layout(frame, 200))
    assert len("[2001:db8::1]:65535") + 2 <= shown["remote"] <= 60


async def test_filter_and_sort_measure_columns_in_the_view_worker(tmp_path, monkeypatch):
    """After a filter or a sort, the table takes the worker's measured columns and the
    followed candidate's row: nothing scans the rows on the event loop (issue 18)."""
    import threading

    from tui_fixtures import register_fake

    import tui.screens.main as main_module
    import tui.widgets.candidate_table as table_module

    register_fake(monkeypatch)
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def watched(name, real):
        def call(*args, **kwargs):
            if threading.get_ident() == loop_thread:
                on_loop.append(name)
            return real(*args, **kwargs)

        return call

    for module in (main_module, table_module):
        monkeypatch.setattr(module, "measure_columns", watched("measure", module.measure_columns))
        monkeypatch.setattr(module, "find_row", watched("find_row", module.find_row))
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        table = app.main_screen.query_one(CandidateTable)
        await pilot.press("j")  # the cursor now follows its candidate through views
        followed = table.current_row
        on_loop.clear()
        await pilot.press("S")  # reverse the sort
        await settle(app, pilot)
        assert table.current_row == followed
        await pilot.press("slash", *"beacon", "enter")
        await settle(app, pilot)
        assert table.row_count == 1
        assert [c.key for c in table._columns][:3] == ["mark", "score", "device"]
        assert on_loop == []


def test_spare_cells_go_first_to_the_name_that_is_cut():
    """A long domain is shown whole while the short device column has room to spare;
    only then do the names share what is left."""
    frame = _frame(domain=["a-rather-long-registered-domain.example", None, "b.example"])
    shown = dict((c.key, w) for c, w in layout(frame, 190))  # shared by flex: 24 cells
    assert shown["domain"] >= len("a-rather-long-registered-domain.example")
    assert sum(shown.values()) + GAP * (len(shown) - 1) == 190  # the rest is still shared


async def test_no_candidate_shows_no_empty_charts(tmp_path, monkeypatch):
    from textual.containers import Vertical
    from tui_fixtures import register_fake

    register_fake(monkeypatch)
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        charts = app.main_screen.query_one("#charts", Vertical)
        assert charts.display and len(charts.children) == 2
        await pilot.press("slash", *"no-such-thing", "enter")
        await settle(app, pilot)
        assert app.main_screen.view.height == 0
        assert not charts.display


def test_a_proxy_name_takes_only_spare_cells():
    """One proxied pair's `` via proxy P`` does not widen the remote column past its
    addresses while other columns need the room; given room, it shows whole."""
    frame = _frame().with_columns(pl.Series(S.C_VIA_PROXY, ["proxy.corp.example:3128", None, None]))
    whole = len("104.234.118.7:4444 via proxy proxy.corp.example:3128")
    narrow = dict((c.key, w) for c, w in layout(frame, 100))
    assert len("[2001:db8::1]:65535") <= narrow["remote"] < whole
    minimum = {c.key: w for c, w, _ in measure_columns(frame)}["remote"]
    assert minimum == len("104.234.118.7:4444 …")  # the ellipsis lands after the port
    assert {"score", "device", "remote", "interval", "jitter"} <= set(narrow)
    wide = dict((c.key, w) for c, w in layout(frame, 220))
    assert wide["remote"] == whole
