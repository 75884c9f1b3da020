"""The beacon-triage app: composes the screens and holds what was loaded and found.

Thin on purpose: the engine runs in ``tui.pipeline`` workers that report with
messages; this class keeps the resulting state (dataset, outcomes, candidates,
progress, log) and hands it down to the screens, which own the widgets.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Input, TextArea

import themes
from detectors.base.config import Config
from detectors.base.errors import InputError
from detectors.base.sanitize import visible
from tui import keymap
from tui import stages as ST
from tui.app_curation import CurationApp
from tui.commands import TriageCommands
from tui.lazy import NO_ROWS
from tui.messages import (
    CandidatesMerged,
    DatasetLoaded,
    DetectorFailed,
    DetectorFinished,
    IndexReady,
    LoadFailed,
    Note,
    StageChanged,
)
from tui.pipeline import LOAD, Loader, Pipeline, default_loader, detector_key, event_count
from tui.screens.help import HelpScreen
from tui.screens.log import LogEntry, LogScreen
from tui.screens.main import DetailContext, MainScreen
from tui.view import C_ALLOWED, pair_protocols, with_protocol
from tui.view import prepare as prepare_view
from tui.widgets.status_header import HeaderInfo

if TYPE_CHECKING:
    import polars as pl

    from detectors.pairs.context import PairContext
    from detectors.run.outcome import DetectorOutcome
    from detectors.run.saved import SavedRun
    from tui.screens.params import Overrides
else:
    from tui.lazy import polars as pl

_EXIT_GRACE_S = 0.5


class BeaconTriageApp(CurationApp):
    """Load files in the background, run every detector in parallel, triage the result.

    The allow-list, triage marks and export flows live in ``CurationApp``.
    """

    TITLE = "beacon-triage"
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        Path(__file__).with_name("app.tcss"),
        themes.CSS_PATH,
    ]
    BINDINGS: ClassVar[list[BindingType]] = [
        *keymap.bindings("app"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]
    COMMANDS = App.COMMANDS | {TriageCommands}

    def __init__(
        self,
        paths: Sequence[str],
        *,
        config: Config | None = None,
        allowlist_path: Path | None = None,
        source_format: str | None = None,
        detector_names: Sequence[str] | None = None,
        loader: Loader | None = None,
        clock: Callable[[], float] = time.monotonic,
        saved: SavedRun | None = None,
    ) -> None:
        super().__init__()
        # A run saved by `detect --save-run` (maybe on a cluster): its candidates are
        # shown as they were ranked and its events feed the charts; nothing re-runs.
        self.saved = saved
        if saved is not None:
            paths = paths or [str(saved.info.get("folder", "saved run"))]
            loader = loader or (lambda *args, **kwargs: saved.dataset)
        self.config = config or Config()
        self.sample = not paths
        # The bundled sample's files are found by a worker (``_find_sample``): naming
        # them imports the load stage, which must not delay the first paint.
        self.paths = [str(p) for p in paths]
        self.allowlist_path = allowlist_path
        self.source_format = source_format
        self.chosen_detectors = list(detector_names) if detector_names else None
        self.loader = loader or default_loader
        self.clock = clock
        self.pipeline = Pipeline(self, clock)
        self.dataset: PairContext | None = None
        self.outcomes: dict[str, DetectorOutcome] = {}
        self.candidates: pl.DataFrame = NO_ROWS  # no polars before the first paint
        self.stages: dict[str, ST.Stage] = {}
        self.log_entries: list[LogEntry] = []
        self._pending: set[str] = set()
        self._merging = False  # a merge worker runs; another waits if _merge_again
        self._merge_again = False
        self._run_shown = False  # the run's final merge has reached the table
        self._run_id = 0
        self._status = "loading"
        self._theme_ready = False
        self._init_curation()
        for theme in themes.THEMES:
            self.register_theme(theme)
        self.theme = self._initial_theme()
        self.main_screen = MainScreen(clock)

    # --- composition -------------------------------------------------------------------

    def _initial_theme(self) -> str:
        wanted = self.config.theme
        if wanted and wanted in self.available_themes:
            return wanted
        if self.console.color_system in ("standard", "windows"):
            return themes.SIXTEEN_COLOUR_THEME  # a 16-colour terminal: ANSI colours only
        return themes.DEFAULT_THEME

    def get_default_screen(self) -> MainScreen:
        return self.main_screen

    def on_mount(self) -> None:
        self._theme_ready = True
        self._set_status("loading")
        # First paint first, then fill: the loader's imports and parsing start after it.
        self.call_after_refresh(self._start_loading)

    def _start_loading(self) -> None:
        self.open_curation()
        if self.sample and not self.paths:
            self.run_worker(self._find_sample, group="sample", thread=True, exit_on_error=False)
            return
        self._load_paths()

    def _find_sample(self) -> None:
        paths = _sample_paths()
        self.call_from_thread(self._sample_found, paths)

    def _sample_found(self, paths: list[str]) -> None:
        self.paths = paths
        self.refresh_header()
        self._load_paths()

    def _load_paths(self) -> None:
        if not self.paths:
            self.add_log("error", "no files given and no bundled sample data found")
            self._set_status("no data")
            return
        self.pipeline.load(self.paths, self.source_format, self.config, self.loader)

    def theme_names(self) -> list[str]:
        return list(themes.THEME_NAMES)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """Textual's commands minus its theme picker, which offers Textual's ~20 themes:
        ours are in the palette as "Theme: <name>" (and ``t``)."""
        for command in super().get_system_commands(screen):
            if command.title != "Theme":
                yield command

    # --- state handed down --------------------------------------------------------------

    def _source_text(self) -> str:
        names = ", ".join(Path(p).name for p in self.paths)
        return names

    def _set_status(self, status: str) -> None:
        self._status = status
        self.refresh_header()

    def refresh_header(self) -> None:
        self.main_screen.header = HeaderInfo(
            source=self._source_text(),
            sample=self.sample,
            events=event_count(self.dataset, ask=False) if self.dataset is not None else None,
            candidates=self.candidates.height if self.dataset is not None else None,
            status=self._status,
            marks=self.header_marks(),
            unsaved=self.unsaved(),
            allowed=self._allowed_count(),
        )

    def _allowed_count(self) -> int:
        if C_ALLOWED not in self.candidates.columns:
            return 0
        return int(self.candidates.get_column(C_ALLOWED).sum() or 0)

    def add_log(self, level: str, text: str, details: tuple[str, ...] = ()) -> None:
        at = datetime.now().strftime("%H:%M:%S")
        self.log_entries.append(LogEntry(level, text, at, details))
        if isinstance(self.screen, LogScreen):
            self.screen.entries = tuple(self.log_entries)

    def _running_status(self) -> str:
        """Which detectors still run; "ready" only once the last merge is on screen."""
        if self.dataset is None:
            return "loading"
        if self.saved is not None:  # nothing runs: the candidates are the saved ones
            return str(self.saved.info.get("status", "saved run"))
        if self._pending:
            total = len(self.outcomes) + len(self._pending)
            running = ", ".join(sorted(self._pending))
            return f"{len(self.outcomes)}/{total} done · running {running}"
        if not self._run_shown:
            return "merging"
        return "ready"

    # --- messages from the pipeline ---------------------------------------------------------

    def on_stage_changed(self, message: StageChanged) -> None:
        now = self.clock()
        stage = self.stages.get(message.key)
        if stage is None or (not stage.active and message.status == ST.RUNNING):
            label = message.key.removeprefix("detector:")
            stage = ST.Stage(message.key, label, started=now)
        stage = stage.with_(fraction=message.fraction, message=message.text, status=message.status)
        if message.status != ST.RUNNING:
            stage = stage.with_(finished=now)
            level = {ST.FAILED: "error", ST.SKIPPED: "warning"}.get(message.status, "info")
            took = f" ({stage.elapsed(now):.1f}s)" if message.status == ST.DONE else ""
            text = message.text.removeprefix(f"{message.status}: ")  # said once, not twice
            self.add_log(level, f"{stage.label}: {message.status}: {text}{took}")
        self.stages[message.key] = stage
        self.main_screen.stages = tuple(self.stages.values())

    def on_dataset_loaded(self, message: DatasetLoaded) -> None:
        self.dataset = message.dataset
        skipped = message.dataset.skipped
        summary = f"skipped {len(skipped)} file"  # load.paths.skip_summary's line
        for line in message.dataset.warnings:
            listed = line.startswith(summary) and bool(skipped)
            files = tuple(f"{path}  ({why})" for path, why in skipped) if listed else ()
            self.add_log("warning", line, files)
        self.pipeline.build_indexes(message.dataset, self.config)
        self._run_detectors()

    def on_load_failed(self, message: LoadFailed) -> None:
        self.add_log("error", message.error)
        self.notify(visible(message.error), title="Cannot load", severity="error", markup=False)
        self._set_status("load failed (l: log, r: retry)")

    def on_index_ready(self, message: IndexReady) -> None:
        self.main_screen.context = DetailContext(message.pairs, message.index, message.fetch)

    def on_detector_finished(self, message: DetectorFinished) -> None:
        if message.run_id != self._run_id or self.dataset is None:
            return  # a stale run, replaced by a newer one
        outcome = message.outcome
        self.outcomes[outcome.name] = outcome
        self._pending.discard(outcome.name)
        if message.merge:
            self._request_merge()
        self._set_status(self._running_status())

    def _request_merge(self) -> None:
        """Merge what has finished so far, one merge at a time: a detector finishing while
        a merge runs asks for one more after it, instead of cancelling it (which, with
        detectors finishing closer together than a merge takes, showed nothing until the
        last). So each detector's candidates reach the table as it finishes."""
        if self.dataset is None:
            return
        if self._merging:
            self._merge_again = True
            return
        self._merging = True
        self._merge_again = False
        final = not self._pending
        self.pipeline.merge(self._run_id, dict(self.outcomes), self.dataset, self.config, final)

    def on_detector_failed(self, message: DetectorFailed) -> None:
        if message.run_id != self._run_id:
            return
        self._pending.discard(message.name)
        if not self._pending:
            self._request_merge()  # the last one failed: the others' merge is the final
        self.add_log("error", f"{message.name}: {message.error}")
        self.notify(
            visible(message.error), title=visible(message.name), severity="error", markup=False
        )
        self._set_status(self._running_status())

    def on_candidates_merged(self, message: CandidatesMerged) -> None:
        if message.run_id != self._run_id:
            return
        self._merging = False
        if self._merge_again:
            self._request_merge()
        if message.candidates is not None:
            self.set_merged(message.candidates, message.final and not self._merging)
        elif message.final:
            self._run_shown = True  # the merge failed (logged); the run is over
        self._set_status(self._running_status())

    def merged_shown(self, final: bool) -> None:
        if final and not self._run_shown:
            self._run_shown = True
            self._status = self._running_status()

    def on_note(self, message: Note) -> None:
        self.add_log(message.level, message.text)

    # --- running -----------------------------------------------------------------------

    def detector_names(self) -> list[str]:
        from detectors.hunts.registry import all_detectors

        return self.chosen_detectors or list(all_detectors())

    def _run_detectors(self) -> None:
        if self.dataset is None:
            return
        if self.saved is not None:
            default = "a saved run: candidates as saved, detectors not re-run"
            self.add_log("info", str(self.saved.info.get("note", default)))
            # as a merge's result: the search text and protocol markers are added the same way
            protocols = pair_protocols(self.dataset.events)
            self.set_merged(prepare_view(with_protocol(self.saved.candidates, protocols)))
            self._set_status(self._running_status())
            return
        names = self.detector_names()
        if not names:
            self.add_log("warning", "no detectors are registered")
        self.outcomes = {}
        self._pending = set(names)
        self._merging = self._merge_again = self._run_shown = False
        self._run_id = self.pipeline.detect(self.dataset, self.config, names)
        self._set_status(self._running_status())

    def action_rerun(self) -> None:
        self.adopt_outside_changes()
        if self.dataset is None:
            if not self.paths:
                return  # the bundled sample is still being found, or there is none
            if not any(s.active for k, s in self.stages.items() if k == LOAD):
                self.pipeline.load(self.paths, self.source_format, self.config, self.loader)
                self._set_status("loading")
            return
        self._run_detectors()

    def action_cancel_run(self) -> None:
        count = self.pipeline.cancel(LOAD) + self.pipeline.cancel(detector_key(""))
        self._pending.clear()
        self._run_shown = True
        self._set_status("cancelled" if count else self._running_status())

    # --- screens ----------------------------------------------------------------------------

    def action_parameters(self) -> None:
        from detectors.hunts.registry import all_detectors
        from tui.screens.params import ParamsScreen

        if isinstance(self.screen, ParamsScreen):
            return
        specs = all_detectors()
        chosen = {name: specs[name] for name in self.detector_names() if name in specs}
        self.push_screen(ParamsScreen(self.config, chosen), self._apply_parameters)

    def _apply_parameters(self, overrides: Overrides | None) -> None:
        from tui.screens.params import NETWORK

        if overrides is None:
            return
        self.config.network = dict(overrides.pop(NETWORK, {}))  # re-placed by the run
        for name, values in overrides.items():
            if values:
                self.config.detectors[name] = dict(values)
            else:
                self.config.detectors.pop(name, None)
        self._run_detectors()

    def action_show_log(self) -> None:
        if isinstance(self.screen, LogScreen):
            return
        screen = LogScreen()
        screen.entries = tuple(self.log_entries)
        self.push_screen(screen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    # --- themes -------------------------------------------------------------------------

    def set_theme(self, name: str) -> None:
        self.theme = name

    def action_next_theme(self) -> None:
        names = self.theme_names()
        at = names.index(self.theme) if self.theme in names else -1
        self.set_theme(names[(at + 1) % len(names)])

    def watch_theme(self, name: str) -> None:
        if not self._theme_ready or name == self.config.theme or name not in themes.THEME_NAMES:
            return
        from tui.settings import save_theme  # tomlkit: not before the first paint

        try:
            save_theme(self.config, name)
        except InputError as exc:
            self.add_log("error", str(exc))
            self.notify(visible(exc), title="Theme not saved", severity="warning", markup=False)

    # --- keys ---------------------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        """A printable key reaching the app while a text box has focus was typed in the
        same burst as the key that focused the box (``/evil`` pasted, or typed fast over
        SSH): it was queued for the previous widget. It belongs in the box."""
        focused = self.focused
        if not (event.is_printable and event.character):
            return
        if isinstance(focused, Input):
            event.stop()
            focused.insert_text_at_cursor(event.character)
        elif isinstance(focused, TextArea):  # the first words of a note typed after m
            event.stop()
            focused.insert(event.character)

    # --- leaving -------------------------------------------------------------------------

    async def action_quit(self) -> None:
        if not self.may_quit():
            return  # unsaved edits: the user is asked first (Ctrl+Q again quits anyway)
        self.pipeline.cancel("")
        self.exit()

    def on_unmount(self) -> None:
        self.pipeline.cancel("")
        self.pipeline.close()


def _sample_paths() -> list[str]:
    """The bundled sample's files (importing the load stage: only when none are named)."""
    from detectors.load.sample import sample_paths

    return [str(p) for p in sample_paths()]


def _exit_if_workers_linger(grace: float = _EXIT_GRACE_S) -> None:
    """Leave now if a worker thread is stuck in a long native call after being cancelled.

    Cancelled detectors stop at their next progress checkpoint; one inside a single
    long polars call cannot, and the interpreter would wait for it before exiting.
    The screen is already restored, so skipping that wait loses nothing.
    """
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = [
            t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon
        ]
        if not alive:
            return
        time.sleep(0.02)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_app(
    paths: list[str],
    *,
    config: Config,
    allowlist_path: Path | None,
    source_format: str | None,
    saved: SavedRun | None = None,
    use_cache: bool = True,
    loader: Loader | None = None,
) -> None:
    """Open the TUI on ``paths`` (the bundled sample data when empty), or on a saved
    run (``detectors.run.saved``); ``loader`` replaces the run loop's own load (a Spark
    run: ``tui.pipeline.EngineRun``); returns on quit."""
    app = BeaconTriageApp(
        paths,
        config=config,
        allowlist_path=allowlist_path,
        source_format=source_format,
        saved=saved,
        loader=loader,
    )
    # The loads follow [cache] (or --no-cache); set in the load worker, where the load
    # stage is imported (not before the first paint).
    app.pipeline.cache_settings = (config.cache_settings() if use_cache else None,)
    loop = asyncio.new_event_loop()
    try:
        # Our own loop: asyncio.run() would block on exit until every worker thread ends.
        app.run(loop=loop)
    finally:
        app.pipeline.cancel("")
        loop.close()
    _exit_if_workers_linger()
