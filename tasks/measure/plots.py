"""Evaluation figures (matplotlib, Agg). Each function saves one PNG and returns its path."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from tasks.core.files import out_path  # noqa: E402


def _save(fig, path) -> str:
    fig.tight_layout()
    fig.savefig(out_path(path), dpi=90)
    plt.close(fig)
    return str(path)


def training_curves(history: pd.DataFrame, path) -> str:
    """Loss and accuracy per epoch, train vs validation (the reference article's figure)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy", "auc")):
        ax.plot(history.epoch + 1, history[metric], "o-", label="train")
        ax.plot(history.epoch + 1, history[f"val_{metric}"], "o-", label="validation")
        ax.set_xlabel("epoch"), ax.set_title(metric), ax.legend()
    return _save(fig, path)


def confusion(m: dict, path, title: str) -> str:
    cm = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black", fontsize=14)
    ax.set_xticks([0, 1], ["NORMAL", "PNEUMONIA"]), ax.set_yticks([0, 1], ["NORMAL", "PNEUMONIA"])
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(f"{title}\nthreshold {m['threshold']:.3f}")
    return _save(fig, path)


def roc_pr(y, prob, threshold_metrics: dict, roc_path, pr_path) -> tuple[str, str]:
    fpr, tpr, _ = skm.roc_curve(y, prob)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, label=f"AUC {skm.roc_auc_score(y, prob):.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(1 - threshold_metrics["specificity"], threshold_metrics["recall"], "ro", label="operating point")
    ax.set_xlabel("1 - specificity"), ax.set_ylabel("sensitivity"), ax.set_title("ROC (test)"), ax.legend()
    roc = _save(fig, roc_path)
    precision, recall, _ = skm.precision_recall_curve(y, prob)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(recall, precision, label=f"AP {skm.average_precision_score(y, prob):.3f}")
    ax.plot(threshold_metrics["recall"], threshold_metrics["precision"], "ro", label="operating point")
    ax.set_xlabel("recall"), ax.set_ylabel("precision"), ax.set_title("precision-recall (test)"), ax.legend()
    return roc, _save(fig, pr_path)


def reliability(y, probs: dict[str, np.ndarray], path, bins: int = 10) -> str:
    """Reliability diagram: observed pneumonia fraction vs mean predicted probability per bin."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    edges = np.linspace(0, 1, bins + 1)
    for name, prob in probs.items():
        which = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
        pts = [(prob[which == b].mean(), np.asarray(y)[which == b].mean()) for b in range(bins) if (which == b).any()]
        ax.plot(*zip(*pts), "o-", label=name)
    ax.set_xlabel("predicted probability"), ax.set_ylabel("observed pneumonia fraction")
    ax.set_title("reliability (test)"), ax.legend()
    return _save(fig, path)


def image_grid(images: np.ndarray, captions: list[str], path, title: str, overlays=None, cols: int = 6) -> str:
    """Images with captions; `overlays` (heatmaps in [0, 1]) are drawn on top when given."""
    n = max(len(images), 1)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (img, caption) in enumerate(zip(images, captions)):
        ax = axes.ravel()[i]
        ax.imshow(img, cmap="gray")
        if overlays is not None:
            heat = np.ma.masked_less(overlays[i], 0.2)  # only where the model looked, not a blue wash everywhere
            ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1,
                      extent=(-0.5, img.shape[1] - 0.5, img.shape[0] - 0.5, -0.5))
        ax.set_title(caption, fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def score_shift(y_val, prob_val, y_test, prob_test, threshold: float, path, names=("validation", "test")) -> str:
    """Calibrated scores per class on validation and on test, with the threshold chosen on validation:
    a test split from another acquisition shows as normal images drifting toward the pneumonia side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    bins = np.linspace(0, 1, 26)
    for ax, label, name in ((axes[0], 0, "NORMAL"), (axes[1], 1, "PNEUMONIA")):
        for y, prob, split in ((y_val, prob_val, names[0]), (y_test, prob_test, names[1])):
            scores = np.asarray(prob)[np.asarray(y) == label]
            weights = np.full(len(scores), 1 / max(len(scores), 1))
            ax.hist(scores, bins=bins, weights=weights, alpha=0.55, label=f"{split} (n={len(scores)})")
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
        ax.set_title(f"true {name}"), ax.set_xlabel("calibrated P(pneumonia)"), ax.legend()
    axes[0].set_ylabel("share of the class")
    return _save(fig, path)


def ood_scores(named: dict, pass_rate: float, path) -> str:
    """The out-of-distribution score of each set on a log axis, with the threshold at 1: X-rays (validation,
    test) to its left, the generated non-X-rays to its right."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    values = {k: np.log10(np.maximum(np.asarray(v, float), 1e-3)) for k, v in named.items() if len(v)}
    bins = np.linspace(min(v.min() for v in values.values()), max(v.max() for v in values.values()), 50)
    for name, v in values.items():
        ax.hist(v, bins=bins, weights=np.full(len(v), 1 / len(v)), alpha=0.5, label=name,
                histtype="stepfilled" if name in ("val", "test") else "step", linewidth=1.5)
    ax.axvline(0, color="k", linestyle="--", label=f"threshold ({100 * pass_rate:g} % of validation passes)")
    ax.set_xlabel("log10 ood_score (Mahalanobis distance / threshold)"), ax.set_ylabel("share of the set")
    ax.set_title("Is it a chest X-ray like the training images?"), ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def drift(reference: dict, features, probability, ood_score, result: dict, path) -> str:
    """A batch beside the model's reference: the score distribution with the threshold, the out-of-distribution
    score, and the penultimate features on the reference's first two principal components."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    batch = f"batch (n={len(probability)})"
    ref = f"reference (n={len(reference['probability'])})"
    bins = np.linspace(0, 1, 26)
    for values, name in ((reference["probability"], ref), (probability, batch)):
        axes[0].hist(values, bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.55, label=name)
    axes[0].axvline(reference["threshold"], color="k", linestyle="--", label="threshold")
    axes[0].set_title(f"scores: KS p = {result['scores']['p_value']:.3g}"), axes[0].set_xlabel("P(pneumonia)")
    logs = [np.log10(np.maximum(np.asarray(v, float), 1e-3)) for v in (reference["ood_score"], ood_score)]
    bins = np.linspace(min(v.min() for v in logs), max(max(v.max() for v in logs), 0.1), 30)
    for values, name in zip(logs, (ref, batch)):
        axes[1].hist(values, bins=bins, weights=np.full(len(values), 1 / len(values)), alpha=0.55, label=name)
    axes[1].axvline(0, color="k", linestyle="--", label="out-of-distribution flag")
    axes[1].set_title(f"flagged {100 * result['ood']['statistic']:.1f} %: p = {result['ood']['p_value']:.3g}")
    axes[1].set_xlabel("log10 ood_score")
    mean = reference["features"].mean(axis=0)
    std = reference["features"].std(axis=0) + 1e-6
    _, _, components = np.linalg.svd((reference["features"] - mean) / std, full_matrices=False)
    for values, name in ((reference["features"], ref), (features, batch)):
        xy = ((np.asarray(values) - mean) / std) @ components[:2].T
        axes[2].scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.5, label=name)
    axes[2].set_title(f"features: MMD p = {result['features']['p_value']:.3g}")
    axes[2].set_xlabel("PC 1 of the reference"), axes[2].set_ylabel("PC 2")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("drift: " + (", ".join(result["drifted"]) if result["drift"] else "none"), fontsize=10)
    return _save(fig, path)
