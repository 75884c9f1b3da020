"""Regenerate docs/screenshot.svg: the TUI on the bundled sample data, best candidate open.

    python docs/make_screenshot.py                 # the bundled sample, 150x45, dark
    python docs/make_screenshot.py --theme beacon-light --size 120x36 FILE...

Runs the real loader and detectors headless (no terminal needed) and saves what the
screen shows once every detector has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from textual.worker import WorkerCancelled  # noqa: E402

from detectors.base.config import Config  # noqa: E402
from tui.app import BeaconTriageApp  # noqa: E402


async def _shoot(paths: list[str], theme: str, size: tuple[int, int], out: Path) -> None:
    config = Config(path=Path("/nonexistent/beacon-triage-screenshot.toml"), theme=theme)
    app = BeaconTriageApp(paths, config=config)
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(WorkerCancelled):  # a merge replaced by a newer one
                await app.workers.wait_for_complete()
            await pilot.pause(0.1)
            screen = app.main_screen
            if screen.header.status == "ready" and screen.detail is not None:
                break
        await pilot.pause(0.3)
        app.save_screenshot(filename=out.name, path=str(out.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="files to open (default: the sample data)")
    parser.add_argument("--theme", default="beacon-dark")
    parser.add_argument("--size", default="150x45", help="COLSxROWS")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.svg"))
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    asyncio.run(_shoot(args.paths, args.theme, (cols, rows), Path(args.out)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
