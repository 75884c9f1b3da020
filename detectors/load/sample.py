"""Where the bundled sample data lives, installed or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_COPY = Path(__file__).parent.parent / "_sample_data"
_CHECKOUT_COPY = Path(__file__).parents[2] / "sample_data"

SAMPLE_EVENTS = "defender_network_events.csv"
SAMPLE_DEVICE_INFO = "device_info.csv"
SAMPLE_GROUND_TRUTH = "ground_truth.csv"


def sample_dir() -> Path:
    """The sample_data folder: the wheel's copy, else the checkout's."""
    return _PACKAGE_COPY if _PACKAGE_COPY.is_dir() else _CHECKOUT_COPY


def sample_paths() -> list[Path]:
    """The files opened when the user names none: Defender events plus DeviceInfo."""
    base = sample_dir()
    return [p for p in (base / SAMPLE_EVENTS, base / SAMPLE_DEVICE_INFO) if p.exists()]


def sample_zeek_dir() -> Path:
    """The same scenario as Zeek logs (conn, dns, http, ssl)."""
    return sample_dir() / "zeek"


NETWORK_SCENARIO = "network"
IMPLANTS_SCENARIO = "implants"
SCENARIOS = ("office", NETWORK_SCENARIO, IMPLANTS_SCENARIO)


def scenario_dir(scenario: str = "office") -> Path:
    """The folder of a bundled scenario: the office sample, or ``network/`` beside it
    (an explicit proxy, a DMZ sensor host, resolvers and NTP), or ``implants/`` (a week
    of implant shapes: jitter, bursts, long sleeps, a dead C2, a campaign, DNS)."""
    if scenario in (NETWORK_SCENARIO, IMPLANTS_SCENARIO):
        return sample_dir() / scenario
    return sample_dir()


def scenario_paths(scenario: str = "office") -> list[Path]:
    """Every input of a bundled scenario: its Defender files and its Zeek folder."""
    if scenario not in (NETWORK_SCENARIO, IMPLANTS_SCENARIO):
        return [*sample_paths(), sample_zeek_dir()]
    base = scenario_dir(scenario)
    return [p for p in (base / SAMPLE_EVENTS, base / "zeek") if p.exists()]
