"""The allow-list file: hand edits survive every edit, errors name file/line/key, saves are safe."""

from __future__ import annotations

import errno
import os
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from detectors.base import atomic
from detectors.base.errors import InputError
from detectors.curate.allowlist import AllowList, AllowListConflict, AllowListSaveError

DATA = Path(__file__).parent.parent / "data"
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)

# The Zscaler table of tests/data/allowlist_hand.toml, with the comment line above it
# and the blank line after it: exactly what removing entry #2 must take away.
ZSCALER_BLOCK = (
    "# Zscaler egress\n"
    "[[allow]]\n"
    'remote_ip = "198.51.100.0/24"\n'
    "reason = 'proxy egress'   # literal string, single quotes\n"
    "\n"
)


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    path = tmp_path / "allow.toml"
    shutil.copyfile(DATA / "allowlist_hand.toml", path)
    return path


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_hand_written_file_loads_with_lines_and_values(hand):
    entries = AllowList.load(hand).entries
    assert [e.line for e in entries] == [5, 13, 17]
    first = entries[0]
    assert (first.process, first.domain, first.added_by) == (
        "MsMpEng.exe",
        "*.microsoft.com",
        "jdoe",
    )
    assert first.added == datetime(2026, 11, 23, 10, tzinfo=timezone.utc)
    third = entries[2]
    assert (third.remote_ip, third.remote_port, third.expires) == (
        "2001:db8::/32",
        443,
        date(2027, 2, 23),
    )
    assert (
        third.describe()
        == "#3 remote_ip=2001:db8::/32 remote_port=443: IPv6 documentation range, pretend CDN"
    )


def test_add_keeps_the_hand_written_text_as_an_exact_prefix(hand):
    original = hand.read_bytes()
    allow = AllowList.load(hand)
    allow.add({"process": "rundll32.exe", "reason": "test"}, added_by="analyst1", now=NOW)
    allow.save()
    # the file ended with a comment line, so one blank line separates the new table
    assert hand.read_bytes() == original + (
        b"\n[[allow]]\n"
        b'process = "rundll32.exe"\n'
        b'reason = "test"\n'
        b'added_by = "analyst1"\n'
        b"added = 2026-11-24T09:30:00Z\n"
    )
    assert (hand.parent / "allow.toml.bak").read_bytes() == original


def test_add_to_a_file_without_final_newline_starts_a_new_line(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_bytes(b'[[allow]]\nprocess = "a.exe"\nreason = "x"  # no newline at the end')
    allow = AllowList.load(path)
    allow.add({"device": "ws-1", "reason": "y"}, added_by="me", now=NOW)
    allow.save()
    assert path.read_bytes() == (
        b'[[allow]]\nprocess = "a.exe"\nreason = "x"  # no newline at the end\n'
        b'\n[[allow]]\ndevice = "ws-1"\nreason = "y"\nadded_by = "me"\n'
        b"added = 2026-11-24T09:30:00Z\n"
    )


def test_remove_takes_the_entry_and_its_comment_and_nothing_else(hand):
    original = hand.read_text(encoding="utf-8")
    assert original.count(ZSCALER_BLOCK) == 1
    allow = AllowList.load(hand)
    removed = allow.remove(1)
    allow.save()
    assert removed.reason == "proxy egress"
    assert hand.read_text(encoding="utf-8") == original.replace(ZSCALER_BLOCK, "")
    assert [e.line for e in AllowList.load(hand).entries] == [5, 12]


def test_update_changes_one_value_and_keeps_spacing_and_comments(hand):
    original = hand.read_text(encoding="utf-8")
    allow = AllowList.load(hand)
    allow.update(0, {"process": "msmpeng.exe", "reason": "Defender lookups"})
    allow.save()
    expected = original.replace(
        'process   = "MsMpEng.exe"     # case-insensitive file name',
        'process   = "msmpeng.exe"     # case-insensitive file name',
    ).replace('reason    = "Defender cloud lookups"', 'reason    = "Defender lookups"')
    assert hand.read_text(encoding="utf-8") == expected


def test_disable_adds_the_key_after_the_last_key_above_trailing_comments(hand):
    original = hand.read_text(encoding="utf-8")
    allow = AllowList.load(hand)
    allow.set_enabled(2, False)
    assert allow.entries[2].enabled is False
    allow.save()
    expected = original.replace("  expires=2027-02-23\n", "  expires=2027-02-23\nenabled = false\n")
    assert hand.read_text(encoding="utf-8") == expected
    allow.set_enabled(2, True)  # re-enabling keeps the key (and any comment on it)
    allow.save()
    assert hand.read_text(encoding="utf-8") == expected.replace("enabled = false", "enabled = true")


def test_update_with_empty_value_removes_the_key(hand):
    allow = AllowList.load(hand)
    allow.update(2, {"expires": None, "remote_port": ""})
    allow.save()
    text = hand.read_text(encoding="utf-8")
    assert "expires" not in text and "remote_port" not in text
    assert AllowList.load(hand).entries[2].remote_ip == "2001:db8::/32"


def test_crlf_file_keeps_crlf_line_endings(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_bytes(b'# windows\r\n[[allow]]\r\nprocess = "a.exe"\r\nreason = "x"\r\n')
    allow = AllowList.load(path)
    allow.add({"device": "d", "reason": "r"}, added_by="me", now=NOW)
    allow.update(0, {"remote_port": 443})
    allow.save()
    assert path.read_bytes() == (
        b'# windows\r\n[[allow]]\r\nprocess = "a.exe"\r\nreason = "x"\r\nremote_port = 443\r\n'
        b'\r\n[[allow]]\r\ndevice = "d"\r\nreason = "r"\r\nadded_by = "me"\r\n'
        b"added = 2026-11-24T09:30:00Z\r\n"
    )


def test_new_file_is_created_only_on_save_with_an_explanatory_header(tmp_path):
    path = tmp_path / "sub" / "allow.toml"
    allow = AllowList.load(path)
    assert allow.entries == () and not path.exists()
    allow.add({"remote_ip": "203.0.113.0/24", "reason": "lab"}, added_by="me", now=NOW)
    assert not path.exists()
    allow.save()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# beacon-triage allow-list:")
    assert text.endswith(
        '\n\n[[allow]]\nremote_ip = "203.0.113.0/24"\nreason = "lab"\nadded_by = "me"\n'
        "added = 2026-11-24T09:30:00Z\n"
    )
    assert AllowList.load(path).entries[0].remote_ip == "203.0.113.0/24"


def test_added_by_defaults_to_the_login_name(tmp_path, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "night-shift")
    entry = AllowList.load(tmp_path / "a.toml").add({"process": "a.exe", "reason": "r"})
    assert entry.added_by == "night-shift"
    assert entry.added is not None and entry.added.tzinfo is not None


def test_added_by_falls_back_when_the_user_has_no_name(tmp_path, monkeypatch):
    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr("getpass.getuser", no_user)
    entry = AllowList.load(tmp_path / "a.toml").add({"process": "a.exe", "reason": "r"})
    assert entry.added_by == "unknown"


# --- validation: every mistake names the file, the line and the key ---------------------------

BAD_FILES = [
    # (body after a valid first entry on lines 1-3, line of the error, key, message start)
    ('[[allow]]\nprocess = "a.exe"\nprocss = "b.exe"\nreason = "x"\n', 6, "procss", "unknown key"),
    ('[[allow]]\nreason = "nothing to match"\n', 4, None, "no match key"),
    (
        '[[allow]]\nremote_ip = "10.0.0.0/33"\nreason = "x"\n',
        5,
        "remote_ip",
        "'10.0.0.0/33' is not",
    ),
    (
        '[[allow]]\nremote_ip = "2001:db8::1/32"\nreason = "x"\n',
        5,
        "remote_ip",
        "'2001:db8::1/32' has host bits",
    ),
    (
        '[[allow]]\nremote_port = 70000\nreason = "x"\n',
        5,
        "remote_port",
        "remote_port must be a port",
    ),
    (
        '[[allow]]\nprocess = "a.exe"\nexpires = "2027-02-30"\nreason = "x"\n',
        6,
        "expires",
        "expires must be a date",
    ),
    ('[[allow]]\nprocess = "a.exe"\n', 4, "reason", "missing reason"),
    (
        '[[allow]]\ndomain = "*.com"\nreason = "x"\n',
        5,
        "domain",
        "'*.com' would allow every domain",
    ),
    ('[[allow]]\ndomain = "a.*.com"\nreason = "x"\n', 5, "domain", "'a.*.com' is not a domain"),
    (
        '[[allow]]\nprocess = "C:\\\\Windows\\\\a.exe"\nreason = "x"\n',
        5,
        "process",
        "process is matched on the file name",
    ),
    (
        '[[allow]]\nprocess = "a.exe"\nenabled = "no"\nreason = "x"\n',
        6,
        "enabled",
        "enabled must be true or false",
    ),
    ("[allow.sub]\nx = 1\n", 4, None, "unexpected table [allow.sub]"),
]


@pytest.mark.parametrize(("body", "line", "key", "message"), BAD_FILES)
def test_invalid_entry_is_an_error_naming_file_line_and_key(tmp_path, body, line, key, message):
    path = tmp_path / "allow.toml"
    path.write_text('[[allow]]\nprocess = "ok.exe"\nreason = "fine"\n' + body, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        AllowList.load(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), line, key)
    assert error.message.startswith(message), error.message
    assert str(error).startswith(f"{path}: line {line}")
    assert "\n" not in str(error)


def test_key_outside_any_table_is_an_error(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_text(
        '# top\nversion = 2\n[[allow]]\nprocess = "a"\nreason = "r"\n', encoding="utf-8"
    )
    with pytest.raises(InputError) as caught:
        AllowList.load(path)
    assert (caught.value.line, caught.value.field) == (2, "version")


def test_broken_toml_is_refused_with_its_line_and_never_rewritten(tmp_path):
    path = tmp_path / "allow.toml"
    broken = b'[[allow]]\nprocess = "a.exe"\nreason = "unterminated\n'
    path.write_bytes(broken)
    with pytest.raises(InputError) as caught:
        AllowList.load(path)
    assert caught.value.line == 3 and caught.value.message.startswith("invalid TOML")
    assert path.read_bytes() == broken


def test_file_broken_by_someone_else_is_not_overwritten_on_save(tmp_path):
    path = tmp_path / "allow.toml"
    allow = AllowList.load(path)
    allow.add({"process": "a.exe", "reason": "r"})
    allow.save()
    broken = path.read_bytes() + b"[[allow]\n"
    path.write_bytes(broken)
    allow.add({"process": "b.exe", "reason": "r"})
    for options in ({}, {"overwrite": True}, {"skip_conflicts": True}):
        with pytest.raises(AllowListConflict, match="not valid now"):
            allow.save(**options)
        assert path.read_bytes() == broken
    assert allow.dirty


def test_multiline_values_do_not_confuse_table_boundaries(tmp_path):
    path = tmp_path / "allow.toml"
    first = (
        "[[allow]]\n"
        "process = 'a.exe'\n"
        'reason = """several lines,\n'
        "[[allow]]\n"
        '# not a comment, and not a header"""\n'
        "\n"
    )
    second = (
        "# about the second entry\n"
        "[[allow]]\n"
        "device = [  # a multi-line array is not a valid device, it is only here to be read\n"
        "]\n"
    )
    path.write_text(first + second.replace("device = [", "ports = ["), encoding="utf-8")
    with pytest.raises(InputError) as caught:  # the array is read, then rejected: line 9
        AllowList.load(path)
    assert (caught.value.line, caught.value.field) == (9, "ports")
    third = '[[allow]]\ndevice = "ws-1"\nreason = "r"\n'
    path.write_text(first + "# about the second entry\n" + third, encoding="utf-8")
    allow = AllowList.load(path)
    assert [e.line for e in allow.entries] == [1, 8]
    allow.update(0, {"expires": "2027-01-01"})
    allow.remove(1)
    allow.save()
    assert path.read_text(encoding="utf-8") == first.replace(
        'header"""\n', 'header"""\nexpires = 2027-01-01\n'
    )


def test_an_edit_that_would_not_read_back_is_refused(tmp_path, monkeypatch):
    allow = AllowList.load(tmp_path / "allow.toml")
    monkeypatch.setattr(
        "detectors.curate.tomlstore.render_table", lambda name, values: "[[allow]]\nprocess = 'b'\n"
    )
    with pytest.raises(InputError, match="would not read back as intended"):
        allow.add({"process": "a.exe", "reason": "r"})
    assert allow.entries == () and not allow.dirty


def test_add_with_a_bad_value_changes_nothing(tmp_path):
    allow = AllowList.load(tmp_path / "allow.toml")
    with pytest.raises(InputError) as caught:
        allow.add({"remote_ip": "300.1.1.1", "reason": "r"})
    assert caught.value.field == "remote_ip"
    with pytest.raises(InputError, match="unknown key 'port'"):
        allow.add({"port": 443, "reason": "r"})
    with pytest.raises(InputError, match="missing reason"):
        allow.add({"process": "a.exe", "reason": "  "})
    assert allow.entries == () and not allow.dirty


def test_update_to_a_bad_value_changes_nothing(hand):
    allow = AllowList.load(hand)
    before = allow.text
    with pytest.raises(InputError, match="missing reason"):
        allow.update(0, {"reason": None})
    with pytest.raises(InputError, match="no entry #9"):
        allow.update(8, {"reason": "x"})
    assert allow.text == before and not allow.dirty


# --- saving next to other writers ---------------------------------------------------------


def test_external_edit_and_our_add_are_both_kept(hand):
    allow = AllowList.load(hand)
    external = (
        hand.read_text(encoding="utf-8").replace(
            "# Zscaler egress", "# Zscaler egress (edited in vim meanwhile)"
        )
        + '\n[[allow]]\ndevice = "build-01"\nreason = "CI runner"\n'
    )
    hand.write_text(external, encoding="utf-8")
    assert allow.changed_on_disk()
    allow.add({"process": "rundll32.exe", "reason": "ours"}, added_by="me", now=NOW)
    assert allow.save() == []
    assert hand.read_text(encoding="utf-8") == external + (
        '\n[[allow]]\nprocess = "rundll32.exe"\nreason = "ours"\nadded_by = "me"\n'
        "added = 2026-11-24T09:30:00Z\n"
    )
    assert [e.reason for e in allow.entries][-2:] == ["CI runner", "ours"]
    assert not allow.dirty and not allow.changed_on_disk()


def test_our_edit_follows_its_entry_when_someone_inserted_one_above(hand):
    allow = AllowList.load(hand)
    text = hand.read_text(encoding="utf-8")
    inserted = '[[allow]]\nprocess = "new.exe"\nreason = "inserted"\n\n'
    hand.write_text(
        text.replace("# Defender cloud lookups\n", inserted + "# Defender cloud lookups\n"),
        encoding="utf-8",
    )
    allow.update(1, {"reason": "proxy egress v2"})  # the Zscaler entry, #2 when we loaded
    allow.save()
    reasons = [e.reason for e in AllowList.load(hand).entries]
    assert reasons == [
        "inserted",
        "Defender cloud lookups",
        "proxy egress v2",
        "IPv6 documentation range, pretend CDN",
    ]


def test_edit_of_an_entry_changed_elsewhere_is_a_conflict_with_three_ways_out(hand):
    allow = AllowList.load(hand)
    theirs = hand.read_text(encoding="utf-8").replace(
        "'proxy egress'", "'proxy egress, per CAB-12'"
    )
    hand.write_text(theirs, encoding="utf-8")
    allow.remove(1)
    allow.add({"device": "ws-9", "reason": "ours"}, added_by="me", now=NOW)
    with pytest.raises(AllowListConflict) as caught:
        allow.save()
    assert caught.value.message.startswith("cannot remove #2 remote_ip=198.51.100.0/24")
    assert hand.read_text(encoding="utf-8") == theirs and allow.dirty
    # keep theirs for the conflicting edit, the rest of ours still lands
    skipped = allow.save(skip_conflicts=True)
    assert skipped == ["remove #2 remote_ip=198.51.100.0/24: proxy egress"]
    reasons = [e.reason for e in AllowList.load(hand).entries]
    assert reasons == [
        "Defender cloud lookups",
        "proxy egress, per CAB-12",
        "IPv6 documentation range, pretend CDN",
        "ours",
    ]


def test_overwrite_replaces_their_version_and_keeps_it_as_bak(hand):
    allow = AllowList.load(hand)
    ours_expected = allow.text.replace(ZSCALER_BLOCK, "")
    theirs = hand.read_text(encoding="utf-8") + '\n[[allow]]\ndevice = "x"\nreason = "theirs"\n'
    hand.write_text(theirs, encoding="utf-8")
    allow.remove(1)
    allow.save(overwrite=True)
    assert hand.read_text(encoding="utf-8") == ours_expected
    assert (hand.parent / "allow.toml.bak").read_text(encoding="utf-8") == theirs


def test_save_without_edits_does_not_touch_the_file(hand):
    allow = AllowList.load(hand)
    stat = hand.stat()
    assert allow.save() == []
    assert hand.stat().st_mtime_ns == stat.st_mtime_ns
    assert not (hand.parent / "allow.toml.bak").exists()


def test_reload_drops_unsaved_edits(hand):
    allow = AllowList.load(hand)
    allow.remove(0)
    allow.reload()
    assert len(allow.entries) == 3 and not allow.dirty


# --- failures while writing ----------------------------------------------------------------


def test_crash_before_rename_leaves_the_old_file_whole_and_no_temp(hand, monkeypatch):
    original = hand.read_bytes()
    allow = AllowList.load(hand)
    allow.add({"process": "x.exe", "reason": "r"})

    def crash(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "simulated crash before rename")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(AllowListSaveError, match="simulated crash"):
        allow.save()
    assert hand.read_bytes() == original
    assert temp_files(hand.parent) == []
    assert allow.dirty


def test_read_only_directory_keeps_edits_and_a_later_save_succeeds(hand, monkeypatch):
    original = hand.read_bytes()
    allow = AllowList.load(hand)
    allow.add({"process": "x.exe", "reason": "kept"})

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", read_only)
    with pytest.raises(AllowListSaveError) as caught:
        allow.save()
    assert str(caught.value) == (f"{hand}: cannot save: Read-only file system")
    assert hand.read_bytes() == original and allow.dirty
    assert allow.entries[-1].reason == "kept"
    monkeypatch.undo()
    allow.save()
    assert not allow.dirty
    assert AllowList.load(hand).entries[-1].reason == "kept"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_read_only_directory_for_real(hand):
    allow = AllowList.load(hand)
    allow.add({"process": "x.exe", "reason": "kept"})
    hand.parent.chmod(0o555)
    try:
        with pytest.raises(AllowListSaveError):
            allow.save()
    finally:
        hand.parent.chmod(0o755)
    allow.save()
    assert AllowList.load(hand).entries[-1].reason == "kept"


def test_disk_full_during_write_leaves_nothing_half_written(hand, monkeypatch):
    original = hand.read_bytes()
    allow = AllowList.load(hand)
    allow.add({"process": "x.exe", "reason": "r"})

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(AllowListSaveError, match="No space left on device"):
        allow.save()
    assert hand.read_bytes() == original
    assert temp_files(hand.parent) == []
    monkeypatch.undo()
    allow.save()
    assert AllowList.load(hand).entries[-1].process == "x.exe"


def test_failed_save_after_merging_an_external_edit_does_not_apply_twice(hand, monkeypatch):
    allow = AllowList.load(hand)
    hand.write_text(
        hand.read_text(encoding="utf-8") + '\n[[allow]]\ndevice = "x"\nreason = "theirs"\n',
        encoding="utf-8",
    )
    allow.add({"process": "ours.exe", "reason": "ours"})
    monkeypatch.setattr(
        atomic.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError(errno.EIO, "io"))
    )
    with pytest.raises(AllowListSaveError):
        allow.save()
    monkeypatch.undo()
    allow.save()
    reasons = [e.reason for e in AllowList.load(hand).entries]
    assert reasons[-2:] == ["theirs", "ours"] and reasons.count("ours") == 1


def test_utf8_bom_is_kept(tmp_path):
    path = tmp_path / "allow.toml"
    path.write_bytes(b'\xef\xbb\xbf[[allow]]\nprocess = "a.exe"\nreason = "x"\n')
    allow = AllowList.load(path)
    allow.update(0, {"reason": "y"})
    allow.save()
    assert path.read_bytes() == b'\xef\xbb\xbf[[allow]]\nprocess = "a.exe"\nreason = "y"\n'
