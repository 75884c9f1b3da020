"""The engine stays headless: importing every detectors module never loads Textual."""

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import detectors
for info in pkgutil.walk_packages(detectors.__path__, "detectors."):
    importlib.import_module(info.name)
import detectors.registry
detectors.registry.all_detectors()
bad = sorted(m for m in sys.modules if m == "textual" or m.startswith(("textual.", "tui")))
print(",".join(bad))
"""


def test_detectors_package_never_imports_textual():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""
