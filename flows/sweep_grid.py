"""The sweep's grid and results, pure: the parameter sets a grid file expands to, the validation-only scores
an experiment is selected on, the choice of the best set over seeds and the markdown results table
(flows/sweep.py runs the experiments)."""
from __future__ import annotations


def selection_scores(metrics: dict) -> dict[str, float]:
    """Validation-only scores a grid can select on.

    `val_roc_auc`: ranking on clean validation. `val_worst_balanced_accuracy`: balanced accuracy at the
    chosen threshold on clean validation or under its worst simulated acquisition shift, whichever is lower
    (clean validation AUC saturates near 1 on this data; robustness to shift is what transfers).
    """
    worst = min([metrics["val"]["balanced_accuracy"]] + [m["balanced_accuracy"] for m in metrics["stress"].values()])
    return {"val_roc_auc": metrics["val"]["roc_auc"], "val_worst_balanced_accuracy": worst}


def result_row(name: str, overrides: dict, metrics: dict, train: dict) -> dict:
    val, test = metrics["val"], metrics["test"]
    worst = max(metrics["stress"].items(), key=lambda kv: kv[1]["drop_balanced_accuracy"])
    return {"name": name, "overrides": overrides, **selection_scores(metrics),
            "val_balanced_accuracy": val["balanced_accuracy"],
            "val_specificity_at_95_sensitivity": val["specificity_at_95_sensitivity"], "val_ece": val["ece"],
            "worst_shift": worst[0], "worst_shift_drop": worst[1]["drop_balanced_accuracy"],
            "test_accuracy": test["accuracy"], "test_recall": test["recall"], "test_specificity": test["specificity"],
            "test_roc_auc": test["roc_auc"], "test_best_threshold_accuracy": test["best_threshold_accuracy"],
            "test_specificity_at_95_sensitivity": test["specificity_at_95_sensitivity"],
            "train_seconds": train["seconds"], "epochs": train["epochs"],
            "stress_drop_balanced_accuracy": {k: m["drop_balanced_accuracy"] for k, m in metrics["stress"].items()}}


def expand(spec: dict) -> list[tuple[str, str, dict]]:
    """(set, experiment name, overrides) for every set of the grid, once per seed when `seeds` is given."""
    common, seeds = spec.get("common") or {}, spec.get("seeds")
    out = []
    for name, overrides in spec["experiments"].items():
        overrides = {**common, **(overrides or {})}
        if seeds:
            out.extend((name, f"{name}-s{seed}", {**overrides, "train.seed": seed}) for seed in seeds)
        else:
            out.append((name, name, overrides))
    return out


def by_set(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows grouped by their set, in the order the sets first ran."""
    sets: dict[str, list[dict]] = {}
    for r in rows:
        sets.setdefault(r["set"], []).append(r)
    return sets


def choose(rows: list[dict], select: str) -> tuple[str, str]:
    """(best set, its best experiment): the set with the highest mean `select` over its seeds (validation
    only, never test), and within it the seed that scored highest, whose model goes to the registry."""
    sets = by_set(rows)
    best_set = max(sets, key=lambda k: sum(r[select] for r in sets[k]) / len(sets[k]))
    return best_set, max(sets[best_set], key=lambda r: r[select])["name"]


COLUMNS = [("val_roc_auc", "val AUC", 1, 4), ("val_balanced_accuracy", "val bal. acc", 100, 1),
           ("worst_shift_drop", "worst shift drop (pts)", 100, 1), ("test_accuracy", "test acc", 100, 1),
           ("test_recall", "test sens", 100, 1), ("test_specificity", "test spec", 100, 1),
           ("test_roc_auc", "test AUC", 1, 3), ("test_best_threshold_accuracy", "test acc at best threshold", 100, 1),
           ("test_specificity_at_95_sensitivity", "test spec at 95 % sens", 100, 1)]


def mean_sd(values: list[float], scale: float, digits: int) -> str:
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{scale * mean:.{digits}f}"
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{scale * mean:.{digits}f} ± {scale * sd:.{digits}f}"


def table(rows: list[dict], select: str, best: str) -> str:
    """Markdown: one row per set (mean ± sd over its seeds), the selected set in bold. The test columns are
    reported, never used to choose."""
    head = ("| experiment | changes | seeds | " + " | ".join(c[1] for c in COLUMNS) + " | train |\n|"
            + "---|" * (len(COLUMNS) + 4))
    lines = [head]
    for name, group in by_set(rows).items():
        label = f"**{name}**" if name == best else name
        changes = ", ".join(f"`{k}={v}`" for k, v in group[0]["overrides"].items() if k != "train.seed") or "defaults"
        cells = [mean_sd([r[key] for r in group], scale, digits) for key, _, scale, digits in COLUMNS]
        minutes = mean_sd([r["train_seconds"] / 60 for r in group], 1, 1)
        lines.append(f"| {label} | {changes} | {len(group)} | " + " | ".join(cells) + f" | {minutes} min |")
    return "\n".join(lines) + f"\n\nSelected on the mean `{select}` over seeds (validation only): **{best}**.\n"
