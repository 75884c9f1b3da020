"""``beacon-triage allowlist add/list/remove/check``: output, exit codes, one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tui.cli import cli

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
def hand(tmp_path: Path) -> Path:
    path = tmp_path / "allow.toml"
    shutil.copyfile(DATA / "allowlist_hand.toml", path)
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, ["allowlist", *args])


def test_cli_list_numbers_entries_and_flags_expired_and_disabled(hand):
    text = (
        hand.read_text(encoding="utf-8")
        .replace("reason = 'proxy egress'", "reason = 'proxy egress'\nenabled = false")
        .replace("expires=2027-02-23", "expires=2020-02-23")
    )
    hand.write_text(text, encoding="utf-8")
    result = invoke("list", "--file", str(hand))
    assert result.exit_code == 0
    assert result.stdout == (
        "  1. process=MsMpEng.exe domain=*.microsoft.com: Defender cloud lookups "
        "(added by jdoe)\n"
        "  2. remote_ip=198.51.100.0/24: proxy egress  [disabled]\n"
        "  3. remote_ip=2001:db8::/32 remote_port=443: IPv6 documentation range, pretend CDN"
        "  [expired 2020-02-23]\n"
    )


def test_cli_add_appends_and_keeps_the_file_text(hand, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "jdoe")
    original = hand.read_text(encoding="utf-8")
    options = ["--remote-ip", "2001:DB8:1::/48", "--remote-port", "8443", "--expires", "2027-01-31"]
    result = invoke("add", "--file", str(hand), *options, "--reason", "staging CDN")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "added 4. remote_ip=2001:DB8:1::/48 remote_port=8443: staging CDN (added by jdoe)  "
        f"[expires 2027-01-31] to {hand}\n"
    )
    text = hand.read_text(encoding="utf-8")
    assert text.startswith(original)
    assert 'remote_ip = "2001:DB8:1::/48"\nremote_port = 8443\nreason = "staging CDN"\n' in text
    assert "expires = 2027-01-31\n" in text


def test_cli_add_with_a_bad_value_fails_in_one_line_and_writes_nothing(hand):
    original = hand.read_bytes()
    result = invoke("add", "--file", str(hand), "--remote-port", "99999", "--reason", "x")
    assert result.exit_code == 1
    assert result.stderr == (
        "beacon-triage: error: field remote_port: remote_port must be a port number 0-65535, "
        "not 99999\n"
    )
    no_key = invoke("add", "--file", str(hand), "--reason", "x")
    assert no_key.exit_code == 1 and "no match key" in no_key.stderr
    assert invoke("add", "--file", str(hand), "--process", "a.exe").exit_code == 2  # usage
    assert hand.read_bytes() == original


def test_cli_remove_deletes_the_numbered_entry(hand):
    result = invoke("remove", "--file", str(hand), "2")
    assert result.exit_code == 0
    assert result.stdout == f"removed 2. remote_ip=198.51.100.0/24: proxy egress from {hand}\n"
    assert "198.51.100.0/24" not in hand.read_text(encoding="utf-8")
    missing = invoke("remove", "--file", str(hand), "7")
    assert missing.exit_code == 1
    assert missing.stderr == "beacon-triage: error: no entry #7 (the list has 2)\n"


def test_cli_check_accepts_a_valid_file_and_warns_about_expired_entries(hand):
    result = invoke("check", "--file", str(hand))
    assert result.exit_code == 0
    assert result.stdout == f"{hand}: 3 entries OK (0 disabled, 0 expired)\n"
    hand.write_text(
        hand.read_text(encoding="utf-8").replace("2027-02-23", "2020-02-23"), encoding="utf-8"
    )
    expired = invoke("check", "--file", str(hand))
    assert expired.exit_code == 0
    assert expired.stderr == (
        f"beacon-triage: warning: {hand}: line 17: entry #3 expired on 2020-02-23 "
        "and no longer applies\n"
    )


def test_cli_check_fails_with_file_line_and_key_on_a_bad_file(hand, tmp_path):
    text = hand.read_text(encoding="utf-8")
    hand.write_text(text.replace("198.51.100.0/24", "198.51.100.0/99"), encoding="utf-8")
    result = invoke("check", "--file", str(hand))
    assert result.exit_code == 1
    assert result.stderr == (
        f"beacon-triage: error: {hand}: line 14, field remote_ip: "
        "'198.51.100.0/99' is not an IP address or CIDR\n"
    )
    missing = invoke("check", "--file", str(tmp_path / "nope.toml"))
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"beacon-triage: error: {tmp_path / 'nope.toml'}: allow-list file not found\n"
    )


def test_cli_file_defaults_to_the_config_allowlist_path(tmp_path, monkeypatch):
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "config.toml").write_text(f'allowlist = "{tmp_path / "mine.toml"}"\n')
    monkeypatch.setattr("detectors.base.config.config_dir", lambda: config)
    result = invoke("add", "--process", "a.exe", "--reason", "r")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "mine.toml").exists()
    listed = invoke("list")
    assert listed.stdout.startswith("  1. process=a.exe: r")
