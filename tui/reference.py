"""Reference pages generated from the code, so they cannot go stale.

``python -m tui.reference`` rewrites ``docs/parameters.md`` from the hunts' parameter
dataclasses, the scoring weights and the ``[network]`` settings; a test fails when the
page in the tree differs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1] / "docs"
PARAMETERS_PAGE = DOCS / "parameters.md"


def md_cell(value: Any) -> str:
    """A value as the text of a Markdown table cell (a ``|`` would end the cell)."""
    return str(value).replace("|", "\\|")


def parameters_markdown() -> str:
    """Every hunt parameter and every score weight, with its default and what it trades."""
    from detectors.base.config import network_docs
    from detectors.hunts.registry import all_detectors, param_docs
    from detectors.rank.scoring import ScoreWeights

    lines = [
        "# Parameters and weights",
        "",
        "Generated from the code by `python -m tui.reference`; do not edit by hand.",
        "Set any of them in the config file (see [configuration](configuration.md)).",
        "",
        "## Hunt parameters (`[detectors.<name>]`)",
        "",
    ]
    for name, spec in all_detectors().items():
        lines += [f"### {name}", "", spec.summary, "", "| parameter | default | what it trades |"]
        lines.append("|---|---|---|")
        for param, default, doc in param_docs(spec.params_type):
            lines.append(f"| `{param}` | `{md_cell(default)}` | {md_cell(doc)} |")
        lines.append("")
    lines += [
        "## Score weights (`[scoring]`)",
        "",
        "| weight | default | meaning |",
        "|---|---|---|",
    ]
    for param, default, doc in param_docs(ScoreWeights):
        lines.append(f"| `{param}` | `{md_cell(default)}` | {md_cell(doc)} |")
    lines += [
        "",
        "## Network (`[network]`, see [network](network.md))",
        "",
        "| setting | default | what it trades |",
        "|---|---|---|",
    ]
    for param, default, doc in network_docs():
        shown = list(default) if isinstance(default, tuple) else default
        lines.append(f"| `{param}` | `{md_cell(shown)}` | {md_cell(doc)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    PARAMETERS_PAGE.write_text(parameters_markdown(), encoding="utf-8")
    sys.stdout.write(f"wrote {PARAMETERS_PAGE}\n")


if __name__ == "__main__":
    main()
