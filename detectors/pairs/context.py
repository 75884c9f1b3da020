"""The one PairContext of a run: what every hunt receives.

Built from the load stage's ``Loaded`` (or, by a run strategy, from one partition of a
bigger input). It holds the canonical events and side tables, and builds the shared
indexes once, on first use: the sorted connection table, the per-pair index for each
action set, and the population facts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import polars as pl

from detectors.base import schema as S
from detectors.load.dataset import Loaded

if TYPE_CHECKING:
    from detectors.pairs.population import Population
    from detectors.pairs.table import ConnectionTable


@dataclass
class PairContext(Loaded):
    """The loaded input (``Loaded``'s fields), and the indexes hunts share on it.

    ``population`` answers questions about every event (``everyone()``): this context's
    own, unless it is one device partition of a bigger input (``detectors.run.partitioned``).
    """

    _pair_cache: dict[tuple[tuple[str, ...] | None, int], pl.DataFrame] = field(
        default_factory=dict, repr=False
    )
    population: Population | None = field(default=None, repr=False)
    _connections: ConnectionTable | None = field(default=None, repr=False)
    # Placement in the network (``detectors.pairs.network``): the events as loaded
    # (``loaded_events``), the settings they were placed with and the notes it added, so
    # new settings re-place. Once placed, the loaded copy is let go (``release_loaded``)
    # and, where ``reload_loaded`` says how, read again only if the settings change.
    _loaded_events: pl.DataFrame | None = field(default=None, repr=False)
    _loaded_released: bool = field(default=False, repr=False)
    reload_loaded: Callable[[], pl.DataFrame] | None = field(default=None, repr=False)
    placed_with: Any = field(default=None, repr=False)
    placement_notes: list[str] = field(default_factory=list, repr=False)
    # Detectors run in parallel threads (TUI workers, the engine): each shared index is
    # built once, under its own lock, so a detector that needs only the names is not held
    # up while another sorts the connections.
    _locks: dict[str, threading.Lock] = field(
        default_factory=lambda: {k: threading.Lock() for k in ("table", "pairs", "population")},
        repr=False,
        compare=False,
    )

    @classmethod
    def of(cls, loaded: Loaded) -> PairContext:
        """The context of a whole loaded input."""
        return cls(**{f.name: getattr(loaded, f.name) for f in fields(Loaded)})

    @property
    def loaded_events(self) -> pl.DataFrame | None:
        """The events as loaded, before placement (None until the first placement).

        After ``release_loaded`` they are read again through ``reload_loaded`` (and kept
        from then on); without it this raises: placing the placed events again would
        turn inbound rows round twice, so it must fail loudly, never run.
        """
        if self._loaded_released:
            if self.reload_loaded is None:
                raise RuntimeError(
                    "the events as loaded were released after placement: this context "
                    "cannot be placed again with other [network] settings"
                )
            self.loaded_events = self.reload_loaded()
        return self._loaded_events

    @loaded_events.setter
    def loaded_events(self, events: pl.DataFrame | None) -> None:
        self._loaded_events = events
        self._loaded_released = False

    def release_loaded(self) -> None:
        """Let the events as loaded go once they are placed.

        Placement rewrites some columns (ports of inbound rows, proxied rows' keys) and
        drops rows, so the loaded copy kept beside the placed one held 40 MB per million
        events through every hunt and the merge. ``detect`` and ``eval`` place once; the
        TUI re-places only when its [network] settings change, and then reads the files
        again (``reload_loaded``: through the load cache). Before any placement there is
        nothing to release: the events are the loaded ones.
        """
        if self._loaded_events is not None:
            self._loaded_events = None
            self._loaded_released = True

    def drop_indexes(self) -> None:
        """Let the sorted connection table and the per-pair indexes go.

        The run calls this once every hunt is done: the merge asks the population and
        the names, never the pairs, and it is the run's high-water mark, so the
        indexes (~40 MB per million events) should not sit under it. Asked again,
        they are built again.
        """
        with self._locks["table"], self._locks["pairs"]:
            self._connections = None
            self._pair_cache.clear()

    @property
    def has_process(self) -> bool:
        """False for Zeek-only data, where candidates are keyed by originating IP."""
        return self.events.height > 0 and self.events.get_column(S.PROCESS).null_count() < (
            self.events.height
        )

    def connection_table(self) -> ConnectionTable:
        """Connection rows sorted once by pair and time: the source of every pair index."""
        with self._locks["table"]:
            if self._connections is None:
                from detectors.pairs.table import ConnectionTable

                self._connections = ConnectionTable.from_events(self.events)
            return self._connections

    def pairs(self, actions: Sequence[str] | None = None, min_count: int = 1) -> pl.DataFrame:
        """The per-pair index (public addresses) for a set of action types, shared.

        Every action set is cut from the one sorted connection table, so asking for
        another set costs a mask and segment sums, not another sort of the events.
        ``min_count`` keeps pairs with at least that many distinct times (cheaper to
        build when most pairs are seen a few times).
        """
        from detectors.pairs.index import P_COUNT

        actions_key = tuple(sorted(actions)) if actions is not None else None
        key = (actions_key, min_count)
        table = self.connection_table()
        with self._locks["pairs"]:  # one lock per index: two indexes may build at once
            building = self._locks.setdefault(f"pairs:{key}", threading.Lock())
        with building:
            if key not in self._pair_cache:
                full = self._pair_cache.get((actions_key, 1))
                if full is not None:  # same rows, same order: filter what is there
                    index = full.filter(pl.col(P_COUNT) >= min_count)
                else:
                    index = table.index(actions, min_count=min_count)
                self._pair_cache[key] = index
            return self._pair_cache[key]

    def everyone(self) -> Population:
        """Questions about all events: this dataset's own, or the whole input's when the
        dataset is one partition of a bigger one (``detectors.run.partitioned`` sets it)."""
        with self._locks["population"]:
            if self.population is None:
                from detectors.pairs.population import Population

                self.population = Population(self.events.lazy(), self.names)
            return self.population

    def names_by_ip(self) -> pl.DataFrame:
        """One row per remote IP: distinct names seen for it, sorted (computed once)."""
        return self.everyone().names_by_ip()
