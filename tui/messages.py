"""What the background work tells the app (posted from worker threads; thread-safe)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:  # the engine's modules load after the first paint
    import polars as pl

    from detectors.curate.decorate import Decorated
    from detectors.curate.session import Curation
    from detectors.pairs.context import PairContext
    from detectors.rank.enrichment import DestinationIndex
    from detectors.run.outcome import DetectorOutcome


class StageChanged(Message):
    """A step's progress, or its end (``status`` from tui.stages)."""

    def __init__(self, key: str, fraction: float, text: str, status: str) -> None:
        super().__init__()
        self.key = key
        self.fraction = fraction
        self.text = text
        self.status = status


class DatasetLoaded(Message):
    def __init__(self, dataset: PairContext) -> None:
        super().__init__()
        self.dataset = dataset


class LoadFailed(Message):
    """The files could not be loaded; ``error`` is one line."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class IndexReady(Message):
    """The chart pair index and the destination index are built for the dataset.

    ``fetch``, when set, reads one candidate's pair index from disk on demand (input
    opened as partitions: ``pairs`` is then empty, the events are not in memory).
    """

    def __init__(
        self,
        pairs: pl.DataFrame,
        index: DestinationIndex,
        fetch: Callable[[Mapping[str, Any]], pl.DataFrame] | None = None,
    ) -> None:
        super().__init__()
        self.pairs = pairs
        self.index = index
        self.fetch = fetch


class DetectorFinished(Message):
    """A detector's outcome; ``merge`` is False when more outcomes of the same job follow
    at once, so the app merges once, after the last of them."""

    def __init__(self, run_id: int, outcome: DetectorOutcome, merge: bool = True) -> None:
        super().__init__()
        self.run_id = run_id
        self.outcome = outcome
        self.merge = merge


class DetectorFailed(Message):
    """A detector could not run (bad parameters): ``error`` is one line."""

    def __init__(self, run_id: int, name: str, error: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.name = name
        self.error = error


class CandidatesMerged(Message):
    """A merge's result; ``candidates`` is None when the merge failed (it is logged)."""

    def __init__(self, run_id: int, candidates: pl.DataFrame | None, final: bool) -> None:
        super().__init__()
        self.run_id = run_id
        self.candidates = candidates
        self.final = final


class Note(Message):
    """A line for the log screen (``level``: info, warning, error)."""

    def __init__(self, level: str, text: str) -> None:
        super().__init__()
        self.level = level
        self.text = text


class CandidatesDecorated(Message):
    """The merged candidates with the allow-list flags and triage marks (``seq`` orders them)."""

    def __init__(self, seq: int, decorated: Decorated) -> None:
        super().__init__()
        self.seq = seq
        self.decorated = decorated


class Exported(Message):
    """An export finished: ``error`` is one line, or None when ``rows`` were written."""

    def __init__(self, path: str, fmt: str, rows: int, error: str | None) -> None:
        super().__init__()
        self.path = path
        self.fmt = fmt
        self.rows = rows
        self.error = error


class CurationOpened(Message):
    """The allow-list and triage marks were read (in a worker, after the first paint)."""

    def __init__(self, curation: Curation) -> None:
        super().__init__()
        self.curation = curation
