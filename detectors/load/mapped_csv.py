"""Any other CSV, described by the config's ``[mapping]``: canonical column = CSV header.

```toml
[mapping]
timestamp = "EventTime"   # required
remote_ip = "dst"         # required
remote_port = "dport"
device_name = "host"
```

Keys are canonical event columns (see ``detectors.base.schema.EVENT_SCHEMA``; ``source_file``
is set by the loader). Only the mapped headers are read. The delimiter (``,`` ``;`` TAB
``|``) is sniffed from the header. Timestamps are recognised per value: ISO-8601 with or
without an offset (no offset means UTC), or a plain number of seconds since 1970 (at
most 11 integer digits), milliseconds (12-14 digits) or microseconds (15 or more).
Numbers that do not parse (ports, bytes) become null. Unmapped ``connections`` is 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load.common import LoadedFile, finish_events, integer, text, timestamp_spec
from detectors.load.tables import csv_table

REQUIRED = (S.TIMESTAMP, S.REMOTE_IP)
MAPPABLE = tuple(name for name in S.EVENT_SCHEMA if name != S.SOURCE_FILE)


def check_mapping(mapping: Mapping[str, str]) -> None:
    """Reject a mapping that names an unknown column or misses a required one."""
    for key, header in mapping.items():
        if key not in MAPPABLE:
            raise InputError(
                f"[mapping] key '{key}' is not a canonical column; use one of: "
                + ", ".join(MAPPABLE),
                field=key,
            )
        if not isinstance(header, str) or not header:
            raise InputError(f"[mapping] {key} must be a CSV header name", field=key)
    for key in REQUIRED:
        if key not in mapping:
            raise InputError(f"[mapping] must map '{key}' to a CSV header", field=key)


def load_mapped_csv(path: Path, mapping: Mapping[str, str]) -> LoadedFile:
    check_mapping(mapping)
    table = csv_table(path, set(mapping.values()))
    schema = table.schema
    for key, header in mapping.items():
        if header not in schema:
            raise InputError(
                f"column '{header}' (mapped to {key} in [mapping]) is not in the CSV header",
                file=str(path),
                field=header,
            )
    columns: dict[str, pl.Expr] = {}
    for key, header in mapping.items():
        dtype = S.EVENT_SCHEMA[key]
        if key == S.TIMESTAMP:
            continue
        if dtype.is_integer():
            columns[key] = integer(header, schema, dtype)
        else:
            columns[key] = text(header, schema)
    columns.setdefault(S.CONNECTIONS, pl.lit(1, pl.Int64))
    timestamp = timestamp_spec(table, mapping[S.TIMESTAMP], path, epoch=True)
    events, warnings = finish_events(table, columns, timestamp, path)
    return LoadedFile(events=events, warnings=warnings)
