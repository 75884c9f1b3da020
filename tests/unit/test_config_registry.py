"""Config TOML: parameters override defaults; unknown keys and bad types name the key."""

from dataclasses import dataclass, field

import pytest

from detectors.base.errors import InputError
from detectors.hunts.registry import param_docs, params_from_table
from detectors.run.setup import load_config


@dataclass(frozen=True)
class DemoParams:
    threshold: float = field(default=50.0, metadata={"doc": "lower = fewer results"})
    count: int = field(default=15, metadata={"doc": "minimum events"})
    actions: tuple[str, ...] = field(default=("A", "B"), metadata={"doc": "action types"})
    window: float | None = field(default=None, metadata={"doc": "seconds or none"})


def test_params_from_table_overrides_and_coerces_int_to_float():
    params = params_from_table(DemoParams, {"threshold": 30, "actions": ["X"]})
    assert params == DemoParams(threshold=30.0, count=15, actions=("X",), window=None)


def test_params_unknown_key_names_file_and_key():
    with pytest.raises(InputError) as err:
        params_from_table(DemoParams, {"jitter": 1}, file="c.toml", section="detectors.demo")
    assert str(err.value) == "c.toml: unknown parameter [detectors.demo] jitter"


def test_params_wrong_type_is_refused():
    with pytest.raises(InputError, match="count: expected a whole number"):
        params_from_table(DemoParams, {"count": "ten"})
    with pytest.raises(InputError, match="count: expected a whole number"):
        params_from_table(DemoParams, {"count": True})


def test_param_docs_lists_defaults_and_docs():
    assert param_docs(DemoParams)[0] == ("threshold", 50.0, "lower = fewer results")


def test_missing_named_config_is_an_error_but_missing_default_is_empty(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_config(None).detectors == {}


def test_config_refuses_unknown_top_level_key_and_bad_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('colour = "red"\n')
    with pytest.raises(InputError, match="unknown config key 'colour'"):
        load_config(path)
    path.write_text("[detectors\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_config(path)


def test_config_refuses_unknown_detector(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[detectors.nosuch]\nx = 1\n")
    with pytest.raises(InputError, match=r"unknown detector \[detectors.nosuch\]"):
        load_config(path)


def test_the_table_builder_starts_first_and_the_other_table_user_last():
    # two workers: periodicity (costliest table user) sorts the connections while the
    # detectors that need no table run beside it; intervals waits for the table last
    from detectors.hunts.registry import all_detectors
    from detectors.run.memory import start_order

    assert start_order(list(all_detectors())) == [
        "periodicity",
        "aggregated",
        "buckets",
        "dns_beacons",
        "rare_destinations",
        "intervals",
    ]
    assert start_order(["intervals", "buckets"]) == ["intervals", "buckets"]
    assert start_order(["buckets", "aggregated"]) == ["buckets", "aggregated"]
