"""docs/keys.md is generated from the key table and must be current; the table itself
has no key bound twice where both would be live."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tui import keymap
from tui.keydoc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "keys.md"


def test_docs_keys_md_is_generated_from_the_key_table():
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/keys.md is stale: run python -m tui.keydoc > docs/keys.md"
    )


def test_no_key_is_bound_twice_on_the_main_screen_or_anywhere():
    live = [k for k in keymap.KEYS if k.where in ("main", "app")]
    keys = Counter(name for k in live for name in k.keys.split(","))
    assert [name for name, n in keys.items() if n > 1] == []


def test_the_keys_analysts_know_are_where_less_and_visidata_put_them():
    main = {
        name: k.action
        for k in keymap.KEYS
        if k.where in ("main", "app")
        for name in k.keys.split(",")
    }
    assert main["q"] == "quit"
    assert main["slash"] == "focus_filter"
    assert (main["n"], main["N"]) == ("next_match", "previous_match")
    assert main["question_mark"] == "help"
    assert main["escape"] == "back"
    assert main["enter"] == main["z"] == "zoom_detail"
    assert (main["s"], main["S"]) == ("pick_sort", "reverse_sort")
    assert main["m"] == "edit_note"
    # every action the comparison names exists in the table
    assert set(keymap.ELSEWHERE) <= set(main.values())
