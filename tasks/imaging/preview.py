"""A picture of the data: sample images per class and source split, and the class balance."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from tasks.core.files import out_path


def data_preview(manifest: pd.DataFrame, pixels: np.ndarray, path: str, per_cell: int = 4, seed: int = 0) -> str:
    """Save a grid (rows: split x class, `per_cell` samples each) beside a class-balance bar chart."""
    groups = list(manifest.groupby(["source_split", "class"]).groups.items())
    rng = np.random.default_rng(seed)
    fig = plt.figure(figsize=(2 * per_cell + 4, 2 * max(len(groups), 1) + 0.5))
    grid = fig.add_gridspec(max(len(groups), 1), per_cell + 2)
    for r, ((split, cls), idx) in enumerate(groups):
        picks = rng.choice(np.asarray(idx), size=min(per_cell, len(idx)), replace=False)
        for c, i in enumerate(picks):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(pixels[i], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(f"{split}\n{cls}", fontsize=9)
    ax = fig.add_subplot(grid[:, per_cell:])
    counts = manifest.groupby(["source_split", "class"]).size().unstack(fill_value=0)
    counts.plot.bar(ax=ax, color=["#4c72b0", "#dd8452"][: counts.shape[1]], rot=0)
    ax.set_title("images per class")
    for container in ax.containers:
        ax.bar_label(container, fontsize=8)
    fig.suptitle(f"{len(manifest)} images, {manifest.patient_id.nunique()} patients")
    fig.tight_layout()
    fig.savefig(out_path(path), dpi=90)
    plt.close(fig)
    return path
