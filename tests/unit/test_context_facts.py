"""Population facts of ``rank.evidence.context_facts``: devices per port, process, domain.

Counted by hand on a small network: four workstations, one of which (ws-4) only
talks to a private address, so it counts for nothing that is about public traffic.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl

from detectors.base import schema as S
from detectors.pairs.context import PairContext
from detectors.rank import evidence as E

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)

# (device, process, remote IP, port, RemoteUrl)
CONNECTIONS = [
    ("ws-1", "a.exe", "8.8.8.8", 443, "x.evil.example"),
    ("ws-1", "a.exe", "1.1.1.1", 80, None),
    ("ws-2", "a.exe", "8.8.8.8", 443, None),
    ("ws-2", "b.exe", "9.9.9.9", 8443, "y.evil.example"),
    ("ws-3", "b.exe", "1.1.1.1", 443, None),
    ("ws-4", "b.exe", "10.0.0.5", 443, None),
]


def _events(connections: list[tuple]) -> pl.DataFrame:
    """One successful connection a minute per (device, process, IP, port, URL[, uid])."""
    rows = [
        {
            S.TIMESTAMP: T0 + timedelta(minutes=i),
            S.DEVICE_NAME: device,
            S.PROCESS: process,
            S.ACTION: S.ACTION_SUCCESS,
            S.REMOTE_IP: ip,
            S.REMOTE_PORT: port,
            S.REMOTE_URL: url,
            S.UID: uid[0] if uid else None,
        }
        for i, (device, process, ip, port, url, *uid) in enumerate(connections)
    ]
    return S.conform(pl.DataFrame(rows), "mde.csv").collect()


def _keys(devices: list[str], processes: list[str], ips: list[str], ports: list[int]):
    """Candidate keys, one per position of the four lists."""
    return pl.DataFrame(
        {
            S.C_DEVICE: devices,
            S.C_PROCESS: processes,
            S.C_REMOTE_IP: ips,
            S.C_REMOTE_PORT: pl.Series(ports, dtype=pl.Int32),
        }
    )


def _context() -> PairContext:
    return PairContext(events=_events(CONNECTIONS * 3))


def test_population_facts_count_devices_as_counted_by_hand():
    keys = _keys(["ws-1", "ws-3"], ["a.exe", "b.exe"], ["8.8.8.8", "1.1.1.1"], [443, 443])
    facts = E.context_facts(_context(), keys).sort(S.C_DEVICE)
    # Devices with public traffic: ws-1, ws-2, ws-3 (not ws-4, private only).
    assert facts.get_column(E.F_HOSTS).to_list() == [3, 3]
    # Public traffic to port 443: ws-1, ws-2 (a.exe) and ws-3 (b.exe); ws-4 is private.
    assert facts.get_column(E.F_PORT_DEVICES).to_list() == [3, 3]
    # a.exe on ws-1, ws-2; b.exe on ws-2, ws-3, ws-4 (every outbound row counts).
    assert facts.get_column(E.F_PROCESS_DEVICES).to_list() == [2, 3]
    # a.exe to 443 on both its devices; b.exe to 443 on ws-3 and ws-4 of its three.
    assert facts.get_column(E.F_PROCESS_PORT_SHARE).to_list() == [1.0, 2 / 3]
    # 8.8.8.8 is reached by ws-1 and ws-2; 1.1.1.1 by ws-1 and ws-3.
    assert facts.get_column(E.F_IP_DEVICES).to_list() == [2, 2]
    # evil.example: ws-1 (its URL on 8.8.8.8), ws-2 (8.8.8.8 is named x.evil.example;
    # and y.evil.example on 9.9.9.9). 1.1.1.1 has no name, so no domain.
    assert facts.get_column(E.F_DOMAIN).to_list() == ["evil.example", None]
    assert facts.get_column(E.F_DOMAIN_DEVICES).to_list() == [2, None]


def test_domain_devices_count_every_route_to_a_name_and_only_public_addresses():
    """Devices per domain come by three routes: the event's own RemoteUrl (any address),
    the address's names (public addresses only) and a Zeek name on the event's uid."""
    # (device, process, remote IP, port, RemoteUrl, uid)
    connections = [
        ("ws-1", "a.exe", "8.8.8.8", 443, "x.evil.example", None),  # URL: ws-1
        ("ws-2", "a.exe", "8.8.8.8", 443, None, None),  # 8.8.8.8 is named: ws-2
        ("ws-3", "b.exe", "10.0.0.5", 443, "y.evil.example", None),  # URL, private: ws-3
        ("ws-4", "c.exe", "10.0.0.5", 443, None, None),  # named, but private: not counted
        ("ws-5", "d.exe", "7.7.7.7", 443, None, "C1"),  # TLS server name z.evil.example
        ("ws-6", "e.exe", "6.6.6.6", 443, "www.other.example", None),  # another domain
    ]
    app = pl.DataFrame(
        [{S.APP_UID: "C1", S.APP_KIND: "ssl", S.APP_SNI: "z.evil.example"}],
        schema=S.APP_SCHEMA,
    )
    keys = _keys(["ws-1", "ws-6"], ["a.exe", "e.exe"], ["8.8.8.8", "6.6.6.6"], [443, 443])
    # In memory (devices counted by number) and on disk (by name) alike.
    for streaming in (False, True):
        context = _with_population(PairContext(events=_events(connections), app=app), streaming)
        facts = E.context_facts(context, keys).sort(S.C_DEVICE)
        assert facts.get_column(E.F_DOMAIN).to_list() == ["evil.example", "other.example"]
        # evil.example: ws-1, ws-2, ws-3, ws-5 (not ws-4: 10.0.0.5's name is not its own).
        assert facts.get_column(E.F_DOMAIN_DEVICES).to_list() == [4, 1]


def _with_population(context: PairContext, streaming: bool) -> PairContext:
    """The context with a population in memory, or one asked as a population on disk."""
    from detectors.pairs.population import Population

    context.population = Population(context.events.lazy(), context.names, streaming=streaming)
    return context


def _device_events(rows: list[tuple]) -> pl.DataFrame:
    """Outbound events of (DeviceName, DeviceId, process, remote IP, port, RemoteUrl),
    one chunk per row: the device numbers must hold across chunks."""
    frames = [
        S.conform(
            pl.DataFrame(
                [
                    {
                        S.TIMESTAMP: T0 + timedelta(minutes=i),
                        S.DEVICE_NAME: name,
                        S.DEVICE_ID: device_id,
                        S.PROCESS: process,
                        S.ACTION: S.ACTION_SUCCESS,
                        S.REMOTE_IP: ip,
                        S.REMOTE_PORT: port,
                        S.REMOTE_URL: url,
                    }
                ],
                schema_overrides={S.DEVICE_NAME: pl.String, S.DEVICE_ID: pl.String},
            ),
            "mde.csv",
        ).collect()
        for i, (name, device_id, process, ip, port, url) in enumerate(rows)
    ]
    return pl.concat(frames, rechunk=False)


# A device is its DeviceName, else its DeviceId: the id-only rows of "ws-1" are ws-1's.
NAMED_BY_ID = [
    ("ws-1", "d1", "a.exe", "8.8.8.8", 443, "x.evil.example"),
    (None, "d2", "a.exe", "8.8.8.8", 443, None),
    (None, "d2", "a.exe", "8.8.8.8", 80, None),
    (None, "ws-1", "b.exe", "9.9.9.9", 443, None),
    ("ws-3", None, "b.exe", "8.8.8.8", 443, None),
    ("ws-3", "d3", "b.exe", "10.0.0.5", 8080, None),
]


def test_device_numbers_are_equal_exactly_where_the_devices_are():
    events = _device_events([*NAMED_BY_ID, (None, None, "c.exe", "8.8.8.8", 443, None)])
    assert events.n_chunks() == len(NAMED_BY_ID) + 1
    query = E.device_keys_query(_with_population(PairContext(events=events), False).everyone())
    assert query is not None
    numbers = query.collect().get_column(E._DEV_KEY).to_list()
    devices = [name if name is not None else device_id for name, device_id, *_ in NAMED_BY_ID]
    devices.append(None)
    for i, (number, device) in enumerate(zip(numbers, devices, strict=True)):
        assert (number is None) == (device is None)
        for other_number, other_device in zip(numbers[i + 1 :], devices[i + 1 :], strict=True):
            assert (number == other_number) == (device == other_device)
    # On disk there are no numbers: the devices themselves are counted.
    on_disk = _with_population(PairContext(events=events), True).everyone()
    assert E.device_keys_query(on_disk) is None


def test_population_facts_count_devices_named_by_id_as_counted_by_hand():
    keys = _keys(["ws-1", "d2"], ["a.exe", "a.exe"], ["8.8.8.8", "8.8.8.8"], [443, 80])
    answers = []
    for streaming in (False, True):
        context = _with_population(PairContext(events=_device_events(NAMED_BY_ID)), streaming)
        facts = E.context_facts(context, keys).sort(S.C_DEVICE)
        answers.append(facts)
        # Devices with public traffic: ws-1, d2, ws-3 (ws-3's 10.0.0.5 is private).
        assert facts.get_column(E.F_HOSTS).to_list() == [3, 3]
        # d2 then ws-1 (sorted). Port 80: d2; port 443: ws-1 (twice), d2, ws-3.
        assert facts.get_column(E.F_PORT_DEVICES).to_list() == [1, 3]
        # 8.8.8.8: ws-1, d2, ws-3. a.exe: ws-1, d2; to port 80 d2, to 443 both.
        assert facts.get_column(E.F_IP_DEVICES).to_list() == [3, 3]
        assert facts.get_column(E.F_PROCESS_DEVICES).to_list() == [2, 2]
        assert facts.get_column(E.F_PROCESS_PORT_SHARE).to_list() == [0.5, 1.0]
        # evil.example: x.evil.example is ws-1's URL and 8.8.8.8's name, which ws-1,
        # d2 and ws-3 reach (public).
        assert facts.get_column(E.F_DOMAIN).to_list() == ["evil.example", "evil.example"]
        assert facts.get_column(E.F_DOMAIN_DEVICES).to_list() == [3, 3]
    assert answers[0].equals(answers[1])


def test_facts_in_memory_equal_the_facts_asked_query_by_query():
    """In memory the outbound rows are a mask computed once; a population on disk asks
    each query with the test itself. Both must give the same facts."""
    from detectors.pairs.population import Population

    keys = _keys(
        ["ws-1", "ws-3", "ws-4"],
        ["a.exe", "b.exe", "b.exe"],
        ["8.8.8.8", "1.1.1.1", "10.0.0.5"],
        [443, 443, 443],
    )
    in_memory = E.context_facts(_context(), keys).sort(S.C_DEVICE)
    on_disk = _context()
    on_disk.population = Population(on_disk.events.lazy(), on_disk.names, streaming=True)
    streamed = E.context_facts(on_disk, keys).sort(S.C_DEVICE)
    assert in_memory.equals(streamed)
    # ws-4's only address is private: 3 hosts, and 10.0.0.5 reached by ws-4 alone.
    assert in_memory.get_column(E.F_HOSTS).to_list() == [3, 3, 3]
    assert in_memory.get_column(E.F_IP_DEVICES).to_list() == [2, 2, 1]
