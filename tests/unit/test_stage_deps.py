"""dvc.yaml declares every project module a stage runs, so a code change reruns the stages that use it."""
import ast
import re
from pathlib import Path

import yaml

from tasks.core import plugins
from tests.helpers import REPO

PACKAGES = ("tasks", "flows")
# tasks.recorders (and tasks.records.tracking under it) record a finished step in MLflow and write no stage output:
# a change there must not rerun (retrain) the stages, so the closure follows neither (nor any module under them)
EDGES = {"tasks.recorders", "tasks.records.tracking"}

def builtin_modules(registry) -> set[str]:
    return {e.target.partition(":")[0] for e in registry.entries.values() if isinstance(e.target, str)}


# modules a module runs by name rather than by import: serving packages pyfunc_model.py as the model's code;
# the module that looks up a registry of tasks.core.plugins runs its built-in entries, named "module:attribute"
BY_PATH = {"tasks.scoring.serving": {"tasks.scoring.pyfunc_model"},
           "tasks.ingest": builtin_modules(plugins.SOURCES), "tasks.training.model": builtin_modules(plugins.MODELS),
           "tasks.training.augment": builtin_modules(plugins.AUGMENTATIONS),
           "tasks.measure.metrics": builtin_modules(plugins.THRESHOLDS)}


def module_file(name: str) -> Path | None:
    """tasks.x.y -> tasks/x/y.py (or its package __init__.py); None outside the project."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = REPO.joinpath(*name.split("."))
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").exists() else None


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (the steps import lazily)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from tasks import x`
    return out


def closure(module: str) -> set[str]:
    """The project files `python -m module` can execute, as repo-relative paths."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = None if name in EDGES or name.startswith("tasks.recorders.") else module_file(name)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imports(path) | BY_PATH.get(name, set()))
    return {str(p.relative_to(REPO)) for p in seen if not reruns_nothing(p)}


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def reruns_nothing(path: Path) -> bool:
    """The root packages' __init__ (quiet logging defaults, the old module names: tasks/core/moved.py) and a
    folder's __init__ that holds only its docstring: a change there changes no output of a stage."""
    rel = str(path.relative_to(REPO))
    return (rel in {f"{pkg}/__init__.py" for pkg in PACKAGES} | {"tasks/core/moved.py"}
            or (path.name == "__init__.py" and docstring_only(path)))


def test_closure_follows_lazy_imports_and_submodules():
    files = closure("tasks.evaluate")
    assert {"tasks/evaluate.py", "tasks/measure/metrics.py", "tasks/measure/inference.py",
            "tasks/imaging/preprocess.py"} <= files
    assert "tasks/measure/gradcam.py" in files  # imported inside a function
    assert "tasks/records/tracking.py" not in files  # the tracking edge writes no output of a stage


def resolve(text: str, params: dict) -> str:
    """dvc.yaml's `${a.b}` interpolation from params.yaml (the default params)."""
    def value(match):
        node = params
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{([^}]+)\}", value, text)


def test_every_stage_declares_the_modules_it_runs():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing, extra = {}, {}
    for name, stage in stages.items():
        module = stage["cmd"].split("python -m ", 1)[1].split()[0]
        declared = {resolve(d, params) for d in stage.get("deps", []) if isinstance(d, str)}
        runs = closure(module)
        if runs - declared:
            missing[name] = sorted(runs - declared)
        code = {d for d in declared if d.split("/")[0] in PACKAGES}
        if code - runs:  # a module the stage no longer runs would rerun it for nothing
            extra[name] = sorted(code - runs)
    assert not missing, f"dvc.yaml stages miss deps on the code they run: {missing}"
    assert not extra, f"dvc.yaml stages declare code they do not run: {extra}"


# paths a stage's code names without reading them as data: ingest's scratch folder for the images it
# generates or extracts (its real input is `${ingest.input}`), the model folder, which tasks/core/files.py
# (imported by every stage) names (the model files themselves are declared one by one), and the secret
# salt of DICOM patient keys, which ingest creates on first need (a dep must exist before the stage runs)
NOT_DATA = {"raw", "model_dir", "patient_salt"}


def declared_paths(stage: dict, params: dict) -> set[str]:
    out = set()
    for key in ("deps", "outs", "metrics", "plots"):
        for entry in stage.get(key, []):
            out.add(resolve(entry if isinstance(entry, str) else next(iter(entry)), params))
    return out


def test_every_stage_declares_the_files_it_reads_or_writes():
    """Each `paths.<key>` the stage's code names is a declared dep or output (or inside / around one, or the stem
    of some)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        module = stage["cmd"].split("python -m ", 1)[1].split()[0]
        keys = {k for f in closure(module) for k in re.findall(r"paths\.(\w+)", (REPO / f).read_text())}
        declared = declared_paths(stage, params)
        for key in sorted(keys & set(params["paths"]) - NOT_DATA):
            path = params["paths"][key]
            # a path may be a folder of outputs or a stem (`paths.model_card`: its .md and .html)
            if not any(path == d or path.startswith(d + "/") or d.startswith((path + "/", path + "."))
                       for d in declared):
                missing.setdefault(name, []).append(f"{key}: {path}")
    assert not missing, f"dvc.yaml stages use files they do not declare: {missing}"


def test_site_stages_declare_the_code_they_run():
    from tasks.sites import stage

    assert sorted(stage.ADAPT_CODE) == sorted(closure("tasks.sites.adapt"))
    assert sorted(stage.GATE_CODE) == sorted(closure("tasks.sites.gate"))
