"""Imports the built-in detector modules so they register themselves."""

from __future__ import annotations

import importlib

BUILTIN_DETECTORS = ("intervals", "aggregated", "buckets", "rare_destinations", "periodicity")

for _module in BUILTIN_DETECTORS:
    importlib.import_module(f"detectors.{_module}")
