"""Where a training epoch's time goes: the input pipeline alone, the model alone, both together.

    python benchmarks/train_profile.py [--data ../shared/data/chest_xray/train] [--images 1024]
        [--rounds 3] [--set "model.fast_cnn.filters=[48,96,192]"]

Same images as train_throughput.py (every k-th film of the train split, params.yaml's model, augmentation and
normalisation). Each figure is the median over `--rounds` of one pass, and the fastest round
(`machine.interleaved`: every pass once untimed, then each round times one of each, one after the other), in
images per second:
- input, augmented: one epoch of the training dataset iterated, no model (augmentation on the CPU);
- input, not augmented: the same without the augmentation layers;
- model alone: fit on batches already augmented and held in memory (forward, backward, optimizer);
- model alone, Keras' batch norm: the same model with keras.layers.BatchNormalization in place of
  tasks.training.model.FusedBatchNorm (what the saved model holds; the fused kernel is what training runs);
- model alone, bfloat16: the same under Keras' `mixed_bfloat16` policy (weights float32, compute bfloat16; not
  under the AVX2 stand-in, whose kernels have none);
- together: fit on the training dataset (plain compile, no validation, no callbacks);
- then what tasks/train.py adds, one at a time: its compile (the AUC, precision and recall of each step), a
  validation pass each epoch (a sixth as many films: the real split's validation is 742 films for 4,204),
  its callbacks (checkpoint, early stopping, schedule, backup, system metrics, CSV log; written to a temp dir).
`--set` profiles a setting (params overrides joined by `,`) instead of params.yaml's.
The two cores are shared: if together ~ 1 / (1/input + 1/model), the input pipeline and the model take turns
rather than overlapping, and time spent on augmentation is time the model does not get.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from machine import bfloat16_kernels, cpu, interleaved
from train_throughput import params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray/train"))
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--set", dest="setting", help="params overrides joined by ',', e.g. data.image_size=96")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from tasks import train
    from tasks.imaging import images
    from tasks.training.batches import datasets
    from tasks.training.model import build_model
    from tasks.training.precision import servable

    p = params(args.setting)
    files = sorted(Path(args.data).glob("*/*.jpeg"))
    files = files[::max(len(files) // args.images, 1)][:args.images]
    size, n = p.data.image_size, len(files)
    pixels = np.stack([images.load_gray(f.read_bytes(), size) for f in files])
    labels = np.array([f.parent.name == "PNEUMONIA" for f in files], np.float32)
    print(f"cpu: {cpu()}; {n} images at {size} px, batch {p.train.batch_size}, model {p.model.name} "
          f"{p.model.setting()}, threads intra {tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter {tf.config.threading.get_inter_op_parallelism_threads()} (0 = all cores)")

    def train_ds(augment: bool):
        t = p.train if augment else p.train.model_copy(update={"augment": p.train.augment.model_copy(update={
            "rotation": 0.0, "zoom": 0.0, "shift": 0.0, "brightness": 0.0, "contrast": 0.0})})
        return datasets((pixels, labels), (pixels[:32], labels[:32]), t, p.train.batch_size)[0]

    def drain(ds):
        return lambda: [None for _ in ds]

    held = list(train_ds(True))
    in_memory = tf.data.Dataset.from_tensor_slices(tuple(np.concatenate([b[i].numpy() for b in held])
                                                         for i in range(3))).batch(p.train.batch_size).cache()

    def fit(ds, policy="float32", as_train=False, val=None, callbacks=(), keras_norm=False):
        keras.mixed_precision.set_global_policy(policy)
        model = build_model(p.model, size)
        model = servable(model) if keras_norm else model
        if as_train:
            train.compile_model(model, p.train)
        else:
            model.compile(keras.optimizers.Adam(), "binary_crossentropy")
        keras.mixed_precision.set_global_policy("float32")
        return lambda: model.fit(ds, epochs=1, verbose=0, validation_data=val, callbacks=list(callbacks))

    val = n // 6
    val_ds = datasets((pixels, labels), (pixels[:val], labels[:val]), p.train, p.train.batch_size)[1]
    with tempfile.TemporaryDirectory() as tmp:
        q = p.model_copy(update={"paths": p.paths.model_copy(update={"model_dir": tmp})})
        calls = {"input, augmented": drain(train_ds(True)), "input, not augmented": drain(train_ds(False)),
                 "model alone": fit(in_memory), "model alone, Keras' batch norm": fit(in_memory, keras_norm=True),
                 **({"model alone, bfloat16": fit(in_memory, "mixed_bfloat16")} if bfloat16_kernels() else {}),
                 "together": fit(train_ds(True)),
                 "+ train.py's compile (metrics)": fit(train_ds(True), as_train=True),
                 "+ validation each epoch": fit(train_ds(True), as_train=True, val=val_ds),
                 "+ train.py's callbacks": fit(train_ds(True), as_train=True, val=val_ds,
                                               callbacks=train.callbacks(q, []))}
        seconds = interleaved(calls, args.rounds)
    rows = {name: n / float(np.median(timed)) for name, timed in seconds.items()}
    both = 1 / (1 / rows["input, augmented"] + 1 / rows["model alone"])
    print(f"{'':32s} {'median':>7s} {'fastest':>7s} img/s")
    for name, value in rows.items():
        print(f"{name:32s} {value:7.1f} {n / min(seconds[name]):7.1f}")
    print(f"{'taking turns would give':32s} {both:7.1f} img/s (1 / (1/input + 1/model))")


if __name__ == "__main__":
    main()
