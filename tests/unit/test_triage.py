"""Triage marks: saved as TOML, keyed so they survive a re-run on new data."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base.errors import InputError
from detectors.curate.triage import CandidateKey, TriageConflict, TriageStore

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc)


def first_run() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "device": ["WS-07", "ws-08", "ws-09"],
            "process": ["Rundll32.exe", None, "curl.exe"],
            "remote_ip": ["::ffff:203.0.113.7", "2001:DB8::5", "198.51.100.1"],
            "remote_port": [443, None, 80],
            "score": [0.9, 0.5, 0.1],
        },
        schema_overrides={"remote_port": pl.Int32},
    )


def marked_store(path: Path) -> TriageStore:
    store = TriageStore.load(path)
    rows = list(first_run().iter_rows(named=True))
    store.set(rows[0], "escalate", "60 s beacon", analyst="jdoe", now=NOW)
    store.set(rows[1], "benign", analyst="jdoe", now=NOW)
    return store


def test_triage_marks_round_trip_through_the_file(tmp_path):
    path = tmp_path / "triage.toml"
    marked_store(path).save()
    text = path.read_text(encoding="utf-8")
    assert text.endswith(
        "[[triage]]\n"
        'device = "WS-07"\n'
        'process = "Rundll32.exe"\n'
        'remote_ip = "::ffff:203.0.113.7"\n'
        "remote_port = 443\n"
        'mark = "escalate"\n'
        'note = "60 s beacon"\n'
        'analyst = "jdoe"\n'
        "updated = 2026-11-24T09:30:00Z\n"
        "\n"
        "[[triage]]\n"
        'device = "ws-08"\n'  # the null process and port are left out
        'remote_ip = "2001:DB8::5"\n'
        'mark = "benign"\n'
        'analyst = "jdoe"\n'
        "updated = 2026-11-24T09:30:00Z\n"
    )
    loaded = TriageStore.load(path)
    mark = loaded.get(CandidateKey("ws-07", "rundll32.EXE", "203.0.113.7", 443))
    assert mark is not None
    assert (mark.status, mark.note, mark.analyst, mark.updated, mark.line) == (
        "escalate",
        "60 s beacon",
        "jdoe",
        NOW,
        4,
    )
    assert loaded.counts() == {"unreviewed": 0, "suspicious": 0, "benign": 1, "escalate": 1}


def test_triage_marks_survive_a_rerun_on_new_data(tmp_path):
    path = tmp_path / "triage.toml"
    marked_store(path).save()
    rerun = pl.DataFrame(
        {  # new order, other case, IPv4 instead of mapped IPv6, a new candidate, Int64 port
            "device": ["new-host", "ws-08", "ws-07"],
            "process": ["a.exe", None, "RUNDLL32.EXE"],
            "remote_ip": ["192.0.2.1", "2001:db8:0:0::5", "203.0.113.7"],
            "remote_port": [53, None, 443],
        }
    )
    applied = TriageStore.load(path).apply(rerun)
    assert applied.columns == ["device", "process", "remote_ip", "remote_port", "mark", "note"]
    assert applied.get_column("mark").to_list() == ["unreviewed", "benign", "escalate"]
    assert applied.get_column("note").to_list() == [None, None, "60 s beacon"]
    assert applied.get_column("device").to_list() == ["new-host", "ws-08", "ws-07"]


def test_null_process_does_not_match_a_present_process(tmp_path):
    store = marked_store(tmp_path / "t.toml")
    other = pl.DataFrame({"device": ["ws-08"], "process": ["x.exe"], "remote_ip": ["2001:db8::5"]})
    other = other.with_columns(pl.lit(None, pl.Int32).alias("remote_port"))
    assert store.apply(other).get_column("mark").to_list() == ["unreviewed"]


def test_counts_over_candidates_include_unreviewed(tmp_path):
    store = marked_store(tmp_path / "t.toml")
    counts = store.counts(first_run())
    assert counts == {"unreviewed": 1, "suspicious": 0, "benign": 1, "escalate": 1}


def test_setting_a_mark_again_updates_its_table_in_place(tmp_path):
    path = tmp_path / "triage.toml"
    marked_store(path).save()
    before = path.read_text(encoding="utf-8")
    store = TriageStore.load(path)
    later = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    store.set(first_run().row(0, named=True), "suspicious", analyst="asmith", now=later)
    store.save()
    assert path.read_text(encoding="utf-8") == before.replace(
        'mark = "escalate"\nnote = "60 s beacon"\nanalyst = "jdoe"\nupdated = 2026-11-24T09:30:00Z',
        'mark = "suspicious"\nnote = "60 s beacon"\nanalyst = "asmith"\n'
        "updated = 2026-11-25T08:00:00Z",
    )


def test_back_to_unreviewed_without_note_removes_the_table(tmp_path):
    store = marked_store(tmp_path / "t.toml")
    assert store.set(first_run().row(1, named=True), "unreviewed") is None
    assert store.counts() == {"unreviewed": 0, "suspicious": 0, "benign": 0, "escalate": 1}
    assert "ws-08" not in store.text
    kept = store.set(first_run().row(0, named=True), "unreviewed")  # its note keeps the table
    assert kept is not None and (kept.status, kept.note) == ("unreviewed", "60 s beacon")


def test_comments_in_the_triage_file_survive_edits(tmp_path):
    path = tmp_path / "triage.toml"
    path.write_text(
        "# shift handover notes live here\n\n"
        "[[triage]]  # the loud one\n"
        'device = "ws-07"   # kiosk\n'
        'mark = "suspicious"\n',
        encoding="utf-8",
    )
    store = TriageStore.load(path)
    store.set({"device": "WS-07"}, "escalate", "", analyst="me", now=NOW)
    store.save()
    assert path.read_text(encoding="utf-8") == (
        "# shift handover notes live here\n\n"
        "[[triage]]  # the loud one\n"
        'device = "ws-07"   # kiosk\n'
        'mark = "escalate"\n'
        'analyst = "me"\n'
        "updated = 2026-11-24T09:30:00Z\n"
    )


def test_marks_made_here_and_elsewhere_are_merged_on_save(tmp_path):
    path = tmp_path / "triage.toml"
    marked_store(path).save()
    store = TriageStore.load(path)
    external = path.read_text(encoding="utf-8") + (
        '\n[[triage]]\ndevice = "ws-99"\nmark = "benign"\nanalyst = "asmith"\n'
    )
    path.write_text(external, encoding="utf-8")
    store.set(first_run().row(2, named=True), "suspicious", "curl to a raw IP", now=NOW)
    store.save()
    loaded = TriageStore.load(path)
    assert loaded.counts() == {"unreviewed": 0, "suspicious": 1, "benign": 2, "escalate": 1}
    assert path.read_text(encoding="utf-8").startswith(external)


def test_the_same_candidate_re_marked_elsewhere_is_a_conflict(tmp_path):
    path = tmp_path / "triage.toml"
    marked_store(path).save()
    store = TriageStore.load(path)
    theirs = path.read_text(encoding="utf-8").replace('mark = "benign"', 'mark = "suspicious"')
    path.write_text(theirs, encoding="utf-8")
    store.set(first_run().row(1, named=True), "escalate", now=NOW)
    with pytest.raises(TriageConflict, match="marked differently"):
        store.save()
    assert path.read_text(encoding="utf-8") == theirs
    assert store.save(skip_conflicts=True) == ["mark ws-08 / - -> 2001:DB8::5 escalate"]
    assert path.read_text(encoding="utf-8") == theirs


def test_invalid_mark_in_the_file_names_its_line(tmp_path):
    path = tmp_path / "triage.toml"
    path.write_text('[[triage]]\ndevice = "a"\nmark = "maybe"\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        TriageStore.load(path)
    assert (caught.value.line, caught.value.field) == (3, "mark")
    with pytest.raises(InputError, match="unknown mark 'maybe'"):
        TriageStore.load(tmp_path / "new.toml").set({"device": "a"}, "maybe")


def test_apply_on_an_empty_store_and_an_empty_frame(tmp_path):
    store = TriageStore.load(tmp_path / "none.toml")
    assert store.apply(first_run()).get_column("mark").to_list() == ["unreviewed"] * 3
    empty = store.apply(first_run().head(0))
    assert empty.height == 0 and empty.columns[-2:] == ["mark", "note"]
