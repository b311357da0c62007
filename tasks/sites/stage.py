"""A site's folder `<paths.sites>/<name>/` and the DVC stages that adapt and register its model.

`site.yaml` holds what the stages read besides params.yaml's `sites:` section: the images folder (absolute)
and the source model pinned to a registry version (`models:/<model>/<version>`, the champion when the site
was queried), so a later champion does not silently change what a site's model was adapted from. The
site's `dvc.yaml` is written from `stages()`: its deps are the images folder, the validated labels, the
source training data and this package's code, so `dvc repro` reruns only when one of them changed and
the site's `dvc.lock` holds their hashes.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from tasks.cli import configure_logging, guard
from tasks.core.config import Params
from tasks.core.errors import EXIT_REJECTED, StepError

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")
# the project files each site stage runs (tests/unit/test_stage_deps.py checks them against the imports)
ADAPT_CODE = [f"tasks/{m}.py" for m in (
    "cli", "core/config", "core/errors", "core/files", "core/native", "core/plugins", "core/sections", "core/suite",
    "imaging/data", "imaging/dicom", "imaging/films", "imaging/images", "imaging/preprocess", "measure/inference",
    "measure/intervals", "measure/metrics", "measure/ood", "measure/plots", "measure/reference",
    "measure/subgroups", "records/registry", "scoring/contract", "scoring/pyfunc_model", "scoring/server_log",
    "scoring/serving", "sites/adapt", "sites/films", "sites/finetune", "sites/package", "sites/stage",
    "sources/__init__", "sources/folder", "training/augment")]
GATE_CODE = [f"tasks/{m}.py" for m in (
    "cli", "core/config", "core/errors", "core/files", "core/plugins", "core/sections", "imaging/intended_use",
    "measure/intervals", "measure/metrics", "measure/subgroups", "records/card", "records/registry",
    "sites/gate", "sites/stage")]


def check_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise StepError(f"site name {name!r}: use lower-case letters, digits and '-' (it becomes the registry "
                        "alias site-<name>), e.g. --site st-mary")
    return name


def folder(p: Params, name: str) -> Path:
    return Path(p.paths.sites) / check_name(name)


def alias(name: str) -> str:
    from tasks.records.registry import site_alias

    return site_alias(check_name(name))


def files(p: Params, name: str) -> dict[str, Path]:
    """Every file of a site, by role."""
    f = folder(p, name)
    return {"config": f / "site.yaml", "worklist": f / "worklist.csv", "sheet": f / "contact_sheet.png",
            "labels": f / "labels.csv", "model": f / "model", "package": f / "package", "report": f / "report.json",
            "predictions": f / "predictions.csv", "registry": f / "registry.json", "figure": f / "site_scores.png",
            "measure": f / "measure.csv", "evidence": f / "evidence.csv", "reviewed": f / "reviewed.csv",
            "card": f / "model_card.md", "card_html": f / "model_card.html"}


def read(p: Params, name: str) -> dict:
    path = files(p, name)["config"]
    if not path.exists():
        raise StepError(f"site {name!r} is not set up ({path} missing): run `pneumonia-site query --site {name} "
                        "--images DIR` first")
    return yaml.safe_load(path.read_text())


def write(p: Params, name: str, images: str | Path, source_model: str) -> dict:
    """Write site.yaml and the site's dvc.yaml; returns the site config."""
    cfg = {"name": name, "images": str(Path(images).resolve()), "source_model": source_model}
    f = files(p, name)
    f["config"].parent.mkdir(parents=True, exist_ok=True)
    f["config"].write_text(yaml.safe_dump(cfg, sort_keys=False))
    (f["config"].parent / "dvc.yaml").write_text(yaml.safe_dump(stages(p, name, cfg), sort_keys=False))
    return cfg


def remember_labels(p: Params, name: str, labels: str | Path) -> None:
    """Record the md5 of the reviewer's file the site was last adapted on (the site flow adapts again only when
    it changes); not a stage param, so it reruns nothing by itself."""
    from tasks.core.files import file_md5

    path = files(p, name)["config"]
    cfg = yaml.safe_load(path.read_text())
    cfg["labels_md5"] = file_md5(labels)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def stages(p: Params, name: str, cfg: dict) -> dict:
    """The site's DVC pipeline, run from the repository root (`wdir`), paths relative to it."""
    f = {k: str(v) for k, v in files(p, name).items()}
    depth = "/".join([".."] * len(Path(f["config"]).parent.parts))
    site_params = {f["config"]: ["images", "source_model"]}
    # the operating point follows the pipeline's calibration and threshold method (tasks.sites.finetune.site_point)
    point = ["evaluate.calibrate", "evaluate.threshold",
             *([f"evaluate.{p.evaluate.threshold}"] if p.evaluate.setting() is not None else [])]
    return {"stages": {
        "adapt": {"wdir": depth, "cmd": f"python -m tasks.sites.adapt {name}",
                  "deps": [cfg["images"], f["labels"], *([f["measure"]] if Path(f["measure"]).exists() else []),
                           p.paths.pixels, p.paths.split, *ADAPT_CODE],
                  "params": ["sites", *point, site_params],
                  "outs": [f["model"], f["package"], {f["predictions"]: {"cache": False}},
                           {f["figure"]: {"cache": False}}, {f["evidence"]: {"cache": False}}],
                  "metrics": [{f["report"]: {"cache": False}}]},
        "register": {"wdir": depth, "cmd": f"python -m tasks.sites.gate {name}",
                     "deps": [f["package"], f["report"], f["evidence"], *GATE_CODE],
                     "params": [{"params.yaml": ["sites.metric", "sites.min_improvement", "sites.margin",
                                                  "sites.bootstrap", "sites.seed", "register.model_name",
                                                  "register.min_sensitivity", "register.min_specificity"]}],
                     "outs": [{f["registry"]: {"cache": False}}, {f["card"]: {"cache": False}},
                              {f["card_html"]: {"cache": False}}]}}}


def main(label: str, doc: str, work, argv: list[str] | None = None) -> None:
    """`python -m tasks.sites.<stage> NAME`: `work(params, NAME)` for one site, through the one runner
    (tasks.cli.guard: a StepError or a full disk is one line, exit 2)."""
    from tasks.core import config

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print(doc)
        sys.exit(0 if args and args[0] in ("-h", "--help") else EXIT_REJECTED)
    configure_logging()
    guard(label, lambda: work(config.load(), args[0]))
