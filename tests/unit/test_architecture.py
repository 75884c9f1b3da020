"""The engine's house rules, read from the source: every import in every file under
``detectors/`` (module level and inside functions alike) is parsed, and

* nothing imports ``tui`` or ``textual``;
* no stage imports a later one (the folders read in the order an event travels);
* there is no import cycle between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "detectors"
# The journey of an event; a stage may import its own and earlier stages only.
STAGES = ["base", "load", "pairs", "stats", "hunts", "rank", "curate", "report", "run"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the code (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    inside = path.is_relative_to(ROOT)
    if not inside:
        package = ""
    elif path.name == "__init__.py":
        package = module_name(path)
    else:
        package = module_name(path.parent)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # ``from detectors.hunts import intervals`` imports the submodule too
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def engine_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in ENGINE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = {m for m in imports_of(path) if m in files and m != name}
    return graph


def stage_of(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if len(parts) > 1 and parts[1] in STAGES else None


def test_imports_of_reads_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from tui.app import App\n    import textual.widgets\n")
    assert imports_of(source) >= {"tui.app", "tui.app.App", "textual.widgets"}


def test_no_engine_module_imports_the_face():
    offenders = sorted(
        f"{module_name(p)} imports {m}"
        for p in ENGINE.rglob("*.py")
        for m in imports_of(p)
        if m.split(".")[0] in {"tui", "textual"}
    )
    assert offenders == []


def test_no_stage_imports_a_later_stage():
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in engine_graph().items()
        for b in targets
        if stage_of(a) is not None and stage_of(b) is not None and stage_of(b) > stage_of(a)
    )
    assert upward == []


def test_every_engine_module_belongs_to_a_stage():
    loose = sorted(m for m in engine_graph() if m != "detectors" and stage_of(m) is None)
    assert loose == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None (depth-first, three colours)."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in colour and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if node not in colour and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ],
)
def test_find_cycle_on_small_graphs(graph, expected):
    assert find_cycle(graph) == expected


def test_engine_has_no_import_cycle():
    graph = engine_graph()
    # a package's __init__ is imported with each of its modules: not an edge of its own
    for targets in graph.values():
        targets.difference_update(
            {m for m in targets if (ENGINE.parent / m.replace(".", "/") / "__init__.py").exists()}
        )
    assert find_cycle(graph) is None


def test_generated_parameter_reference_is_current():
    from tui.reference import PARAMETERS_PAGE, parameters_markdown

    assert PARAMETERS_PAGE.read_text(encoding="utf-8") == parameters_markdown(), (
        "docs/parameters.md is stale: run `python -m tui.reference`"
    )
