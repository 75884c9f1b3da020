"""The timing figures a candidate carries, each named and defined once.

The table, the detail pane, the exports and ``detect``/``explain`` all show these three
under these names, with the candidate's own values (never recomputed from other rows):

* **interval**: the median time between the pair's connections (``median_interval_s``);
* **sleep**: the beacon's estimated period (``period_s``, the periodicity hunt's estimate;
  absent when no hunt estimated one);
* **jitter**: how much the sleeps vary, in % (``jitter_pct``). Two hunts measure it, and
  the candidate keeps the periodicity hunt's when it has one: the width of the sleep
  interval over its centre, (upper - lower) / (upper + lower), robust to lost
  connections; otherwise the intervals hunt's coefficient of variation, stdev / mean of
  the deltas (seed 001). ``jitter_definition`` says which one a candidate carries.

The detail pane's statistics of the charted deltas (percentiles, mean, CoV) are named
apart from these: they describe the chart's connections, not the candidate's figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from detectors.base import schema as S

C_JITTER_KIND = "jitter_kind"  # set by the periodicity hunt: none, uniform, one-sided


@dataclass(frozen=True)
class Figure:
    column: str
    label: str  # the one name every view uses
    unit: str
    definition: str


INTERVAL = Figure(S.C_INTERVAL, "interval", "s", "median time between connections")
SLEEP = Figure(S.C_PERIOD, "sleep", "s", "estimated period of the beacon")
JITTER = Figure(S.C_JITTER, "jitter", "%", "how much the sleeps vary")
FIGURES = (INTERVAL, SLEEP, JITTER)

JITTER_SOURCE = "periodicity"  # rank.scoring takes jitter from it first, then intervals
JITTER_UNIFORM = "width of the sleep interval over its centre, (upper − lower)/(upper + lower)"
JITTER_COV = "coefficient of variation of the deltas, stdev/mean"


def jitter_definition(row: Mapping[str, Any]) -> str:
    """Which jitter this candidate carries: the periodicity hunt's when that hunt found
    it (the merge prefers its value), else the intervals hunt's CoV."""
    kind = row.get(C_JITTER_KIND)
    if kind:
        return f"{JITTER_UNIFORM} ({kind})"
    if JITTER_SOURCE in (row.get(S.C_DETECTORS) or ()):
        return JITTER_UNIFORM
    return JITTER_COV
