"""The import graph of `tasks/` and `flows/` (every import, at module level or inside a function): no circle,
the seven steps side by side (no step imports another), no helper reaching up into a step, no Prefect in
`tasks/`, and `tasks.core.errors` on the bottom floor."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STEPS = {f"tasks.{s}" for s in ("ingest", "validate", "split", "train", "evaluate", "package", "register")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules (and outside packages, by their top name) that `path` imports."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name if a.name in known else a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module if node.module in known else node.module.split(".")[0])
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in ("tasks", "flows") for p in (REPO / pkg).rglob("*.py")}
    return {m: imports(p, set(files)) - {m} for m, p in files.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, found = {}, {}, [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v] & set(g):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while not part or part[-1] != v:
                part.append(stack.pop())
            if len(part) > 1:
                found.append(sorted(part))

    for v in g:
        if v not in index:
            visit(v)
    return found


def test_circles_are_found_where_they_exist():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_circle_and_only_goes_down():
    g = graph()
    assert STEPS <= set(g)
    assert circles(g) == []
    assert {m: sorted(g[m] & STEPS) for m in g if m.startswith("tasks.") and g[m] & STEPS} == {}
    assert g["tasks.core.errors"] <= {"__future__"}
    assert [m for m in g if m.startswith("tasks") and "prefect" in g[m]] == []


def test_every_project_import_names_something_that_exists():
    """A name moved to another module fails here, not in a benchmark's lazy import an hour later."""
    import importlib

    missing = []
    for pkg in ("tasks", "flows", "benchmarks", "tests"):
        for path in (REPO / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.module and not node.level
                        and node.module.split(".")[0] in ("tasks", "flows")):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if not hasattr(module, alias.name) and not (
                            hasattr(module, "__path__") and importlib.util.find_spec(f"{node.module}.{alias.name}")):
                        missing.append(f"{path.relative_to(REPO)}: {node.module}.{alias.name}")
    assert not missing, missing


# tasks/'s folders from the floor up: a module imports from its own folder and the folders below it, and may call
# the runner (tasks.cli, which every command shares) from any floor; a folder's cli.py may import any floor
FLOORS = ("core", "imaging", "sources", "training", "measure", "records", "scoring", "sites", "monitoring", "pacs")


def floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.index(parts[1]) if len(parts) > 2 and parts[0] == "tasks" and parts[1] in FLOORS else None


def upward(g: dict[str, set[str]]) -> list[str]:
    """Imports from a floor to one above it; a command's front door (`<folder>/cli.py`) composes any floor."""
    return sorted(f"{m} -> {t}" for m in g if floor(m) is not None and not m.endswith(".cli") for t in g[m]
                  if floor(t) is not None and floor(t) > floor(m))


def test_upward_imports_between_floors_are_found():
    assert upward({"tasks.core.a": {"tasks.measure.b"}, "tasks.measure.b": {"tasks.core.a"}}) == \
        ["tasks.core.a -> tasks.measure.b"]


def test_the_folders_import_only_their_own_floor_and_below():
    g = graph()
    folders = {p.name for p in (REPO / "tasks").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(FLOORS) | {"recorders"}  # what each command records: at the top, beside the runner
    assert upward(g) == []
    # only the seven stages, the runner and the package's __init__ at the top
    top = {p.stem for p in (REPO / "tasks").glob("*.py")}
    assert top == {s.split(".")[1] for s in STEPS} | {"__init__", "cli"}
