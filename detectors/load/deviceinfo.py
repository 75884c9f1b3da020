"""Defender ``DeviceInfo`` (CSV export, API JSON, JSON Lines or Parquet) for rare_destinations.

Columns read: ``Timestamp``, ``DeviceId``, ``DeviceName``, ``DeviceType``, ``OSPlatform``
(extra columns ignored). ``DeviceType`` or ``OSPlatform``, and ``DeviceId`` or
``DeviceName``, are required; a missing ``Timestamp`` column leaves it null. Detected by
having DeviceType/OSPlatform columns and no RemoteIP.
"""

from __future__ import annotations

from pathlib import Path

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load.common import (
    LoadedFile,
    collect_checked,
    conform_to,
    reading,
    text,
    timestamp_spec,
)
from detectors.load.mde import read_table
from detectors.load.sniff import container_of

TIMESTAMP = "Timestamp"
DEVICE_ID = "DeviceId"
DEVICE_NAME = "DeviceName"
DEVICE_TYPE = "DeviceType"
OS_PLATFORM = "OSPlatform"
COLUMNS = (TIMESTAMP, DEVICE_ID, DEVICE_NAME, DEVICE_TYPE, OS_PLATFORM)


def load_deviceinfo(path: Path) -> LoadedFile:
    """DeviceInfo rows in ``DEVICE_INFO_SCHEMA``; the container is sniffed from the content."""
    table = read_table(path, container_of(path), COLUMNS)
    schema = table.schema
    for group in ((DEVICE_TYPE, OS_PLATFORM), (DEVICE_ID, DEVICE_NAME)):
        if not any(c in schema for c in group):
            raise InputError(
                f"missing required column '{group[0]}' or '{group[1]}'",
                file=str(path),
                field=group[0],
            )
    columns = {
        S.DI_DEVICE_ID: text(DEVICE_ID, schema),
        S.DI_DEVICE_NAME: text(DEVICE_NAME, schema),
        S.DI_DEVICE_TYPE: text(DEVICE_TYPE, schema),
        S.DI_OS_PLATFORM: text(OS_PLATFORM, schema),
    }
    if TIMESTAMP in schema:
        timestamp = timestamp_spec(table, TIMESTAMP, path)
        frame, warnings = collect_checked(table, columns, timestamp, path)
    else:
        with reading(path):
            frame = table.frame.select([e.alias(n) for n, e in columns.items()]).collect()
        warnings = list(table.warnings)
    return LoadedFile(device_info=conform_to(frame, S.DEVICE_INFO_SCHEMA), warnings=warnings)
