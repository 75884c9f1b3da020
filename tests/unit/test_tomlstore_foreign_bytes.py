"""Issue 17, item 3: removing an entry keeps every byte that is not the entry's.

An entry is its ``[[allow]]`` header, its lines up to its last key, the run of
comment lines directly above the header (a run that reaches the top of the file is
the file's, not the first entry's), and the blank lines after its last key when no
comment stands among them (a mere separator). Everything else, comments and blank lines between
entries and at the end of the file included, must survive ``remove`` and a following
``add`` byte for byte. The property test builds files from labelled lines, so the
expected text is computed from the labels, not by the store's own line classifier.
"""

from __future__ import annotations

import tomllib
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.curate.allowlist import AllowList

_COMMENT_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=("Cc", "Cs", "Zl", "Zp"),  # TOML forbids controls in comments
    ),
    max_size=12,
)
_comment = _COMMENT_TEXT.map(lambda t: f"#{t}\n")
_blank = st.sampled_from(["\n", "  \n", "\t\n"])
_loose = st.lists(st.one_of(_comment, _blank), max_size=3)  # comments and blanks, any order


@st.composite
def _files(draw: st.DrawFn) -> tuple[list[tuple[str, int | None, str]], int]:
    """Lines labelled (text, entry index or None, kind); and how many entries."""
    lines: list[tuple[str, int | None, str]] = []
    for text in draw(_loose):
        lines.append((text, None, "loose"))
    count = draw(st.integers(1, 4))
    for n in range(count):
        for text in draw(st.lists(_comment, max_size=2)):
            lines.append((text, n, "above"))
        header_comment = draw(st.sampled_from(["", "  # the header's own comment"]))
        lines.append((f"[[allow]]{header_comment}\n", n, "own"))
        lines.append((f'process = "p{n}.exe"\n', n, "own"))
        for text in draw(_loose):  # inside the entry: between its keys
            lines.append((text, n, "own"))
        lines.append((f'reason = "r{n}"{draw(st.sampled_from(["", " # why"]))}\n', n, "own"))
        for text in draw(_loose):
            lines.append((text, None, "loose"))
    if draw(st.booleans()):
        lines.append(("# the end of the file", None, "loose"))  # no newline at the end
    return lines, count


def _entry_span(lines: list[tuple[str, int | None, str]], index: int) -> set[int]:
    """Which lines are entry ``index``'s: its own lines plus the comment run above its header."""
    own = [i for i, (_, n, kind) in enumerate(lines) if n == index and kind == "own"]
    span = set(own)
    i = own[0] - 1
    run = []
    while i >= 0 and lines[i][0].lstrip().startswith("#"):
        run.append(i)
        i -= 1
    if i >= 0:  # a run that reaches the top of the file stays the file's
        span.update(run)
    # blank lines after the last key with no comment before the next entry separate it
    after = own[-1] + 1
    headers = [
        j
        for j, (t, n, kind) in enumerate(lines)
        if n is not None and n > index and kind == "own" and t.startswith("[[")
    ]
    end = headers[0] if headers else len(lines)
    while end > after and headers and lines[end - 1][0].lstrip().startswith("#"):
        end -= 1  # the next header's own comment run
    if all(not lines[j][0].strip() for j in range(after, end)):
        span.update(range(after, end))
    return span


@settings(max_examples=150, deadline=None)
@given(_files(), st.data())
def test_remove_then_add_keeps_every_foreign_byte(tmp_path_factory, made, data):
    lines, count = made
    text = "".join(t for t, _, _ in lines)
    assert tomllib.loads(text)["allow"]  # the generator writes valid TOML
    index = data.draw(st.integers(0, count - 1))
    path = tmp_path_factory.mktemp("foreign") / "allow.toml"
    path.write_text(text, encoding="utf-8")

    allow = AllowList.load(path)
    allow.remove(index)
    span = _entry_span(lines, index)
    expected = "".join(t for i, (t, _, _) in enumerate(lines) if i not in span)
    assert allow.text == expected

    allow.add({"domain": "new.example", "reason": "added back"})
    allow.save()
    written = path.read_text(encoding="utf-8")
    assert written.startswith(expected)
    appended = written[len(expected) :]
    if expected.strip():  # (an empty file gets the new-file comment first)
        assert appended.lstrip("\n").startswith("[[allow]]\n")
        assert len(appended) - len(appended.lstrip("\n")) <= 2  # a line end and a blank
    entries = tomllib.loads(written)["allow"]
    assert [e.get("process") for e in entries[:-1]] == [
        f"p{n}.exe" for n in range(count) if n != index
    ]
    assert entries[-1]["domain"] == "new.example"


def test_removing_the_last_entry_keeps_the_comments_after_it(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_text(
        '# allow-list\n\n[[allow]]\nprocess = "a.exe"\nreason = "a"\n\n'
        '# about b\n[[allow]]\nprocess = "b.exe"\nreason = "b"\n\n# the end of the file\n',
        encoding="utf-8",
    )
    allow = AllowList.load(path)
    allow.remove(1)
    allow.save()
    assert path.read_text(encoding="utf-8") == (
        '# allow-list\n\n[[allow]]\nprocess = "a.exe"\nreason = "a"\n\n\n# the end of the file\n'
    )
    allow = AllowList.load(path)
    allow.remove(0)
    allow.save()
    assert path.read_text(encoding="utf-8") == "# allow-list\n\n\n\n# the end of the file\n"


def test_removing_a_middle_entry_takes_its_separating_blank_line(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_text(
        '[[allow]]\nprocess = "a.exe"\nreason = "a"\n\n[[allow]]\nprocess = "b.exe"\n'
        'reason = "b"\n\n# about c\n[[allow]]\nprocess = "c.exe"\nreason = "c"\n',
        encoding="utf-8",
    )
    allow = AllowList.load(path)
    allow.remove(1)
    allow.save()
    assert path.read_text(encoding="utf-8") == (
        '[[allow]]\nprocess = "a.exe"\nreason = "a"\n\n# about c\n[[allow]]\n'
        'process = "c.exe"\nreason = "c"\n'
    )
