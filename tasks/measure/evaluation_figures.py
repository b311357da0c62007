"""What evaluate draws and writes for `dvc plots`: the test split's ROC, PR and confusion files, and every
evaluation figure (training curves, confusion matrix, ROC and PR, reliability, score shift, misclassified
films, Grad-CAM). Pictures only: every number is computed by tasks.evaluate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from tasks.core.config import Params
from tasks.core.files import out_path
from tasks.measure import plots


def write_curves(y, prob, predicted, folder: str) -> None:
    """The test split's ROC and PR curves and its (actual, predicted) classes, as small CSVs for `dvc plots`."""
    fpr, tpr, _ = skm.roc_curve(y, prob)
    pd.DataFrame({"fpr": fpr, "tpr": tpr}).to_csv(out_path(Path(folder) / "roc.csv"), index=False)
    precision, recall, _ = skm.precision_recall_curve(y, prob)
    pd.DataFrame({"recall": recall, "precision": precision}).to_csv(Path(folder) / "pr.csv", index=False)
    names = np.array(["NORMAL", "PNEUMONIA"])
    pd.DataFrame({"actual": names[np.asarray(y, int)], "predicted": names[np.asarray(predicted, int)]}).to_csv(
        Path(folder) / "confusion.csv", index=False)


def figures(p: Params, model, x_test, y_test, prob_test, raw_test, test_m: dict, val: tuple, pred) -> list[str]:
    """Every evaluation figure; returns their paths."""
    from tasks.measure.gradcam import heatmaps

    fig = Path(p.paths.figures)
    out = []
    history = Path(p.paths.history)
    if history.exists():
        out.append(plots.training_curves(pd.read_csv(history), fig / "training_curves.png"))
    out.append(plots.confusion(test_m, fig / "confusion_matrix.png", "test confusion matrix"))
    out.extend(plots.roc_pr(y_test, prob_test, test_m, fig / "roc.png", fig / "pr.png"))
    out.append(plots.reliability(y_test, {"raw": raw_test, "calibrated": prob_test}, fig / "reliability.png"))
    out.append(plots.score_shift(*val, y_test, prob_test, test_m["threshold"], fig / "score_shift.png"))
    wrong = np.flatnonzero(pred != y_test.astype(bool))[:18]
    names = np.array(["NORMAL", "PNEUMONIA"])
    caps = [f"true {names[int(y_test[i])]}\np={prob_test[i]:.2f}" for i in wrong]
    out.append(plots.image_grid(x_test[wrong, ..., 0], caps, fig / "misclassified.png",
                                f"misclassified test images ({len(np.flatnonzero(pred != y_test))} in all)"))
    k = p.evaluate.gradcam
    right = np.flatnonzero(pred == y_test.astype(bool))[:k]
    chosen = np.concatenate([right, wrong[:k]]).astype(int)
    if len(chosen):
        caps = [("correct" if pred[i] == y_test[i] else "WRONG") + f" {names[int(y_test[i])]}\np={prob_test[i]:.2f}"
                for i in chosen]
        out.append(plots.image_grid(x_test[chosen, ..., 0], caps, fig / "gradcam.png", "Grad-CAM (test)",
                                    overlays=heatmaps(model, x_test[chosen]), cols=max(k, 1)))
    return out
