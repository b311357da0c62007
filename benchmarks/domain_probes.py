"""Probes of the train -> test-split shift on one trained model (issue 14; none of them is a pipeline option).

    .venv/bin/python benchmarks/domain_probes.py --model models/model.keras features
    .venv/bin/python benchmarks/domain_probes.py --model models/model.keras dann --steps 200 --weight 0.3
    .venv/bin/python benchmarks/domain_probes.py --model models/model.keras sharpness

Run on the real data (`ingest.input: ../shared/data/chest_xray`, whose test split is the new acquisition).

`features`: where the shift lives and whether aligning the network's penultimate features closes it.
It prints, per class, how well a logistic regression tells validation (train acquisition) from test
features (5-fold AUC: 0.5 means the class looks the same at both sites), then the test AUC of heads
re-fitted on the train features: plain, after per-site standardisation, and after CORAL (the train
features re-coloured with the site's covariance, Sun et al. 2016).

`dann`: domain-adversarial fine-tuning (Ganin et al. 2016): the model keeps its classification loss on
train images while a small domain head, behind a gradient-reversal layer, tries to tell train from
site features, so the features are pushed to look alike at both sites.

`sharpness`: a shortcut the shift exposes. It prints each split's and class's median sharpness (the
standard deviation of the Laplacian of the stored image), then how much the model's pneumonia logit
rises when validation normals are blurred.

`features` and `dann` use the site's images without labels and cross-fit over the pipeline's own
patient folds of the test split (tasks/site.py): each fold is scored by what was fitted on the other.
Test labels are read only to print the AUCs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import config, site  # noqa: E402
from tasks import metrics as M  # noqa: E402
from tasks.data import augmenter, class_weights, load_splits  # noqa: E402
from tasks.preprocess import normalize  # noqa: E402


def auc(y, s) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def per_fold_auc(y, s, folds) -> float:
    """Mean of the folds' AUCs: each fold was scored by its own fitted head or model."""
    return float(np.mean([auc(y[folds == k], s[folds == k]) for k in np.unique(folds)]))


def _root(cov: np.ndarray, power: float) -> np.ndarray:
    w, v = np.linalg.eigh(cov)
    return (v * np.clip(w, 1e-8, None) ** power) @ v.T


def features(p, model, splits, folds) -> None:
    from sklearn.covariance import LedoitWolf
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tasks.inference import scores_and_features

    out = {s: scores_and_features(model, splits[s][0], p.train.normalize) for s in ("train", "val", "test")}
    y = {s: splits[s][1].astype(int) for s in out}
    for c, name in ((0, "normal"), (1, "pneumonia")):
        a, b = out["val"][1][y["val"] == c], out["test"][1][y["test"] == c]
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        sep = cross_val_score(probe, np.concatenate([a, b]), np.r_[np.zeros(len(a)), np.ones(len(b))],
                              cv=5, scoring="roc_auc").mean()
        print(f"{name:9s}: validation vs test features told apart with AUC {sep:.3f} ({len(a)} vs {len(b)} images)")
    xs, ys, xt = out["train"][1].astype(np.float64), y["train"], out["test"][1].astype(np.float64)
    mu, sd = xs.mean(0), xs.std(0) + 1e-6
    zs = (xs - mu) / sd
    head = LogisticRegression(max_iter=3000, class_weight="balanced").fit(zs, ys)
    rows = {"own head": out["test"][0], "re-fitted head": head.decision_function((xt - mu) / sd)}
    rows.update({"per-site standardisation": np.zeros(len(xt)), "CORAL": np.zeros(len(xt))})
    for k in np.unique(folds):
        fit_on, score = xt[folds != k], xt[folds == k]
        zt = (score - fit_on.mean(0)) / (fit_on.std(0) + 1e-6)
        rows["per-site standardisation"][folds == k] = head.decision_function(zt)
        zf = (fit_on - fit_on.mean(0)) / (fit_on.std(0) + 1e-6)
        recolour = _root(LedoitWolf().fit(zs).covariance_, -0.5) @ _root(LedoitWolf().fit(zf).covariance_, 0.5)
        coral = LogisticRegression(max_iter=3000, class_weight="balanced").fit(zs @ recolour, ys)
        rows["CORAL"][folds == k] = coral.decision_function(zt)
    for name, s in rows.items():
        print(f"test AUC, {name:25s} {per_fold_auc(y['test'], s, folds):.4f} (mean of the folds)")


def sharpness(p, model, splits) -> None:
    from scipy import ndimage

    from tasks.inference import raw_scores

    def sharp(images):
        return np.array([ndimage.laplace(i.astype(np.float32)).std() for i in images])

    for s in ("train", "val", "test"):
        x, y = splits[s]
        normal, pneumonia = np.median(sharp(x[y == 0])), np.median(sharp(x[y == 1]))
        print(f"{s:5s} median sharpness: normal {normal:.1f}, pneumonia {pneumonia:.1f}")
    normals = splits["val"][0][splits["val"][1] == 0]

    def logit(images):
        return M.logit(raw_scores(model, images, p.train.normalize))

    before = logit(normals)
    for sigma in (0.5, 0.8, 1.2):
        blurred = np.stack([ndimage.gaussian_filter(i.astype(np.float32), sigma) for i in normals])
        change = logit(np.clip(np.round(blurred), 0, 255).astype(np.uint8)) - before
        print(f"validation normals blurred (Gaussian sigma {sigma} px): pneumonia logit {change.mean():+.2f} "
              "on average")


def dann(p, model_file: Path, splits, folds, steps: int, weight: float, lr: float) -> None:
    import keras
    import tensorflow as tf
    from tqdm import trange

    from tasks.inference import raw_scores

    x_train = normalize(splits["train"][0], p.train.normalize)
    y_train = splits["train"][1]
    cw = class_weights(y_train, p.train.class_weight)
    w_train = np.where(y_train >= 0.5, cw[1], cw[0]).astype(np.float32)
    aug = augmenter(p.train.augment, p.train.seed)
    b = p.train.batch_size

    def reverse(x, lam):  # identity forward, gradient times -lam
        return -lam * x + tf.stop_gradient((1.0 + lam) * x)

    def adapted(site_images: np.ndarray, seed: int):
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
        both = keras.Model(model.inputs, [model.outputs[0], model.layers[-1].input])
        domain = keras.Sequential([keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
        domain.build((None, both.outputs[1].shape[-1]))
        variables = both.trainable_variables + domain.trainable_variables
        opt = keras.optimizers.Adam(lr)
        bce = keras.losses.BinaryCrossentropy(label_smoothing=p.train.label_smoothing)
        dbce = keras.losses.BinaryCrossentropy(from_logits=True)
        x_site = normalize(site_images, p.train.normalize)

        @tf.function
        def step(xs, ys, ws, xt, lam):
            xs, xt = aug(xs, training=True), aug(xt, training=True)
            n = tf.shape(xs)[0]
            with tf.GradientTape() as tape:
                prob, feat = both(tf.concat([xs, xt], 0), training=True)
                loss = bce(ys[:, None], prob[:n], sample_weight=ws)
                site_of = tf.concat([tf.zeros([n, 1]), tf.ones([tf.shape(xt)[0], 1])], 0)
                loss += dbce(site_of, domain(reverse(feat, lam)))
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

        rng = np.random.default_rng(seed)
        for i in trange(steps, desc=f"dann fold {seed}"):
            si, ti = rng.integers(0, len(x_train), b), rng.integers(0, len(x_site), b)
            lam = weight * (2 / (1 + np.exp(-10 * i / steps)) - 1)  # Ganin's ramp: the domain term grows in
            step(x_train[si], y_train[si], w_train[si], x_site[ti], tf.constant(lam, tf.float32))
        return model

    x_test, y_test = splits["test"][0], splits["test"][1].astype(int)
    base = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    before = raw_scores(base, x_test, p.train.normalize)
    after = np.zeros(len(x_test))
    for k in np.unique(folds):
        m = adapted(x_test[folds != k], int(k))
        after[folds == k] = raw_scores(m, x_test[folds == k], p.train.normalize)
    print(f"test AUC before {per_fold_auc(y_test, before, folds):.4f}, "
          f"after DANN {per_fold_auc(y_test, after, folds):.4f} (mean of the folds; {steps} steps, "
          f"weight {weight}, learning rate {lr})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("models/model.keras"))
    ap.add_argument("--params", default=config.PARAMS_FILE)
    sub = ap.add_subparsers(dest="probe", required=True)
    sub.add_parser("features")
    sub.add_parser("sharpness")
    d = sub.add_parser("dann")
    d.add_argument("--steps", type=int, default=200)
    d.add_argument("--weight", type=float, default=0.3)
    d.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()
    import keras

    p = config.load(args.params)
    splits, folds = load_splits(p.paths), site.test_folds(p)
    if args.probe in ("features", "sharpness"):
        model = keras.saving.load_model(args.model, compile=False, safe_mode=True)
        features(p, model, splits, folds) if args.probe == "features" else sharpness(p, model, splits)
    else:
        dann(p, args.model, splits, folds, args.steps, args.weight, args.lr)


if __name__ == "__main__":
    main()
