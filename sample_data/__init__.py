"""A deterministic simulated network with planted beacons, written in real telemetry formats.

``generate.py`` is the entry point; see README.md in this folder for the scenario.
"""
