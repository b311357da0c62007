"""Has a batch of a site's films drifted from the model's reference? Three two-sample tests, pure numpy/scipy.

The reference (tasks.measure.reference) holds the penultimate features, calibrated probabilities and out-of-distribution
scores of held-out validation films, the acquisition the model was trained on. A batch is compared on:
- `features`: maximum mean discrepancy (RBF kernel on the features whitened on the pooled films' first
  `components` principal axes, bandwidth the median pooled distance) with a permutation p-value: ref and
  batch labels are shuffled `permutations` times over the pooled films, and nothing in the statistic depends
  on the labels but the split, so the p-value is exact under exchangeability, whatever the dimension;
- `scores`: Kolmogorov-Smirnov on the probabilities (the score distribution, hence the pneumonia rate);
- `ood`: a one-sided binomial test of the share flagged out of distribution against the reference's.
Drift is called when any p-value is under alpha / 3 (Bonferroni: the three tests together false-alarm at
most alpha on films like the reference).
"""
from __future__ import annotations

import numpy as np

TESTS = ("features", "scores", "ood")


def whiten(pooled: np.ndarray, components: int) -> np.ndarray:
    """Films on the pooled films' first `components` principal axes, each scaled to unit variance.

    Fitted on reference and batch together, so the transform is the same under every relabelling and the
    permutation p-value stays exact (fitted on the reference alone, its own films come out more regular than
    any batch's, a false alarm of its own). Whitened, a direction the films barely vary along weighs as much
    as the class direction that dominates raw penultimate features; on standardised raw features the test saw
    next to none of the site's drift (docs/lab/monitoring.md)."""
    centred = pooled - pooled.mean(axis=0)
    _, singular, axes = np.linalg.svd(centred, full_matrices=False)
    k = max(1, min(components, len(pooled) - 1, pooled.shape[1]))
    return centred @ (axes[:k].T / (singular[:k] / np.sqrt(len(pooled)) + 1e-9))


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def mmd(ref: np.ndarray, batch: np.ndarray, components: int = 20, permutations: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(MMD^2, permutation p-value) between reference (m, D) and batch (n, D) features, whitened on the pooled
    films' first `components` principal axes."""
    m, n = len(ref), len(batch)
    pooled = whiten(np.concatenate([np.asarray(ref, np.float64), np.asarray(batch, np.float64)]), components)
    distances = _sq_dist(pooled, pooled)
    bandwidth = np.median(distances[np.triu_indices(m + n, 1)])  # of the pooled films: the same under relabelling
    kernel = np.exp(-distances / max(bandwidth, 1e-12))
    rng = np.random.default_rng(seed)
    signs = np.empty((permutations + 1, m + n))
    signs[0] = np.r_[np.full(m, 1 / m), np.full(n, -1 / n)]  # row 0: the observed split
    for i in range(1, permutations + 1):
        signs[i] = signs[0][rng.permutation(m + n)]
    stats = ((signs @ kernel) * signs).sum(axis=1)  # biased MMD^2 of each split
    return float(stats[0]), float((1 + np.sum(stats[1:] >= stats[0])) / (1 + permutations))


def sample(n: int, max_films: int, seed: int) -> np.ndarray:
    """The films of a batch of `n` the feature test takes: all, or `max_films` of them drawn (seeded)."""
    return np.random.default_rng(seed).choice(n, max_films, replace=False) if n > max_films else np.arange(n)


def compare(reference: dict, features: np.ndarray, probability: np.ndarray, ood_score: np.ndarray,
            alpha: float, components: int, permutations: int, max_films: int, seed: int) -> dict:
    """The three tests of a batch against `reference` (tasks.measure.reference.fit). The scores and
    out-of-distribution tests take every film; `features` are every film's (then `sample` draws `max_films` for
    the feature test, whose cost grows with the square of the films) or those of a sample already drawn (fewer
    rows than films: a scores table, whose films' features are computed for the sample only)."""
    from scipy import stats

    n = len(probability)
    tested = features[sample(n, max_films, seed)] if len(features) == n else features
    statistic, p_features = mmd(reference["features"], tested, components, permutations, seed)
    ks = stats.ks_2samp(probability, reference["probability"])
    flagged = int(np.sum(ood_score > 1))
    expected = float(np.clip(np.mean(reference["ood_score"] > 1), 1 / len(reference["ood_score"]), 1))
    p_ood = float(stats.binomtest(flagged, n, expected, alternative="greater").pvalue)
    threshold = reference["threshold"]
    out = {"films": n, "alpha": alpha,
           "features": {"statistic": statistic, "p_value": p_features, "films_tested": int(len(tested))},
           "scores": {"statistic": float(ks.statistic), "p_value": float(ks.pvalue)},
           "ood": {"statistic": flagged / n, "p_value": p_ood, "reference": expected},
           "pneumonia_rate": float(np.mean(probability >= threshold)),
           "pneumonia_rate_reference": float(np.mean(reference["probability"] >= threshold)),
           "median_probability": float(np.median(probability)),
           "median_probability_reference": float(np.median(reference["probability"]))}
    out["drifted"] = [t for t in TESTS if out[t]["p_value"] < alpha / len(TESTS)]
    out["drift"] = bool(out["drifted"])
    return out
