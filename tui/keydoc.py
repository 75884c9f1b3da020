"""docs/keys.md, generated from the key table (tui/keymap.py) so the page never drifts.

Run ``python -m tui.keydoc > docs/keys.md`` after changing a key; a test fails while the
page is stale.
"""

from __future__ import annotations

from tui import keymap
from tui.reference import md_cell
from tui.screens.help import help_rows

HEADER = """# Keys

Generated from `tui/keymap.py` by `python -m tui.keydoc > docs/keys.md` (a test checks it is
current). The same table feeds the footer, the `?` screen and the command palette
(`Ctrl+P`), so every action also has a name there.

Esc always means *back*: it leaves the zoom, then returns focus from the filter or the
facts to the table, then clears the filter. It never types into a box.
"""


def _key(label: str) -> str:
    return " / ".join(f"`{md_cell(part.strip())}`" for part in label.split(" / "))


def render() -> str:
    """The whole page as Markdown."""
    lines = [HEADER, "## Every key", "", "| where | key | what it does |", "|---|---|---|"]
    for where, key, text in help_rows():
        lines.append(f"| {where} | {_key(key)} | {md_cell(text)} |")
    lines += [
        "",
        "## Compared with VisiData, htop and less",
        "",
        "Where the tools agree, beacon-triage uses their key; `–` means the tool has no",
        "such action.",
        "",
        "| action | beacon-triage | VisiData | htop | less |",
        "|---|---|---|---|---|",
    ]
    labels = {k.action: k for k in keymap.KEYS if k.where in ("main", "app")}
    for action, (visidata, htop, less) in keymap.ELSEWHERE.items():
        ours = labels[action]
        row = [ours.short, _key(ours.label), md_cell(visidata), md_cell(htop), md_cell(less)]
        lines.append("| " + " | ".join(row) + " |")
    for text, *keys in keymap.MOTION:
        lines.append(f"| {text} | " + " | ".join(f"`{k}`" for k in keys) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
