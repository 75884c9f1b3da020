"""The detector rows of input opened as partitions, where one job hunts every detector.

The job runs off the app here (a recording stand-in for it, a scripted strategy), so the
rows it reports can be read message by message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import Cancelled
from detectors.base.progress import Progress
from detectors.pairs.context import PairContext
from detectors.run.outcome import DetectorOutcome
from tui import stages as ST
from tui.messages import DetectorFinished, StageChanged
from tui.pipeline import Pipeline, detector_key

_NO_EVENTS = PairContext(events=S.empty_events())


class _Recorder:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    def post_message(self, message: Any) -> bool:
        self.messages.append(message)
        return True


class _TwoPartitions:
    """Reports as ``Partitioned.hunts`` does: the partition loop, then each detector's
    own messages, then the outcomes at the end."""

    def hunts(
        self, context: Any, config: Any, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        for partition in range(2):
            progress.report("detect", partition / 2, f"partition {partition + 1}")
            progress.report("periodicity", 0.8, "scoring")
        progress.report("intervals", 1.0, "7 candidates")
        for name in names:
            yield DetectorOutcome(name, hits=pl.DataFrame({"x": [1, 2, 3]}), seconds=1.25)


def _rows(recorder: _Recorder) -> list[tuple[str, float, str, str]]:
    return [
        (m.key, m.fraction, m.text, m.status)
        for m in recorder.messages
        if isinstance(m, StageChanged)
    ]


def test_each_detector_row_ends_done_and_shows_only_its_own_messages():
    recorder = _Recorder()
    ticks = iter(range(10, 1000, 10))  # every report 10 s after the last: none is throttled
    pipeline = Pipeline(recorder, clock=lambda: float(next(ticks)))  # type: ignore[arg-type]
    pipeline.strategy = _TwoPartitions()  # type: ignore[assignment]
    progress = pipeline._new_progress(detector_key(""))
    pipeline._together_job(1, ["intervals", "periodicity"], _NO_EVENTS, None, progress)  # type: ignore[arg-type]
    rows = _rows(recorder)
    intervals = [r for r in rows if r[0] == "detector:intervals"]
    periodicity = [r for r in rows if r[0] == "detector:periodicity"]
    # The partition loop reaches every row; a detector's message only its own, at the
    # run's fraction (partition 2 of 2 started: 0.5), not its fraction within a partition.
    assert intervals == [
        ("detector:intervals", 0.0, "detect: partition 1", ST.RUNNING),
        ("detector:intervals", 0.5, "detect: partition 2", ST.RUNNING),
        ("detector:intervals", 0.5, "intervals: 7 candidates", ST.RUNNING),
        ("detector:intervals", 1.0, "3 hits in 1.2s", ST.DONE),
    ]
    assert periodicity == [
        ("detector:periodicity", 0.0, "detect: partition 1", ST.RUNNING),
        ("detector:periodicity", 0.0, "periodicity: scoring", ST.RUNNING),
        ("detector:periodicity", 0.5, "detect: partition 2", ST.RUNNING),
        ("detector:periodicity", 0.5, "periodicity: scoring", ST.RUNNING),
        ("detector:periodicity", 1.0, "3 hits in 1.2s", ST.DONE),
    ]
    # Both outcomes go out at the end, and only the last asks the app for a merge: one
    # merge for the pair, not one for the first alone and another for both.
    finished = [m for m in recorder.messages if isinstance(m, DetectorFinished)]
    assert [(m.outcome.name, m.merge) for m in finished] == [
        ("intervals", False),
        ("periodicity", True),
    ]
    assert recorder.messages.index(finished[0]) > recorder.messages.index(
        next(m for m in recorder.messages if getattr(m, "text", "") == "intervals: 7 candidates")
    )


class _CancelledAfterOne(_TwoPartitions):
    def hunts(
        self, context: Any, config: Any, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        yield DetectorOutcome(names[0], hits=pl.DataFrame({"x": [1]}))
        raise Cancelled()


def test_a_cancelled_job_reports_every_detector_cancelled_and_no_outcome():
    recorder = _Recorder()
    pipeline = Pipeline(recorder)  # type: ignore[arg-type]
    pipeline.strategy = _CancelledAfterOne()  # type: ignore[assignment]
    progress = pipeline._new_progress(detector_key(""))
    pipeline._together_job(1, ["intervals", "periodicity"], _NO_EVENTS, None, progress)  # type: ignore[arg-type]
    assert not [m for m in recorder.messages if isinstance(m, DetectorFinished)]
    assert [(key, status) for key, _, _, status in _rows(recorder)] == [
        ("detector:intervals", ST.CANCELLED),
        ("detector:periodicity", ST.CANCELLED),
    ]


class _Chatty(_TwoPartitions):
    """A detector reporting many times a second between the pass's reports."""

    def hunts(
        self, context: Any, config: Any, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        for partition in range(3):
            progress.report("detect", partition / 3, f"partition {partition + 1}")
            for _ in range(15):  # 0.15 s of messages: more than the throttle
                progress.report("periodicity", 0.5, "scoring")
        yield from super().hunts(context, config, [], progress)


def test_a_detectors_messages_do_not_hold_back_the_pass_progress_of_the_others():
    recorder = _Recorder()
    ticks = iter(range(1000))  # 0.01 s between reports: the detector's are throttled
    pipeline = Pipeline(recorder, clock=lambda: next(ticks) / 100)  # type: ignore[arg-type]
    pipeline.strategy = _Chatty()  # type: ignore[assignment]
    progress = pipeline._new_progress(detector_key(""))
    pipeline._together_job(1, ["dns_beacons", "periodicity"], _NO_EVENTS, None, progress)  # type: ignore[arg-type]
    quiet = [(f, t) for key, f, t, _ in _rows(recorder) if key == "detector:dns_beacons"]
    # Every partition reaches the row of a detector with nothing to say, however often
    # another detector speaks in between.
    assert quiet[:3] == [
        (0.0, "detect: partition 1"),
        (pytest.approx(1 / 3), "detect: partition 2"),
        (pytest.approx(2 / 3), "detect: partition 3"),
    ]
