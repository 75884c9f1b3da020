"""The one step that places loaded events in the site's network, before any pair exists.

Order matters: proxies are found and their clients' rows re-keyed to the proxied host
first (``detectors.pairs.proxy``), so a re-keyed row's direction is judged on the host it
was for; then protocol, monitored hosts and direction (``detectors.pairs.topology``), and
inbound rows are turned round to our host. Rows with neither end ours (transit a
sensor saw) are set aside: no hunt ranks them and no device count includes them;
how many there were is said, not hidden.

What was decided from the data (inferred monitored hosts, detected proxies) comes
back as lines for the user, so a wrong guess can be corrected in ``[network]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.egress import EgressCount, link_egress
from detectors.pairs.proxy import (
    PROXY_SCHEMA,
    X_ENDPOINT,
    describe_proxies,
    detect_proxies,
    proxy_targets,
    rekey,
)
from detectors.pairs.topology import (
    M_IP,
    MONITORED_SCHEMA,
    annotate,
    describe_monitored,
    infer_monitored,
)

if TYPE_CHECKING:
    from detectors.pairs.context import PairContext


@dataclass
class Placed:
    """Events with ``direction`` and ``via_proxy``, and what was found on the way."""

    events: pl.DataFrame
    monitored: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=MONITORED_SCHEMA))
    proxies: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PROXY_SCHEMA))
    external_only: int = 0
    egress: EgressCount = field(default_factory=EgressCount)

    def notes(self) -> list[str]:
        """One line per finding the user may want to correct."""
        lines = describe_monitored(self.monitored) + describe_proxies(self.proxies)
        if self.external_only:
            lines.append(
                f"{self.external_only:,} connections with neither end in our network set "
                "aside (declare [network] internal or monitored if some are ours)"
            )
        return lines + self.egress.notes()


def is_placed(events: pl.DataFrame) -> bool:
    """True when the events already carry the topology columns."""
    return S.DIRECTION in events.columns and S.VIA_PROXY in events.columns


def place(events: pl.DataFrame, app: pl.DataFrame, settings: NetworkSettings) -> Placed:
    """Proxies re-keyed, protocol normalised, direction given, inbound oriented."""
    if is_placed(events):
        return Placed(events)
    targets = proxy_targets(app)  # what each Zeek uid asked a proxy for: read once
    proxies = detect_proxies(events, targets, settings)
    events = rekey(events, targets, proxies.get_column(X_ENDPOINT).to_list())
    monitored = infer_monitored(events, settings)
    events = annotate(events, settings, monitored.get_column(M_IP).to_list())
    outside = (pl.col(S.DIRECTION) == S.DIR_EXTERNAL_ONLY).fill_null(False)
    external_only = int(events.select(outside.sum()).item())
    if external_only:
        events = events.filter(~outside)
    endpoints = proxies.get_column(X_ENDPOINT).to_list()
    events, egress = link_egress(events, app, endpoints, settings.proxy_egress_window_ms)
    return Placed(events, monitored, proxies, external_only, egress)


def place_context(context: PairContext, settings: NetworkSettings) -> PairContext:
    """Place the context's events in the network (in place) and say what was found.

    The findings go to the context's ``warnings``. New settings (the TUI's parameters,
    ``--internal``) place the events as loaded again; the same settings do nothing.
    Every index built from the old events is dropped: the pairs change with the keys.
    A partitioned input (a streaming population) is not placed yet.
    """
    if context.population is not None and context.population.streaming:
        return context
    if context.placed_with is None and is_placed(context.events):
        return context  # placed by whoever built the events
    wanted = settings if settings.enabled else None
    if context.placed_with == wanted:
        return context
    if context.loaded_events is None:
        context.loaded_events = context.events
    for line in context.placement_notes:
        if line in context.warnings:
            context.warnings.remove(line)
    if wanted is None:
        context.events, notes = context.loaded_events, []
    else:
        placed = place(context.loaded_events, context.app, settings)
        context.events, notes = placed.events, placed.notes()
    context.warnings.extend(notes)
    context.placement_notes = notes
    context.placed_with = wanted
    context._connections = None
    context._pair_cache.clear()
    context.population = None
    return context
