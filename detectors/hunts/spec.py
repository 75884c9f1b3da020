"""What a hunt declares about itself: name, summary, parameters, entry point, cost.

Each hunt module registers with ``register``; ``detectors.hunts.registry`` imports the
built-in hunts and answers for all of them. Hunts import this module, never the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from detectors.base.progress import Progress
from detectors.pairs.context import PairContext

RunFunction = Callable[[PairContext, Any, Progress], pl.DataFrame]
PartialFunction = Callable[[PairContext, Any, Progress], Any]
CombineFunction = Callable[[list[Any], PairContext, Any, Progress], pl.DataFrame]


@dataclass(frozen=True)
class Stages:
    """A detector split for input bigger than memory (``detectors.run.partitioned``).

    ``partial`` runs on one device partition (a ``PairContext`` whose ``everyone()`` answers
    for the whole input) and returns something small; ``combine`` turns the partials of
    every partition into the detector's output, applying what needs all devices at once
    (prevalence across devices, a false-discovery rate over every pair, the final
    order). A detector's ``run`` is ``combine([partial(dataset)], dataset)``, so both
    paths compute the same thing.
    """

    partial: PartialFunction
    combine: CombineFunction


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: its name, what it is, its parameters and its entry point."""

    name: str
    summary: str
    params_type: type
    run: RunFunction
    cost: int = 1  # relative run time: the engine starts the costliest first
    stages: Stages | None = None  # how to run it partition by partition
    sorts_connections: bool = False  # waits for the shared sorted connection table


_REGISTRY: dict[str, DetectorSpec] = {}


def register(
    name: str, summary: str, params_type: type, cost: int = 1, sorts_connections: bool = False
) -> Callable[[RunFunction], RunFunction]:
    """Decorator: ``@register("intervals", "...", IntervalParams)`` on a ``run`` function.

    ``cost`` is a hint (relative run time on big inputs): detectors run two at a time
    and the costliest start first, so the longest one does not start last.
    ``sorts_connections`` says the detector starts with ``PairContext.connection_table()``
    (the one big sort): the engine keeps the other worker busy with detectors that do
    not need it until the table is built.
    """

    def wrap(run: RunFunction) -> RunFunction:
        _REGISTRY[name] = DetectorSpec(
            name, summary, params_type, run, cost, sorts_connections=sorts_connections
        )
        return run

    return wrap


def register_stages(name: str, partial: PartialFunction, combine: CombineFunction) -> None:
    """Declare how detector ``name`` (already registered) runs over partitions."""
    _REGISTRY[name] = dataclasses.replace(_REGISTRY[name], stages=Stages(partial, combine))
