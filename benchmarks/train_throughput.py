"""Training throughput: the reference recipe vs the project default, same images, same machine, one run.

    python benchmarks/train_throughput.py [--data ../shared/data/chest_xray/train] [--images 1024] [--rounds 5]
        [--set "model.fast_cnn.filters=[48,96,192]" ...]

Reference: 150 px, `image_dataset_from_directory` decoding JPEGs every epoch, zoom + flip, seed_cnn.
Default: params.yaml's model and augmentation at `data.image_size`, fed from the prepared pixel store, in
float32 and in bfloat16 (`train.precision`; emulated, so slower, on a CPU without AVX512_BF16 or AMX).
Each `--set` (params overrides joined by `,`) is timed in float32 beside them; so is the default with Keras'
BatchNormalization in place of tasks.training.model.FusedBatchNorm (the model before 2026-12-04).

Every trainer runs one epoch untimed, then each round times one epoch of every trainer, one after the other
(`machine.interleaved`): a round's ratio compares epochs timed seconds apart. The figures are medians over the
rounds, with the range of the ratios, and then each trainer's fastest round: a machine whose capacity drops
by turns only ever slows an epoch down, so the fastest of several rounds estimates the full-speed figure.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
from machine import bfloat16_kernels, cpu, interleaved


def subset(src: Path, n: int, dest: Path) -> list[Path]:
    """Copy every k-th image of each class so that about n images keep the class balance."""
    files = sorted(src.glob("*/*.jpeg"))
    step = max(len(files) // n, 1)
    picked = files[::step][:n]
    for f in picked:
        (dest / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest / f.parent.name / f.name)
    return picked


def reference(folder: Path):
    """One epoch of the reference recipe, as a function."""
    import keras

    from tasks.core import config
    from tasks.training.model import build_model

    ds = keras.utils.image_dataset_from_directory(folder, image_size=(150, 150), batch_size=32, label_mode="binary",
                                                  color_mode="grayscale", seed=0, verbose=False)
    aug = keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.RandomZoom(0.3),
                            keras.layers.RandomFlip("vertical")])
    ds = ds.map(lambda x, y: (aug(x, training=True), y))
    model = build_model(config.load().model.model_copy(update={"name": "seed_cnn"}), 150)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return lambda: model.fit(ds, epochs=1, verbose=0)


def params(setting: str | None):
    """params.yaml, with a setting's overrides applied (checked as the pipeline checks them)."""
    from flows import overrides
    from tasks.core import config

    return overrides.load_with(overrides.split(setting)) if setting else config.load()


def default(files: list[Path], precision: str = "float32", setting: str | None = None, keras_norm: bool = False):
    """One epoch of the project's training (params.yaml, or a setting of it) on `files`, as a function;
    `keras_norm`: with Keras' BatchNormalization instead of the fused one (float32 only)."""
    import keras

    from tasks.imaging import images
    from tasks.training.batches import datasets
    from tasks.training.model import build_model
    from tasks.training.precision import policy, servable

    p = params(setting)
    size = p.data.image_size
    pixels = np.stack([images.load_gray(f.read_bytes(), size) for f in files])
    labels = np.array([f.parent.name == "PNEUMONIA" for f in files], np.float32)
    train_ds, _ = datasets((pixels, labels), (pixels[:32], labels[:32]), p.train, p.train.batch_size)
    keras.mixed_precision.set_global_policy(policy(precision))
    model = build_model(p.model, size)
    keras.mixed_precision.set_global_policy("float32")
    model = servable(model) if keras_norm else model
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", metrics=["accuracy"])
    return lambda: model.fit(train_ds, epochs=1, verbose=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray/train"))
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--set", dest="settings", action="append", default=[],
                    help="params overrides joined by ',' timed beside the default, e.g. data.image_size=96")
    args = ap.parse_args()
    print(f"cpu: {cpu()}")
    with tempfile.TemporaryDirectory() as tmp:
        files = subset(Path(args.data), args.images, Path(tmp))
        trainers = {"reference recipe (seed_cnn, 150 px, JPEG pipeline)": reference(Path(tmp))}
        for precision in ("float32", "bfloat16") if bfloat16_kernels() else ("float32",):
            trainers[f"project default, {precision}"] = default(files, precision)
        trainers["project default, Keras' batch norm"] = default(files, keras_norm=True)
        trainers.update({setting: default(files, "float32", setting) for setting in args.settings})
        seconds = interleaved(trainers, args.rounds)
    ref = seconds.pop(next(iter(trainers)))
    n = len(files)
    print(f"{n} images, {args.rounds} rounds; reference: median {n / statistics.median(ref):6.1f} img/s, "
          f"fastest {n / min(ref):6.1f}")
    for name, timed in seconds.items():
        ratios = [r / t for r, t in zip(ref, timed)]
        print(f"{name}: {n / statistics.median(timed):6.1f} img/s = {statistics.median(ratios):.2f}x the reference "
              f"(rounds {min(ratios):.2f} to {max(ratios):.2f}); fastest rounds {n / min(timed):6.1f} img/s = "
              f"{min(ref) / min(timed):.2f}x")


if __name__ == "__main__":
    main()
