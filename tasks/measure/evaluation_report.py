"""What evaluate prints: the reference article's block, the test split's intervals, the stress test's worst
shift, the out-of-distribution flag and the operating point (every number from tasks.evaluate's Evaluation)."""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from tasks.core.config import Params
from tasks.measure import intervals, ood

log = logging.getLogger("tasks.evaluate")


def summary_block(test: dict, train_acc: float | None) -> str:
    """The reference article's printout, so results compare at a glance."""
    lines = ["CONFUSION MATRIX ------------------", f"[[{test['tn']:4d} {test['fp']:4d}]",
             f" [{test['fn']:4d} {test['tp']:4d}]]", "", "TEST METRICS ----------------------",
             f"Accuracy: {100 * test['accuracy']:.1f}%", f"Precision: {100 * test['precision']:.1f}%",
             f"Recall: {100 * test['recall']:.1f}%", f"Specificity: {100 * test['specificity']:.1f}%",
             f"F1-score: {100 * test['f1']:.1f}", f"ROC-AUC: {test['roc_auc']:.4f}",
             f"Best threshold's accuracy: {100 * test['best_threshold_accuracy']:.1f}% (the operating point costs "
             f"{100 * (test['best_threshold_accuracy'] - test['accuracy']):.1f} points; the rest is the ranking)", "",
             "TRAIN METRIC ----------------------"]
    lines.append(f"Train acc: {100 * train_acc:.1f}%" if train_acc is not None else "Train acc: n/a")
    return "\n".join(lines)


def report(p: Params, ev) -> None:
    """The printout: the reference article's block, the stress test's worst shift, the operating point."""
    history = pd.read_csv(p.paths.history) if Path(p.paths.history).exists() else None
    train_acc = float(history.accuracy.iloc[-1]) if history is not None else None
    log.info(summary_block(ev.metrics["test"], train_acc))
    ci = ev.metrics.get("test_intervals")
    if ci:
        shown = ", ".join(f"{intervals.NAMES[k]} [{ci[k][0]:.3f}, {ci[k][1]:.3f}]" for k in intervals.SHOWN)
        log.info(f"evaluate: test 95 % intervals over {ci['patients']} patients ({ci['films']} films): {shown}")
    worst = max(ev.metrics["stress"].items(), key=lambda kv: kv[1]["drop_balanced_accuracy"])
    log.info(f"evaluate: stress test: worst shift `{worst[0]}` costs {100 * worst[1]['drop_balanced_accuracy']:.1f} "
          "points of balanced accuracy on validation")
    o = ev.metrics["ood"]
    flagged = ", ".join(f"{k} {100 * o[f'flagged_{k}']:.0f} %" for k in ood.KINDS)
    log.info(f"evaluate: out-of-distribution flag passes {100 * o['val_pass']:.1f} % of validation and "
          f"{100 * o['test_pass']:.1f} % of test X-rays; flags {flagged}")
    log.info(f"evaluate: threshold {ev.op['threshold']:.3f} ({p.evaluate.threshold}, chosen on validation), "
          f"{p.evaluate.calibrate} calibration T={ev.op['temperature']:.2f} b={ev.op['bias']:+.2f}; "
          f"metrics -> {p.paths.metrics}; figures -> {p.paths.figures}")
