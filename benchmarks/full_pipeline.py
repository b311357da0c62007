"""The whole pipeline on the real train split with the default params: wall time and peak memory per stage.

    python benchmarks/full_pipeline.py [--fractions 0.25 0.5 1.0] [--data ../shared/data/chest_xray]

Each fraction copies every k-th image of the train split, and the whole test split when the data has one (as
the README's real-data run reads it), into a temporary checkout of this repo, points ingest at it and runs
each DVC stage as its own process; peak memory is that process's maximum resident set size. Prints the CPU
first, and per fraction the whole pipeline (ingest to register: goal 10 minutes, peak 2 GiB) and train +
evaluate. `--keep DIR` keeps each run's reports and models (its package serves drift_detection.py and
site_curve.py as `--model-uri DIR/models-<fraction>/package`).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from machine import cpu

REPO = Path(__file__).resolve().parents[1]


def copy_subset(src: Path, dest: Path, fraction: float) -> int:
    files = sorted(src.glob("train/*/*.jpeg"))
    step = round(1 / fraction)
    chosen = files[::step] + sorted(src.glob("test/*/*.jpeg"))
    for f in chosen:
        (dest / f.parent.parent.name / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest / f.parent.parent.name / f.parent.name / f.name)
    return len(files[::step])


def run_stage(stage: str, cwd: Path, env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `python -m tasks.<stage>` in cwd."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", f"tasks.{stage}"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{stage} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(REPO.parent / "shared/data/chest_xray"))
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--keep", type=Path, help="copy each run's reports/ and models/ here (reports-<fraction>, ...)")
    args = ap.parse_args()
    stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    print(cpu())
    for fraction in args.fractions:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            n = copy_subset(Path(args.data), tmp / "source" / "chest_xray", fraction)
            work = tmp / "repo"
            shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(".venv", "data", "models", "reports", "mlruns",
                                                                       ".git", "__pycache__"))
            params = yaml.safe_load((work / "params.yaml").read_text())
            params["ingest"].update(source="folder", input=str(tmp / "source" / "chest_xray"))
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            env = {**os.environ, "PYTHONPATH": str(work), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlruns/m.db"}
            print(f"\n== {n} images ({fraction:.0%} of the train split)")
            measured = {}  # stage -> (seconds, peak MiB)
            for stage in stages:
                measured[stage] = seconds, peak = run_stage(stage, work, env)
                print(f"{stage:>9}: {seconds:7.1f} s   peak {peak:7.0f} MiB")
            goal = [measured["train"], measured["evaluate"]]
            print(f"    train + evaluate: {sum(sec for sec, _ in goal) / 60:.1f} min, "
                  f"peak {max(mib for _, mib in goal):.0f} MiB")
            if args.keep:
                for folder in ("reports", "models"):
                    shutil.copytree(work / folder, args.keep / f"{folder}-{fraction}", dirs_exist_ok=True)
            test = json.loads((work / "reports/metrics.json").read_text())["test"]
            total = sum(sec for sec, _ in measured.values())
            print(f"    pipeline, ingest to register: {total / 60:.1f} min (goal 10), peak "
                  f"{max(mib for _, mib in measured.values()):.0f} MiB (goal 2,048)")
            print(f"    test split: accuracy {test['accuracy']:.3f}, sensitivity {test['recall']:.3f}, "
                  f"specificity {test['specificity']:.3f}, ROC-AUC {test['roc_auc']:.4f}")


if __name__ == "__main__":
    main()
