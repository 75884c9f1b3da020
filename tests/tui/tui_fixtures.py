"""A small deterministic dataset and fake detectors for the TUI tests.

Three devices talk to public addresses over one day (2026-11-20, UTC):
* ws-beacon / beacon.exe → 45.77.10.20:443 every 300 s with a fixed ±6 s wiggle
  (a beacon; the name c2.updates-example.net was seen for the address);
* ws-human / chrome.exe → 151.101.1.69:443 at irregular times;
* a hostile device whose name, process and domain carry markup, ANSI escapes and a
  bidi override, talking to 45.77.10.20:8443 every 600 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.progress import Progress
from detectors.pairs.context import PairContext
from detectors.pairs.index import P_COUNT, P_DELTAS, P_FIRST, P_LAST

UTC = timezone.utc
START = datetime(2026, 11, 20, 0, 0, 0, tzinfo=UTC)
BEACON_IP = "45.77.10.20"
HUMAN_IP = "151.101.1.69"
BEACON_NAME = "c2.updates-example.net"
HOSTILE_DEVICE = "ws-[bold]evil[/bold]"
HOSTILE_PROCESS = "[@click=app.quit]x.exe"
HOSTILE_URL = "evil\x1b[31mred\u202etxt.example.org"
WIGGLE = (0.0, 6.0, -6.0, 3.0, -3.0)  # seconds added to the k-th beacon, k mod 5


def _row(ts: datetime, device: str, process: str, ip: str, port: int, **extra: Any) -> dict:
    return {
        S.TIMESTAMP: ts,
        S.DEVICE_ID: f"id-{device}",
        S.DEVICE_NAME: device,
        S.ACCOUNT: "corp\\user",
        S.PROCESS: process,
        S.ACTION: S.ACTION_SUCCESS,
        S.REMOTE_IP: ip,
        S.REMOTE_PORT: port,
        S.PROTOCOL: "Tcp",
        S.CONNECTIONS: 1,
        **extra,
    }


def events() -> pl.DataFrame:
    rows = []
    for k in range(288):  # one day of 5-minute beacons
        ts = START + timedelta(seconds=300 * k + WIGGLE[k % 5])
        url = BEACON_NAME if k % 50 == 0 else None
        rows.append(_row(ts, "ws-beacon", "beacon.exe", BEACON_IP, 443, **{S.REMOTE_URL: url}))
    rng = np.random.default_rng(7)
    for offset in np.sort(rng.uniform(0, 86_000, 40)):
        ts = START + timedelta(seconds=float(np.round(offset, 3)))
        rows.append(_row(ts, "ws-human", "chrome.exe", HUMAN_IP, 443))
    for k in range(144):
        ts = START + timedelta(seconds=600 * k + 1)
        url = HOSTILE_URL if k == 0 else None
        rows.append(
            _row(ts, HOSTILE_DEVICE, HOSTILE_PROCESS, BEACON_IP, 8443, **{S.REMOTE_URL: url})
        )
    return S.conform(pl.DataFrame(rows), "synthetic.csv").collect()


def dataset() -> PairContext:
    return PairContext(
        events=events(), files=["synthetic.csv"], warnings=["synthetic warning line"]
    )


def loader_for(data: PairContext | None = None) -> Any:
    """A loader with the real signature that returns the synthetic dataset."""

    def load(
        paths: list[str], *, source_format: Any, mapping: Any, progress: Progress
    ) -> PairContext:
        progress.report("read", 0.5, "reading synthetic rows")
        return data if data is not None else dataset()

    return load


@dataclass(frozen=True)
class FakeParams:
    min_count: int = field(default=10, metadata={"doc": "Pairs need this many times."})
    label: str = field(default="x", metadata={"doc": "Unused text parameter."})


def fake_periodic(data: PairContext, params: FakeParams, progress: Progress) -> pl.DataFrame:
    """Every pair with enough connections; score = 1 - coefficient of variation."""
    progress.report("fake", 0.5, "scoring pairs")
    pairs = data.pairs((S.ACTION_SUCCESS,)).filter(pl.col(P_COUNT) >= params.min_count)
    mean = pl.col(P_DELTAS).list.mean()
    cov = pl.col(P_DELTAS).list.std() / mean
    return pairs.select(
        pl.lit("fake_periodic").alias(S.C_DETECTOR),
        pl.col(S.DEVICE_NAME).alias(S.C_DEVICE),
        pl.col(S.PROCESS).alias(S.C_PROCESS),
        pl.col(S.REMOTE_IP).alias(S.C_REMOTE_IP),
        pl.col(S.REMOTE_PORT).alias(S.C_REMOTE_PORT),
        (1 - cov.clip(0, 1)).alias(S.C_SCORE),
        pl.col(P_COUNT).cast(pl.Int64).alias(S.C_CONNECTIONS),
        pl.col(P_FIRST).alias(S.C_FIRST_SEEN),
        pl.col(P_LAST).alias(S.C_LAST_SEEN),
        pl.col(P_DELTAS).list.median().alias(S.C_INTERVAL),
        (cov * 100).alias(S.C_JITTER),
    )


def register_fake(monkeypatch: Any, name: str = "fake_periodic", run: Any = fake_periodic) -> None:
    """Register a detector for one test only (the registry is restored afterwards)."""
    from detectors.hunts import registry

    registry.all_detectors()  # import the built-ins first, so they are not re-added later
    spec = registry.DetectorSpec(name, "a detector for tests", FakeParams, run)
    monkeypatch.setitem(registry._REGISTRY, name, spec)


def make_app(tmp_path: Any, *, detectors: tuple[str, ...] = ("fake_periodic",), **kwargs: Any):
    """The app on the synthetic data, with a config file in tmp (never the user's)."""
    from pathlib import Path

    from detectors.base.config import Config
    from tui.app import BeaconTriageApp

    config = kwargs.pop("config", None) or Config(
        path=Path(tmp_path) / "config.toml", theme="beacon-dark"
    )
    kwargs.setdefault("loader", loader_for())
    kwargs.setdefault("allowlist_path", Path(tmp_path) / "allowlist.toml")
    return BeaconTriageApp(
        ["synthetic.csv"], config=config, detector_names=list(detectors), **kwargs
    )


async def settle(app: Any, pilot: Any, until: Any = None, timeout: float = 15.0) -> None:
    """Wait until no worker runs, their messages are handled and ``until()`` holds.

    The default condition: the run is finished and, if there are rows, a detail shows.
    """
    import contextlib
    import time

    from textual.worker import WorkerCancelled

    def default() -> bool:
        screen = app.main_screen
        has_rows = screen.view.height > 0
        return screen.header.status == "ready" and (screen.detail is not None or not has_rows)

    check = until or default
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:  # twice in a row: a worker's last message may start another worker
        with contextlib.suppress(WorkerCancelled):  # a merge replaced by a newer one
            await app.workers.wait_for_complete()
        await pilot.pause()
        busy = any(w.is_running for w in app.workers)
        calm = calm + 1 if not busy and check() else 0
        if time.monotonic() > deadline:
            raise AssertionError("the app did not settle in time")
        await pilot.pause(0.01)
