"""Progress of the running steps: loading first, then one line per detector.

Each line has a bar, the step's last message (rows read, files done, stage names) and
the elapsed time; a line disappears when its step ends, and the whole panel when
nothing runs. The parent sets ``stages``; the panel only draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Label, ProgressBar

from detectors.base.sanitize import visible
from tui import format as F
from tui.stages import Stage


class StageRow(Horizontal):
    """One running step: label, bar, elapsed time and message."""

    DEFAULT_CSS = """
    StageRow {
        height: 1;
    }
    StageRow > .stage-label {
        width: 20;
        color: $primary;
        text-style: bold;
    }
    StageRow > ProgressBar {
        width: 34;
    }
    StageRow > ProgressBar > Bar {
        width: 24;
    }
    StageRow > .stage-info {
        width: 1fr;
        color: $text-muted;
    }
    """

    def __init__(self, stage: Stage, clock: Callable[[], float]) -> None:
        super().__init__()
        self.stage = stage
        self._clock = clock
        self._ready = False
        self._bar = ProgressBar(total=1.0, show_eta=False)
        self._info = Label(classes="stage-info")

    def compose(self) -> ComposeResult:
        yield Label(Text(visible(self.stage.label), end=""), classes="stage-label")
        yield self._bar
        yield self._info

    def on_mount(self) -> None:
        self._ready = True
        self.show(self.stage)

    def show(self, stage: Stage) -> None:
        self.stage = stage
        if self._ready and self.is_attached:
            self._bar.update(progress=stage.fraction)
            self.tick()

    def tick(self) -> None:
        if not (self._ready and self.is_attached):
            return  # not composed yet, or being removed because its step ended
        stage = self.stage
        text = f"{F.seconds(stage.elapsed(self._clock()))}  {visible(stage.message)}"
        self._info.update(Text(text, end="", no_wrap=True))


class RunProgress(Vertical):
    """All running steps; hidden when none runs."""

    DEFAULT_CSS = """
    RunProgress {
        display: none;
        height: auto;
        max-height: 8;
        background: $panel;
        padding: 0 1;
    }
    """

    stages: reactive[tuple[Stage, ...]] = reactive((), always_update=True, init=False)

    def __init__(self, clock: Callable[[], float] = time.monotonic, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._clock = clock
        self._rows: dict[str, StageRow] = {}
        self._live = False

    def on_mount(self) -> None:
        self._live = True
        self.set_interval(0.5, self._tick)
        self._reconcile()

    def on_unmount(self) -> None:
        self._live = False  # quitting: late progress messages must not mount rows

    def _tick(self) -> None:
        for row in self._rows.values():
            row.tick()

    def watch_stages(self) -> None:
        if self._live:
            self._reconcile()

    def _reconcile(self) -> None:
        """One row per running step: add new ones, update the rest, drop finished ones."""
        active = [s for s in self.stages if s.active]
        wanted = {s.key for s in active}
        for key in [k for k in self._rows if k not in wanted]:
            self._rows.pop(key).remove()
        for stage in active:
            row = self._rows.get(stage.key)
            if row is None:
                row = self._rows[stage.key] = StageRow(stage, self._clock)
                self.mount(row)
            else:
                row.show(stage)
        self.display = bool(active)
