"""Training throughput: the reference recipe vs the project default, same images, same machine, one run.

    python benchmarks/train_throughput.py [--data ../shared/data/chest_xray/train] [--images 1024]
        [--set "model.fast_cnn.filters=[32,64,128]" ...]

Reference: 150 px, `image_dataset_from_directory` decoding JPEGs every epoch, zoom + flip, seed_cnn.
Default: params.yaml's model and augmentation at `data.image_size`, fed from the prepared pixel store, in
float32 and in bfloat16 (`train.precision`; emulated, so slower, on a CPU without AVX512_BF16 or AMX).
Each `--set` (params overrides joined by `,`) is timed after the default, in float32, in the same run.
Each trains on the same images: one epoch traces the graphs, then the median of three epochs is timed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu


def subset(src: Path, n: int, dest: Path) -> list[Path]:
    """Copy every k-th image of each class so that about n images keep the class balance."""
    files = sorted(src.glob("*/*.jpeg"))
    step = max(len(files) // n, 1)
    picked = files[::step][:n]
    for f in picked:
        (dest / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest / f.parent.name / f.name)
    return picked


EPOCHS_TIMED = 3


def timed_fit(model, ds, n_images: int) -> float:
    """img/s of the median of EPOCHS_TIMED epochs after a first one (which traces the graphs): one epoch of a
    thousand films lasts seconds, and a shared machine's hiccup would decide a single timing."""
    model.fit(ds, epochs=1, verbose=0)
    seconds = []
    for _ in range(EPOCHS_TIMED):
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - start)
    return n_images / float(np.median(seconds))


def reference(folder: Path, n: int) -> float:
    import keras

    from tasks import config
    from tasks.model import build_model

    ds = keras.utils.image_dataset_from_directory(folder, image_size=(150, 150), batch_size=32, label_mode="binary",
                                                  color_mode="grayscale", seed=0, verbose=False)
    aug = keras.Sequential([keras.layers.Rescaling(1 / 255), keras.layers.RandomZoom(0.3),
                            keras.layers.RandomFlip("vertical")])
    ds = ds.map(lambda x, y: (aug(x, training=True), y))
    model = build_model(config.load().model.model_copy(update={"name": "seed_cnn"}), 150)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return timed_fit(model, ds, n)


def params(setting: str | None):
    """params.yaml, with a setting's overrides applied (checked as the pipeline checks them)."""
    from flows import overrides
    from tasks import config

    return overrides.load_with(overrides.split(setting)) if setting else config.load()


def default(files: list[Path], n: int, precision: str = "float32", setting: str | None = None) -> float:
    import keras

    from tasks import images
    from tasks.batches import datasets
    from tasks.model import build_model
    from tasks.precision import policy

    p = params(setting)
    size = p.data.image_size
    pixels = np.stack([images.load_gray(f.read_bytes(), size) for f in files])
    labels = np.array([f.parent.name == "PNEUMONIA" for f in files], np.float32)
    train_ds, _ = datasets((pixels, labels), (pixels[:32], labels[:32]), p.train, p.train.batch_size)
    keras.mixed_precision.set_global_policy(policy(precision))
    model = build_model(p.model, size)
    keras.mixed_precision.set_global_policy("float32")
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", metrics=["accuracy"])
    return timed_fit(model, train_ds, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray/train"))
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--set", dest="settings", action="append", default=[],
                    help="params overrides joined by ',' timed after the default, e.g. data.image_size=96")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = subset(Path(args.data), args.images, Path(tmp))
        ref = reference(Path(tmp), len(files))
        print(f"cpu: {cpu()}")
        print(f"reference recipe (seed_cnn, 150 px, JPEG pipeline): {ref:6.1f} img/s")
        limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
        # under an ISA limit without bfloat16 (the AVX2 stand-in) oneDNN has no mixed-precision convolution
        no_bf16 = limit and "BF16" not in limit and "AMX" not in limit
        for precision in ("float32",) if no_bf16 else ("float32", "bfloat16"):
            new = default(files, len(files), precision)
            print(f"project default, precision {precision:8s}:   {new:6.1f} img/s = {new / ref:.2f}x the reference "
                  f"({len(files)} images, median of {EPOCHS_TIMED} epochs after the first)")
        for setting in args.settings:
            new = default(files, len(files), "float32", setting)
            print(f"{setting}: {new:6.1f} img/s = {new / ref:.2f}x the reference")


if __name__ == "__main__":
    main()
