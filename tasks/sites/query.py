"""Which of a site's unlabelled films to label: a few strategies over the source model's own view of them.

Each strategy takes the films' penultimate features (N, D), calibrated probabilities (N,) and
out-of-distribution scores (N,), the indices already labelled, a budget and a seed, and returns
`(indices, reasons)`: the films to label, in order, and why each was chosen (the worklist prints it).

- `random`: a uniform draw (the control every other strategy is measured against).
- `typiclust` (Hacohen, Dekel and Weinshall, ICML 2022): k-means into `labelled + budget` clusters on the
  L2-normalised features; from each of the largest clusters that holds no labelled film, its most typical
  film (the inverse mean distance to its nearest neighbours). Representative: it covers the site's modes.
- `badge` (Ash et al., ICLR 2020): k-means++ seeding on the gradient embedding (p - y_hat) * features of the
  last layer, so films the model is unsure of (large gradient) and unlike each other are taken.
- `ood`: the films farthest from the training images (highest ood_score). The errors at a new site are
  confident false positives on normal films, which uncertainty alone does not find.
"""
from __future__ import annotations

import numpy as np

STRATEGIES = ("random", "typiclust", "badge", "ood")


def random(features, prob, ood_score, labelled, budget, seed):
    pool = np.setdiff1d(np.arange(len(prob)), labelled)
    chosen = np.random.default_rng(seed).choice(pool, size=min(budget, len(pool)), replace=False)
    return chosen, ["random draw"] * len(chosen)


def _unit(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float64)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def typicality(points: np.ndarray, k: int = 20) -> np.ndarray:
    """1 / mean Euclidean distance to the k nearest other points (TypiClust's density)."""
    if len(points) < 2:
        return np.ones(len(points))
    d = np.sqrt(np.maximum(((points[:, None] - points[None]) ** 2).sum(-1), 0))
    k = min(k, len(points) - 1)
    nearest = np.sort(d, axis=1)[:, 1:k + 1]
    return 1.0 / np.maximum(nearest.mean(axis=1), 1e-12)


def typiclust(features, prob, ood_score, labelled, budget, seed):
    from sklearn.cluster import KMeans

    x = _unit(features)
    labelled = np.asarray(labelled, int)
    n_clusters = min(len(labelled) + budget, len(x))
    clusters = KMeans(n_clusters, n_init=3, random_state=seed).fit_predict(x)
    covered = set(clusters[labelled].tolist())
    sizes = np.bincount(clusters, minlength=n_clusters)
    order = [c for c in np.argsort(-sizes, kind="stable") if c not in covered]
    chosen, reasons = [], []
    taken = set(labelled.tolist())
    for c in order:
        members = np.array([i for i in np.flatnonzero(clusters == c) if i not in taken])
        if not len(members):
            continue
        best = members[np.argmax(typicality(x[members]))]
        chosen.append(best), taken.add(best)
        reasons.append(f"typiclust: most typical film of a group of {sizes[c]} similar films")
        if len(chosen) == budget:
            break
    if len(chosen) < budget:  # more budget than uncovered clusters: fill with a random draw
        extra, why = random(features, prob, ood_score, np.array(sorted(taken)), budget - len(chosen), seed)
        chosen, reasons = chosen + list(extra), reasons + why
    return np.array(chosen, int), reasons


def badge(features, prob, ood_score, labelled, budget, seed):
    prob = np.asarray(prob, np.float64)
    grad = (prob - (prob >= 0.5))[:, None] * np.asarray(features, np.float64)  # last-layer gradient, y_hat = label
    pool = np.setdiff1d(np.arange(len(prob)), labelled)
    rng = np.random.default_rng(seed)
    norms = np.linalg.norm(grad[pool], axis=1)
    chosen = [pool[np.argmax(norms)]]
    nearest = ((grad[pool] - grad[chosen[0]]) ** 2).sum(1)
    while len(chosen) < min(budget, len(pool)):
        weights = nearest / nearest.sum() if nearest.sum() > 0 else np.full(len(pool), 1 / len(pool))
        nxt = pool[rng.choice(len(pool), p=weights)]
        chosen.append(nxt)
        nearest = np.minimum(nearest, ((grad[pool] - grad[nxt]) ** 2).sum(1))
    reasons = [f"badge: uncertain and unlike the others (P={prob[i]:.2f})" for i in chosen]
    return np.array(chosen, int), reasons


def ood(features, prob, ood_score, labelled, budget, seed):
    pool = np.setdiff1d(np.arange(len(prob)), labelled)
    chosen = pool[np.argsort(-np.asarray(ood_score)[pool], kind="stable")[:budget]]
    return chosen, [f"ood: unlike the training films (ood_score {ood_score[i]:.2f})" for i in chosen]


def select(strategy: str, features, prob, ood_score, labelled, budget: int, seed: int):
    """(indices, reasons) of `budget` films to label that are not in `labelled`, by `strategy`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"sites.query must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    labelled = np.asarray(labelled, int)
    budget = min(budget, len(prob) - len(labelled))
    if budget <= 0:
        return np.zeros(0, int), []
    idx, reasons = globals()[strategy](features, prob, ood_score, labelled, budget, seed)
    return np.asarray(idx, int), list(reasons)
