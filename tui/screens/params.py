"""``p``: every detector parameter in one form, with its default and what it trades.

The ``[network]`` settings (internal subnets, monitored hosts, proxies) come last in the
same form: changing them places the loaded events again before the re-run.

Values are typed as TOML (``30``, ``0.5``, ``["ConnectionSuccess"]``) and checked with
the same ``params_from_table`` the config loader uses, so what the form accepts the
file accepts. Ctrl+R applies and re-runs (the stale run is cancelled); Ctrl+S writes
``[detectors.<name>]`` tables to the config TOML (comments kept, atomic, ``.bak``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from detectors.base.config import Config, network_docs, network_from_table
from detectors.base.errors import InputError
from detectors.hunts.registry import DetectorSpec, param_docs, params_from_table
from tui import keymap
from tui.settings import (
    config_file,
    parse_toml_value,
    save_detector_params,
    save_network_settings,
    toml_value,
)

Overrides = dict[str, dict[str, Any]]
NETWORK = "network"  # the form's section (and the overrides' key) for [network]


def _field_id(detector: str, param: str) -> str:
    return f"param--{detector}--{param}"


def overrides_for(spec: DetectorSpec, typed: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a detector's typed values; keep only those that differ from the default.

    Raises InputError (naming the parameter) when a value has the wrong type.
    """
    table = {k: v for k, v in typed.items() if v is not None}
    params = params_from_table(spec.params_type, table, section=f"detectors.{spec.name}")
    defaults = {name: default for name, default, _ in param_docs(spec.params_type)}
    chosen = dataclasses.asdict(params)
    return {k: typed[k] for k, v in chosen.items() if k in table and v != defaults.get(k)}


def network_overrides(typed: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the ``[network]`` values; keep only those that differ from the default."""
    table = {k: v for k, v in typed.items() if v is not None}
    chosen = dataclasses.asdict(network_from_table(table, None))
    defaults = {name: default for name, default, _ in network_docs()}
    return {k: typed[k] for k, v in chosen.items() if k in table and v != defaults.get(k)}


class ParamRow(Horizontal):
    """One parameter: name, value box, default and description."""

    DEFAULT_CSS = """
    ParamRow {
        height: auto;
        margin-bottom: 1;
    }
    ParamRow > .param-name {
        width: 26;
        color: $primary;
        padding-top: 1;
    }
    ParamRow > Input {
        width: 30;
    }
    ParamRow > Input.-invalid {
        border: tall $error;
    }
    ParamRow > .param-doc {
        width: 1fr;
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, detector: str, name: str, default: Any, doc: str, value: Any) -> None:
        super().__init__()
        self.detector = detector
        self.param = name
        self.default = default
        self.doc = doc
        self.value = value

    def compose(self) -> ComposeResult:
        yield Label(Text(self.param, end=""), classes="param-name")
        yield Input(toml_value(self.value), id=_field_id(self.detector, self.param))
        doc = Text.assemble(
            (f"default {toml_value(self.default) or 'none'}\n", "bold"), self.doc, end=""
        )
        yield Static(doc, classes="param-doc")


class ParamsScreen(Screen[Overrides | None]):
    """Dismisses with the new overrides (apply) or None (close)."""

    KEYMAP_WHERE = "params"
    BINDINGS = keymap.bindings("params")

    DEFAULT_CSS = """
    ParamsScreen > .params-title {
        height: 1;
        width: 100%;
        background: $panel;
        color: $primary;
        text-style: bold;
        padding: 0 1;
    }
    ParamsScreen > #params-error {
        height: auto;
        color: $error;
        text-style: bold;
        padding: 0 1;
    }
    ParamsScreen > VerticalScroll {
        padding: 0 1;
    }
    ParamsScreen .detector-heading {
        text-style: bold;
        color: $accent;
        margin-top: 1;
    }
    ParamsScreen .detector-summary {
        color: $text-muted;
        margin-bottom: 1;
    }
    """

    def __init__(self, config: Config, specs: Mapping[str, DetectorSpec]) -> None:
        super().__init__()
        self.config = config
        self.specs = dict(specs)

    def compose(self) -> ComposeResult:
        where = config_file(self.config)
        title = f"Detector parameters (Ctrl+R apply and run, Ctrl+S save to {where})"
        yield Label(Text(title, end=""), classes="params-title")
        yield Static(id="params-error")
        with VerticalScroll(id="params-form"):
            if not self.specs:
                yield Label("No detectors are registered.")
            for name, spec in self.specs.items():
                yield Label(Text(name, end=""), classes="detector-heading")
                yield Label(Text(spec.summary, end=""), classes="detector-summary")
                current = self.config.detectors.get(name, {})
                for param, default, doc in param_docs(spec.params_type):
                    yield ParamRow(name, param, default, doc, current.get(param, default))
            yield Label(Text(NETWORK, end=""), classes="detector-heading")
            summary = "Where our network ends: direction, monitored hosts, proxies ([network])"
            yield Label(Text(summary, end=""), classes="detector-summary")
            for param, default, doc in network_docs():
                value = self.config.network.get(param, default)
                yield ParamRow(NETWORK, param, default, doc, value)
        yield Footer()

    def on_mount(self) -> None:
        inputs = self.query(Input)
        if inputs:
            inputs.first().focus()

    def _typed(self) -> Overrides:
        """Every field parsed as TOML; raises InputError naming the first bad one."""
        values: Overrides = {}
        for row in self.query(ParamRow):
            box = self.query_one(f"#{_field_id(row.detector, row.param)}", Input)
            network = row.detector == NETWORK
            where = (
                f"[network] {row.param}" if network else f"[detectors.{row.detector}] {row.param}"
            )
            box.remove_class("-invalid")
            text = box.value.strip()
            try:
                value = None if not text and row.default is None else parse_toml_value(text, where)
                if value is not None and network:
                    network_from_table({row.param: value}, None)
                elif value is not None:  # type-check this one field, to mark the right box
                    spec = self.specs[row.detector]
                    params_from_table(
                        spec.params_type, {row.param: value}, section=f"detectors.{row.detector}"
                    )
            except InputError:
                box.add_class("-invalid")
                raise
            values.setdefault(row.detector, {})[row.param] = value
        return values

    def collect(self) -> Overrides | None:
        """Validated overrides per detector, or None after showing what is wrong."""
        error = self.query_one("#params-error", Static)
        try:
            typed = self._typed()
            result = {
                name: overrides_for(self.specs[name], typed.get(name, {})) for name in self.specs
            }
            result[NETWORK] = network_overrides(typed.get(NETWORK, {}))
        except InputError as exc:
            error.update(Text(str(exc), end=""))
            return None
        error.update("")
        return result

    def action_apply(self) -> None:
        overrides = self.collect()
        if overrides is not None:
            self.dismiss(overrides)

    def action_save(self) -> None:
        overrides = self.collect()
        if overrides is None:
            return
        try:
            network = overrides.pop(NETWORK, {})
            path = save_detector_params(self.config, overrides)
            save_network_settings(self.config, network)
        except InputError as exc:
            self.query_one("#params-error", Static).update(Text(str(exc), end=""))
            return
        self.notify(f"Saved to {path}", title="Parameters", markup=False)

    def action_defaults(self) -> None:
        for row in self.query(ParamRow):
            box = self.query_one(f"#{_field_id(row.detector, row.param)}", Input)
            box.value = toml_value(row.default)
            box.remove_class("-invalid")
        self.query_one("#params-error", Static).update("")

    def action_close(self) -> None:
        self.dismiss(None)
