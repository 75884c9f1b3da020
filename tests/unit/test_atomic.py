"""Atomic writes: old or new, never half; a .bak of the previous version; symlinks kept."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from detectors.base import atomic
from detectors.base.atomic import atomic_write_bytes, atomic_write_text


def listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_write_creates_missing_directories_private_when_asked(tmp_path):
    target = tmp_path / "a" / "b" / "f.txt"
    atomic_write_text(target, "héllo\n", make_parents=True)
    assert target.read_bytes() == "héllo\n".encode()
    assert listing(target.parent) == ["f.txt"]
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_backup_holds_the_previous_version(tmp_path):
    target = tmp_path / "f.toml"
    atomic_write_bytes(target, b"one\n", backup=True)
    assert listing(tmp_path) == ["f.toml"]  # nothing to back up the first time
    atomic_write_bytes(target, b"two\n", backup=True)
    atomic_write_bytes(target, b"three\n", backup=True)
    assert target.read_bytes() == b"three\n"
    assert (tmp_path / "f.toml.bak").read_bytes() == b"two\n"
    assert listing(tmp_path) == ["f.toml", "f.toml.bak"]


def test_crash_before_rename_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f.toml"
    target.write_bytes(b"old and whole\n")
    real_replace = os.replace

    def crash_on_target(src, dst):
        if os.fspath(dst) == os.fspath(target):
            raise OSError(errno.EIO, "power cut")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", crash_on_target)
    with pytest.raises(atomic.WriteError, match="power cut"):
        atomic_write_bytes(target, b"new\n", backup=True)
    assert target.read_bytes() == b"old and whole\n"
    assert listing(tmp_path) == ["f.toml", "f.toml.bak"]  # the backup is whole too
    assert (tmp_path / "f.toml.bak").read_bytes() == b"old and whole\n"


def test_crash_while_backing_up_leaves_no_temp_and_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.toml"
    target.write_bytes(b"old\n")

    def crash(src, dst):
        raise OSError(errno.EIO, "power cut")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(atomic.WriteError, match="power cut"):
        atomic_write_bytes(target, b"new\n", backup=True)
    assert listing(tmp_path) == ["f.toml"]
    assert target.read_bytes() == b"old\n"


def test_write_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "repo" / "allow.toml"
    real.parent.mkdir()
    real.write_bytes(b"old\n")
    link = tmp_path / "allow.toml"
    link.symlink_to(real)
    atomic_write_bytes(link, b"new\n", backup=True)
    assert link.is_symlink()
    assert real.read_bytes() == b"new\n"
    assert (real.parent / "allow.toml.bak").read_bytes() == b"old\n"


def test_file_mode_is_kept(tmp_path):
    target = tmp_path / "f.toml"
    target.write_bytes(b"x")
    target.chmod(0o640)
    atomic_write_bytes(target, b"y", backup=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "f.toml.bak").stat().st_mode) == 0o640
