"""What the loaders hand to the engine: events plus the side tables some detectors need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from detectors import schema as S


@dataclass
class Dataset:
    """Everything loaded from the user's files, in canonical form.

    ``events`` is the canonical event frame (``schema.EVENT_SCHEMA``). ``names`` maps
    remote IPs to names seen for them (RemoteUrl, Zeek dns/http/ssl). ``app`` holds
    per-connection HTTP/TLS details keyed by Zeek uid. ``device_info`` is Defender's
    DeviceInfo when the user supplied it. ``warnings`` are one-line notes for the user.
    """

    events: pl.DataFrame = field(default_factory=S.empty_events)
    names: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=S.NAMES_SCHEMA))
    app: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=S.APP_SCHEMA))
    device_info: pl.DataFrame | None = None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _pair_cache: dict[tuple[str, ...] | None, pl.DataFrame] = field(
        default_factory=dict, repr=False
    )

    @property
    def has_process(self) -> bool:
        """False for Zeek-only data, where candidates are keyed by originating IP."""
        return self.events.height > 0 and self.events.get_column(S.PROCESS).null_count() < (
            self.events.height
        )

    def pairs(self, actions: Sequence[str] | None = None) -> pl.DataFrame:
        """The per-pair index for a set of action types, built once and shared."""
        from detectors.pairs import build_pair_index

        key = tuple(sorted(actions)) if actions is not None else None
        if key not in self._pair_cache:
            self._pair_cache[key] = build_pair_index(self.events, actions)
        return self._pair_cache[key]

    def names_by_ip(self) -> pl.DataFrame:
        """One row per remote IP: distinct names seen for it, sorted."""
        names = self.names
        from_events = (
            self.events.filter(pl.col(S.REMOTE_URL).is_not_null() & (pl.col(S.REMOTE_URL) != ""))
            .select(
                pl.col(S.REMOTE_IP).alias(S.NAME_IP),
                pl.col(S.REMOTE_URL).alias(S.NAME),
                pl.lit("remote_url").alias(S.NAME_SOURCE),
            )
            .unique()
        )
        both = pl.concat([names, from_events], how="vertical_relaxed")
        return both.group_by(S.NAME_IP).agg(pl.col(S.NAME).unique().sort().alias("names"))
