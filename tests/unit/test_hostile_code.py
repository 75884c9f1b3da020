"""Nothing in a config, allow-list or telemetry file runs as code or reaches the network,
and the loaders read only the files the user named.

The static check walks the syntax tree of every module of the product (``detectors``,
``tui``, ``themes``), so a polars ``.list.eval(...)`` expression is not mistaken for
Python's ``eval``.
"""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from detectors.base.errors import InputError
from detectors.curate.allowlist import AllowList
from detectors.load import load_paths
from detectors.run.headless import detect
from detectors.run.setup import load_config

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("detectors", "tui", "themes")
DATA = ROOT / "tests" / "data" / "load"

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint"}
FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "dill",
    "marshal",
    "shelve",
    "yaml",
    "jsonpickle",
    "subprocess",
    "socket",
    "requests",
    "httpx",
    "urllib.request",
    "http.client",
    "webbrowser",
    "ftplib",
    "telnetlib",
    "smtplib",
}
FORBIDDEN_ATTRIBUTES = {
    ("os", "system"),
    ("os", "popen"),
    ("os", "execv"),
    ("os", "execvp"),
    ("os", "spawnv"),
    ("os", "startfile"),
    ("pl", "read_database"),
    ("pl", "SQLContext"),
}
# importlib.import_module only with the built-in detector names, a constant tuple
# (importlib.resources, which reads bundled data files, is fine anywhere)
IMPORTLIB_ALLOWED = {Path("detectors/builtin.py")}
# subprocess only where the offline bundle runs pip with fixed arguments, and only from a
# source checkout (it checks for pyproject.toml before anything else); shell=True stays banned
SUBPROCESS_ALLOWED = {Path("tui/bundle.py")}


def product_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def findings(path: Path, label: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = Path(label) if label else path.relative_to(ROOT)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(f"{where}:{node.lineno} calls {node.func.id}()")
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "shell" and getattr(keyword.value, "value", False) is True:
                    found.append(f"{where}:{node.lineno} shell=True")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in FORBIDDEN_ATTRIBUTES
        ):
            found.append(f"{where}:{node.lineno} uses {node.value.id}.{node.attr}")
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "subprocess" and where in SUBPROCESS_ALLOWED:
                continue
            if name in FORBIDDEN_MODULES or name.split(".")[0] in {"pickle", "yaml", "dill"}:
                found.append(f"{where}:{node.lineno} imports {name}")
            if name.endswith("import_module") and where not in IMPORTLIB_ALLOWED:
                found.append(f"{where}:{node.lineno} imports {name}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "import_module"
            and where not in IMPORTLIB_ALLOWED
        ):
            found.append(f"{where}:{node.lineno} uses import_module")
    return found


def test_the_product_has_modules_to_check():
    modules = product_modules()
    assert len(modules) > 40  # the scan below must not pass by finding nothing
    assert ROOT / "detectors" / "load" / "tables.py" in modules


def test_no_module_evaluates_deserialises_or_shells_out():
    problems = [line for path in product_modules() for line in findings(path)]
    assert problems == []


def test_the_scanner_catches_what_it_looks_for(tmp_path):
    # the scan above is only worth something if it would flag a real offender
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import pickle\nimport yaml\nimport subprocess\nimport os\n"
        "eval('1')\nos.system('x')\nsubprocess.run('x', shell=True)\n"
        "import polars as pl\npl.col('a').list.eval(pl.element())\n",
        encoding="utf-8",
    )
    problems = sorted(line.split(" ", 1)[1] for line in findings(probe, label="probe.py"))
    assert problems == sorted(
        [
            "imports pickle",
            "imports yaml",
            "imports subprocess",
            "calls eval()",
            "uses os.system",
            "shell=True",
        ]
    )


# --- at run time ---------------------------------------------------------------------------

PAYLOAD = "__import__('os').system('touch pwned')"  # no slash: the allow-list takes it


def _no_network(monkeypatch):
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_code_in_config_and_allowlist_values_is_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    payload = PAYLOAD
    config = tmp_path / "config.toml"
    config.write_text(
        f'theme = "{payload}"\n'
        f'mmdb = "{payload}"\n'
        "[scoring]\n"
        "[mapping]\n"
        f'timestamp = "{payload}"\n'
        'remote_ip = "RemoteIP"\n',
        encoding="utf-8",
    )
    allow = tmp_path / "allow.toml"
    allow.write_text(f'[[allow]]\nprocess = "{payload}"\nreason = "{payload}"\n', encoding="utf-8")
    attempts = _no_network(monkeypatch)
    text = detect(
        [str(DATA / "mde_network.csv")],
        config_path=str(config),
        allowlist_path=str(allow),
        fmt="json",
    )
    assert text.startswith("[")
    assert AllowList.load(allow).entries[0].process == payload  # kept as text
    assert not marker.exists() and attempts == []


def test_a_yaml_or_pickle_style_config_is_a_one_line_error_not_an_object(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("!!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_config(config)
    assert str(caught.value).startswith(f"{config}: invalid TOML")
    assert "\n" not in str(caught.value)
    pickled = tmp_path / "events.csv"
    pickled.write_bytes(b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system")
    with pytest.raises(InputError, match="binary data"):
        load_paths([pickled])


def test_detect_on_every_fixture_makes_no_network_attempt(monkeypatch):
    attempts = _no_network(monkeypatch)
    paths = sorted(str(p) for p in DATA.iterdir() if p.name != "mapped.csv")
    detect(paths, fmt="json")
    assert attempts == []


# --- only the files named ---------------------------------------------------------------------


def test_a_directory_is_read_without_dotfiles_or_linked_directories(tmp_path):
    named = tmp_path / "named"
    named.mkdir()
    (named / "events.csv").write_bytes((DATA / "mde_network.csv").read_bytes())
    (named / ".hidden.csv").write_bytes((DATA / "mde_network.csv").read_bytes())
    (named / "sub").mkdir()
    (named / "sub" / "more.csv").write_bytes((DATA / "mde_network.csv").read_bytes())
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_bytes((DATA / "mde_network.csv").read_bytes())
    (named / "linked").symlink_to(outside, target_is_directory=True)
    dataset = load_paths([named])
    assert dataset.files == [str(named / "events.csv"), str(named / "sub" / "more.csv")]
    assert load_paths([named], recursive=False).files == [str(named / "events.csv")]


def test_a_zeek_path_header_is_a_log_kind_never_a_file_to_open(tmp_path):
    secret = tmp_path / "secret.log"
    secret.write_text("#fields\tts\n1\n", encoding="utf-8")
    log = tmp_path / "conn.log"
    log.write_text(
        f"#separator \\x09\n#path\t{secret}\n#fields\tts\tid.resp_h\n1700000000\t203.0.113.5\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as caught:
        load_paths([log])
    assert str(caught.value) == (
        f"{log}: no connection events found; these paths hold 1 Zeek {secret} log"
    )


def test_the_default_config_in_use_is_said_on_stderr(tmp_path, monkeypatch):
    home_config = tmp_path / "config.toml"
    home_config.write_text("[scoring]\n", encoding="utf-8")
    monkeypatch.setattr("detectors.base.config.default_config_path", lambda: home_config)
    said: list[str] = []
    detect([str(DATA / "mde_network.csv")], fmt="json", warn=said.append)
    assert f"using the config {home_config}" in said
    said.clear()
    detect(
        [str(DATA / "mde_network.csv")], fmt="json", config_path=str(home_config), warn=said.append
    )
    assert not any("using the config" in line for line in said)  # named by the user: no news
