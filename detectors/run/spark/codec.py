"""Partial results from executors to the driver as data, never as pickled code.

A hunt's ``partial`` returns a polars frame, or a dataclass whose fields are frames,
numpy arrays or plain values (``periodicity.Tested``). They travel as Arrow IPC (frames),
raw bytes with a declared numeric dtype (arrays) and JSON (the rest), behind a JSON
header; the driver rebuilds a dataclass from the hunt's own module by name. Nothing is
deserialised as code, so the rule that no module unpickles holds here too.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import sys
from typing import Any

import numpy as np
import polars as pl


def _frame_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


def _field(value: Any, blobs: list[bytes]) -> dict[str, Any]:
    if value is None:
        return {"kind": "none"}
    if isinstance(value, pl.DataFrame):
        blobs.append(_frame_bytes(value))
        return {"kind": "frame", "blob": len(blobs) - 1}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("object arrays cannot travel as data")
        blobs.append(np.ascontiguousarray(value).tobytes())
        return {"kind": "array", "blob": len(blobs) - 1, "dtype": value.dtype.str,
                "shape": list(value.shape)}  # fmt: skip
    return {"kind": "json", "value": value}


def encode(value: Any) -> bytes:
    """``value`` (a frame, or a dataclass of frames, arrays and plain values) as bytes."""
    blobs: list[bytes] = []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _field(getattr(value, f.name), blobs) for f in dataclasses.fields(value)}
        header = {"type": "dataclass", "name": type(value).__qualname__, "fields": fields}
    else:
        header = {"type": "value", "field": _field(value, blobs)}
    head = json.dumps(header).encode()
    parts = [struct.pack("<I", len(head)), head]
    for blob in blobs:
        parts += [struct.pack("<Q", len(blob)), blob]
    return b"".join(parts)


def _unfield(spec: dict[str, Any], blobs: list[bytes]) -> Any:
    kind = spec["kind"]
    if kind == "none":
        return None
    if kind == "frame":
        return pl.read_ipc(io.BytesIO(blobs[spec["blob"]]))
    if kind == "array":
        dtype = np.dtype(spec["dtype"])
        if dtype.hasobject:
            raise ValueError("object arrays are refused")
        return np.frombuffer(blobs[spec["blob"]], dtype=dtype).reshape(spec["shape"]).copy()
    return spec["value"]


def decode(data: bytes, module: str) -> Any:
    """``encode``'s value back; a dataclass is looked up by name in ``module`` (the hunt's
    own, already imported), never imported from what the bytes say."""
    (size,) = struct.unpack_from("<I", data, 0)
    header = json.loads(data[4 : 4 + size])
    offset = 4 + size
    blobs: list[bytes] = []
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        blobs.append(data[offset + 8 : offset + 8 + length])
        offset += 8 + length
    if header["type"] == "value":
        return _unfield(header["field"], blobs)
    cls = getattr(sys.modules.get(module), header["name"], None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"{header['name']!r} is not a dataclass of {module}")
    values = {name: _unfield(spec, blobs) for name, spec in header["fields"].items()}
    return cls(**values)
