"""Quality and speed of a training setting over seeds: train + evaluate on the prepared data, one row each.

    python benchmarks/seeds.py --seeds 0 1 2 --set train.precision=float32 --set train.precision=bfloat16
        [--out reports/seeds.jsonl]

Run in a scratch checkout whose `dvc repro split` has prepared the real data (`pneumonia-pipeline
ingest.source=folder ...` does): for each `--set` (a params override, or several joined by `,`;
`model.fast_cnn.filters=[48,96,192],train.epochs=15` is one) and seed it
sets params.yaml (`flows.overrides.set_params`), runs `python -m tasks.train` and `python -m tasks.evaluate`
(no DVC, no registry), and appends the CPU, the setting, the seed, the training seconds and img/s, the best
validation AUC, the test split's accuracy, AUC, sensitivity and specificity, and the worst of evaluate's
simulated acquisition shifts (its validation balanced-accuracy drop, points) to `--out`; rows already
there are skipped. Prints a mean +- spread table per setting. params.yaml is restored at the end.
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from machine import cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="settings", action="append", required=True)
    ap.add_argument("--out", default="reports/seeds.jsonl")
    args = ap.parse_args()

    from flows.overrides import set_params, split

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["setting"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())} if out.exists() else set()
    shutil.copy("params.yaml", "params.yaml.seeds-backup")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still restores params.yaml
    try:
        for setting in args.settings:
            for seed in args.seeds:
                if (setting, seed) in done:
                    continue
                shutil.copy("params.yaml.seeds-backup", "params.yaml")
                set_params([*split(setting), f"train.seed={seed}"])
                for step in ("train", "evaluate"):
                    subprocess.run([sys.executable, "-m", f"tasks.{step}"], check=True, stdout=subprocess.DEVNULL)
                t = json.loads(Path("reports/train.json").read_text())
                metrics = json.loads(Path("reports/metrics.json").read_text())
                m, stress = metrics["test"], metrics["stress"]
                worst = max(stress, key=lambda shift: stress[shift]["drop_balanced_accuracy"])
                row = {"cpu": cpu(), "setting": setting, "seed": seed, "seconds": t["seconds"],
                       "images_per_second": t["images_per_second"], "epochs": t["epochs"],
                       "best_val_auc": t["best_val_auc"],
                       **{k: round(m[k], 4) for k in ("accuracy", "roc_auc", "recall", "specificity")},
                       "worst_shift": worst,
                       "worst_shift_drop": round(100 * stress[worst]["drop_balanced_accuracy"], 2)}
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    finally:
        shutil.move("params.yaml.seeds-backup", "params.yaml")
    summarize(out)


def summarize(path: Path) -> None:
    import pandas as pd

    rows = pd.DataFrame(map(json.loads, path.read_text().splitlines()))
    keys = ["images_per_second", "seconds", "best_val_auc", "roc_auc", "accuracy", "specificity", "worst_shift_drop"]
    keys = [k for k in keys if k in rows]  # rows of older runs have no shift column
    print("| setting | seeds | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 2))
    for setting, g in rows.groupby("setting", sort=False):
        print(f"| {setting} | {len(g)} | " + " | ".join(f"{g[k].mean():.4g} ± {g[k].std(ddof=0):.2g}" for k in keys)
              + " |")


if __name__ == "__main__":
    main()
