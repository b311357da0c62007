"""Draw a sweep's results per set: each seed a dot, the mean a bar, validation beside test.

    .venv/bin/python benchmarks/plot_grid.py reports/sweep.json [more sweep.json ...] -o docs/generalization.png

Reads the `results` rows the `pneumonia-sweep` flow writes (several files may be merged: sets of the same
name pool their seeds). Test columns are shown to read the result, never to choose.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [("val_roc_auc", "validation ROC-AUC"), ("test_roc_auc", "test ROC-AUC"),
          ("test_accuracy", "test accuracy at the chosen threshold"),
          ("test_best_threshold_accuracy", "test accuracy at the best threshold")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path("reports/sweep.png"))
    args = ap.parse_args()
    sets: dict[str, list[dict]] = {}
    for f in args.files:
        for row in json.loads(f.read_text())["results"]:
            sets.setdefault(row.get("set", row["name"]), []).append(row)
    names = list(sets)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4 * len(PANELS), 0.5 * len(names) + 1.8), sharey=True)
    for ax, (key, title) in zip(axes, PANELS):
        for i, name in enumerate(names):
            values = [r[key] for r in sets[name] if key in r]
            if values:
                ax.plot(values, [i] * len(values), "o", color="tab:blue", alpha=0.6)
                ax.plot([sum(values) / len(values)] * 2, [i - 0.3, i + 0.3], "-", color="k")
        ax.set_title(title, fontsize=10), ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), [f"{n} ({len(sets[n])})" for n in names])
    axes[0].invert_yaxis()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"{len(names)} sets, {sum(map(len, sets.values()))} runs -> {args.out}")


if __name__ == "__main__":
    main()
