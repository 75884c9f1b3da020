"""What the load stage hands on: canonical events plus the side tables some hunts need."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from detectors.base import schema as S


@dataclass
class Loaded:
    """Everything read from the user's files, in canonical form.

    ``events`` is the canonical event frame (``schema.EVENT_SCHEMA``). ``names`` maps
    remote IPs to names seen for them (RemoteUrl, Zeek dns/http/ssl). ``app`` holds
    per-connection HTTP/TLS details keyed by Zeek uid. ``device_info`` is Defender's
    DeviceInfo when the user supplied it. ``dns`` holds one row per DNS query
    (``schema.DNS_SCHEMA``, from Zeek dns.log). ``warnings`` are one-line notes for the user.
    ``skipped`` lists each file a folder held that was not read, with its group (the
    warnings count them in one line; a face may list them).
    """

    events: pl.DataFrame = field(default_factory=S.empty_events)
    names: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=S.NAMES_SCHEMA))
    app: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=S.APP_SCHEMA))
    device_info: pl.DataFrame | None = None
    dns: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=S.DNS_SCHEMA))
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
