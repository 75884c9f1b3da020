"""Detector ``rare_destinations`` (seed 004): each filter of the KQL at its boundary."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import DetectorSkipped, InputError
from detectors.base.progress import Progress
from detectors.hunts.rare_destinations import (
    E_COMPANIES,
    E_COUNT,
    E_PREVALENCE,
    E_URLS,
    OUTPUT_SCHEMA,
    RareDestinationParams,
    _server_rows,
    run,
    servers,
    shared_prevalence,
)
from detectors.hunts.registry import get
from detectors.pairs.context import PairContext
from detectors.pairs.population import Population

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=timezone.utc)
NEW_IP = "45.33.32.156"
OLD_IP = "8.8.8.8"
PARAMS = RareDestinationParams()


def event(
    device: str,
    ip: str,
    ago: timedelta,
    *,
    process: str | None = "agent.exe",
    company: str | None = "Acme",
    port: int = 443,
    action: str = S.ACTION_SUCCESS,
    url: str | None = None,
    device_id: str | None = None,
) -> dict:
    return {
        S.TIMESTAMP: NOW - ago,
        S.DEVICE_NAME: device,
        S.DEVICE_ID: device_id or f"id-{device}",
        S.PROCESS: process,
        S.COMPANY: company,
        S.REMOTE_IP: ip,
        S.REMOTE_PORT: port,
        S.ACTION: action,
        S.REMOTE_URL: url,
    }


def device_info(rows: list[tuple[str, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            S.DI_TIMESTAMP: [NOW - timedelta(days=1)] * len(rows),
            S.DI_DEVICE_ID: [f"id-{name}" for name, _, _ in rows],
            S.DI_DEVICE_NAME: [name for name, _, _ in rows],
            S.DI_DEVICE_TYPE: [kind for _, kind, _ in rows],
            S.DI_OS_PLATFORM: [os for _, _, os in rows],
        },
        schema=S.DEVICE_INFO_SCHEMA,
    )


def server_info(count: int) -> pl.DataFrame:
    return device_info([(f"srv{i}", "Server", "WindowsServer2022") for i in range(count)])


def detect(
    rows: list[dict],
    info: pl.DataFrame | None,
    params: RareDestinationParams = PARAMS,
) -> pl.DataFrame:
    schema = {k: v for k, v in S.EVENT_SCHEMA.items() if k != S.SOURCE_FILE}
    frame = pl.DataFrame(rows, schema={k: schema[k] for k in rows[0]})
    events = S.conform(frame, "events.csv").collect()
    return run(PairContext(events=events, device_info=info), params, Progress())


def acme_on(servers_count: int) -> list[dict]:
    """Acme's agent on ``servers_count`` servers (old traffic); srv0 also reaches NEW_IP
    an hour before the end of the data, which is the newest event."""
    rows = [event(f"srv{i}", OLD_IP, timedelta(days=3)) for i in range(servers_count)]
    rows.append(event("srv0", NEW_IP, timedelta(hours=1)))
    rows.append(event("srv0", OLD_IP, timedelta(0)))  # the data ends here: "now"
    return rows


# --- DeviceInfo -----------------------------------------------------------------------


def test_without_device_info_the_detector_is_skipped():
    with pytest.raises(DetectorSkipped, match="needs a DeviceInfo export"):
        detect(acme_on(1), None)


def test_servers_are_non_workstations_with_an_os_other_than_macos():
    info = device_info(
        [
            ("srv", "Server", "WindowsServer2019"),
            ("untyped", None, "Linux"),  # KQL: "" <> "Workstation" -> a server
            ("pc", "Workstation", "Windows10"),
            ("mac", "Server", "macOS"),
            ("no-os", "Server", ""),
            ("null-os", "Server", None),
        ]
    )
    old = info.with_columns(pl.lit(NOW - timedelta(days=20)).alias(S.DI_TIMESTAMP)).with_columns(
        pl.lit("stale").alias(S.DI_DEVICE_NAME)
    )
    since = NOW - timedelta(days=14)
    assert servers(pl.concat([info, old.head(1)]), since, PARAMS) == ["srv", "untyped"]


# --- third-party companies ------------------------------------------------------------


def test_company_on_nine_servers_is_third_party():
    out = detect(acme_on(9), server_info(10))
    assert out.select(S.C_DEVICE, S.C_REMOTE_IP, S.C_REMOTE_PORT).rows() == [("srv0", NEW_IP, 443)]
    assert out.get_column(E_COMPANIES).to_list() == [["Acme"]]


def test_company_on_ten_servers_is_not_third_party():
    assert detect(acme_on(10), server_info(10)).height == 0


def test_workstations_do_not_count_toward_a_companys_servers():
    # Acme on 9 servers and 5 workstations: still fewer than 10 *servers*.
    rows = acme_on(9) + [event(f"pc{i}", OLD_IP, timedelta(days=3)) for i in range(5)]
    info = pl.concat(
        [server_info(9), device_info([(f"pc{i}", "Workstation", "Windows11") for i in range(5)])]
    )
    assert detect(rows, info).height == 1


def test_empty_company_is_a_company_like_any_other():
    rows = [event("srv0", NEW_IP, timedelta(hours=1), company=None)]
    out = detect(rows, server_info(1))
    assert out.get_column(E_COMPANIES).to_list() == [[""]]


# --- new within the last day ----------------------------------------------------------


@pytest.mark.parametrize(
    ("first_seen", "reported"),
    [
        (timedelta(days=1), False),  # exactly a day before the end: not "> ago(1d)"
        (timedelta(days=1) - timedelta(microseconds=1), True),
        (timedelta(days=2), False),
    ],
)
def test_destination_is_new_only_when_first_seen_within_a_day(first_seen, reported):
    rows = [
        event("srv0", NEW_IP, first_seen),
        event("srv0", NEW_IP, timedelta(0)),  # seen again at the end of the data
    ]
    out = detect(rows, server_info(1))
    assert (out.height == 1) is reported


def test_history_older_than_the_lookback_is_forgotten():
    # Seen 15 days ago and again an hour ago: within the 14-day lookback it is new.
    rows = [event("srv0", NEW_IP, timedelta(days=15)), event("srv0", NEW_IP, timedelta(hours=1))]
    out = detect(rows, server_info(1))
    assert out.get_column(E_COUNT).to_list() == [1]


# --- prevalence -----------------------------------------------------------------------


def with_visitors(count: int) -> list[dict]:
    """acme_on(1) plus ``count`` workstations reaching NEW_IP within five days, and one
    more exactly five days before the end (outside "> ago(5d)")."""
    rows = acme_on(1)
    rows += [event(f"pc{i}", NEW_IP, timedelta(days=4)) for i in range(count)]
    rows.append(event("pc-old", NEW_IP, timedelta(days=5)))
    return rows


def test_prevalence_five_is_kept():
    out = detect(with_visitors(4), server_info(1))  # srv0 + 4 workstations = 5
    assert out.get_column(E_PREVALENCE).to_list() == [5]
    assert out.get_column(S.C_SCORE).to_list() == [pytest.approx(0.2)]  # (6 - 5) / (6 - 1)


def test_prevalence_six_is_dropped():
    assert detect(with_visitors(5), server_info(1)).height == 0


def test_prevalence_counts_device_ids_over_every_event_type():
    rows = acme_on(1)
    rows.append(event("pc1", NEW_IP, timedelta(days=1), action=S.ACTION_INBOUND))
    rows.append(event("pc1-renamed", NEW_IP, timedelta(days=1), device_id="id-pc1"))
    out = detect(rows, server_info(1))
    assert out.get_column(E_PREVALENCE).to_list() == [2]  # id-srv0, id-pc1
    assert out.get_column(S.C_SCORE).to_list() == [pytest.approx(0.8)]


# --- event filters --------------------------------------------------------------------


def test_listening_sockets_and_private_destinations_are_ignored():
    rows = acme_on(1)
    rows.append(event("srv0", "1.2.3.4", timedelta(hours=2), action=S.ACTION_LISTENING))
    rows.append(event("srv0", "10.0.0.9", timedelta(hours=2)))
    out = detect(rows, server_info(1))
    assert out.get_column(S.C_REMOTE_IP).to_list() == [NEW_IP]


# --- output ---------------------------------------------------------------------------


def test_row_has_commonest_process_counts_urls_and_times():
    rows = acme_on(1)
    rows.append(event("srv0", NEW_IP, timedelta(minutes=30), url="https://c2.example/a"))
    rows.append(event("srv0", NEW_IP, timedelta(minutes=20), process="helper.exe", url=""))
    rows.append(event("pc1", NEW_IP, timedelta(minutes=10), url="c2.example"))
    out = detect(rows, server_info(1))
    assert out.schema == OUTPUT_SCHEMA
    row = out.row(0, named=True)
    assert row[S.C_DETECTOR] == "rare_destinations"
    assert row[S.C_PROCESS] == "agent.exe"  # 2 of the 3 connections
    assert (row[E_COUNT], row[S.C_CONNECTIONS]) == (3, 3)
    assert row[S.C_FIRST_SEEN] == NOW - timedelta(hours=1)
    assert row[S.C_LAST_SEEN] == NOW - timedelta(minutes=20)
    assert row[E_URLS] == ["c2.example", "https://c2.example/a"]
    assert row[E_PREVALENCE] == 2


def test_rows_stay_per_destination_and_port():
    rows = [*acme_on(1), event("srv0", NEW_IP, timedelta(hours=1), port=8443)]
    out = detect(rows, server_info(1))
    assert out.get_column(S.C_REMOTE_PORT).to_list() == [443, 8443]


def test_rare_destinations_is_registered_with_the_seeds_defaults():
    spec = get("rare_destinations")
    assert spec.params_type is RareDestinationParams
    assert (PARAMS.lookback_days, PARAMS.new_within_days, PARAMS.prevalence_days) == (14, 1, 5)
    assert (PARAMS.third_party_max_servers, PARAMS.max_prevalence) == (10, 6)
    assert all(f.metadata.get("doc") for f in dataclasses.fields(RareDestinationParams))


def test_invalid_parameters_are_input_errors():
    with pytest.raises(InputError):
        detect(acme_on(1), server_info(1), dataclasses.replace(PARAMS, lookback_days=0))


# --- prevalence on disk: one remembered question for every partition ---------------------


class CountingPopulation(Population):
    """A population on disk that counts the queries it runs."""

    def __init__(self, events: pl.LazyFrame) -> None:
        super().__init__(events, streaming=True)
        self.queries = 0

    def collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        self.queries += 1
        return super().collect(query)


def test_shared_prevalence_asks_the_disk_once_and_answers_as_a_direct_question():
    rows = [
        event("srv0", NEW_IP, timedelta(days=1)),  # the server's new destination
        event("pc1", NEW_IP, timedelta(days=2), url="a.example"),
        event("pc2", NEW_IP, timedelta(days=3), url=""),
        event("pc3", NEW_IP, timedelta(days=6)),  # before the prevalence window
        event("srv0", OLD_IP, timedelta(days=20)),  # first seen long ago: not new
        event("srv0", OLD_IP, timedelta(days=1)),
        event("pc3", "1.1.1.1", timedelta(days=1)),  # not a server's row
    ]
    frame = pl.DataFrame(rows).with_columns(pl.lit(None, pl.String).alias(S.REMOTE_IP_TYPE))
    population = CountingPopulation(frame.lazy())
    population.public_addresses()  # asked by every query on disk already (rare_companies)
    population.queries = 0
    server_rows = _server_rows(NOW - timedelta(days=30), ["srv0"], PARAMS)
    since, new_since = NOW - timedelta(days=5), NOW - timedelta(days=7)
    third_party = pl.Series(S.COMPANY, ["Acme"])

    def ask(ips: list[str]) -> pl.DataFrame:
        series = pl.Series(S.REMOTE_IP, ips, dtype=pl.String)
        return shared_prevalence(population, series, since, server_rows, new_since, third_party)

    first = ask([NEW_IP])
    assert first.to_dicts() == [
        {S.REMOTE_IP: NEW_IP, E_PREVALENCE: 3, E_URLS: ["a.example"]}  # srv0, pc1, pc2
    ]
    assert population.queries == 2  # the new destinations, then their prevalence
    assert ask([NEW_IP]).equals(first)  # the next partition: no query
    assert ask([]).is_empty() and population.queries == 2
    # an address outside the remembered set is asked directly
    assert ask([OLD_IP]).to_dicts() == [{S.REMOTE_IP: OLD_IP, E_PREVALENCE: 1, E_URLS: []}]
    assert population.queries == 3
