"""train: fit the CNN on the train split and select it on validation (tasks.recorders records the run).

Writes `<paths.model_dir>/model.keras` (best validation AUC weights), `paths.history`
(one row per epoch, drawn by `dvc plots`) and `paths.train_report`. A training killed
mid-run resumes from its last finished epoch when rerun (BackupAndRestore).
"""
from __future__ import annotations

import logging
import math
import shutil
import time
from pathlib import Path

import pandas as pd

from tasks.cli import main
from tasks.core.config import Params, Train
from tasks.core.errors import StepError
from tasks.core.files import atomic, file_md5, model_path, out_path, read_json, write_json
from tasks.core.sections import flat_params
from tasks.training import system

log = logging.getLogger(__name__)

METRICS = ["accuracy", "auc", "precision", "recall"]


def backup_dir(p: Params) -> Path:
    return Path(p.paths.model_dir) / "backup"


def live_history(p: Params) -> Path:
    """The epochs' rows while training runs, beside the backup (not in it: BackupAndRestore deletes its folder
    when training ends): DVC deletes `paths.history` before it reruns a stage, and a resumed training must keep
    the rows of the epochs before the kill."""
    return Path(p.paths.model_dir) / "history.live.csv"


def fingerprint(p: Params) -> str:
    """What a training's result depends on: model, train and data params and the bytes of pixels and split."""
    import hashlib
    import json

    spec = {"params": flat_params({"data": p.data, "model": p.model, "train": p.train}),
            "pixels": file_md5(p.paths.pixels), "split": file_md5(p.paths.split)}
    return hashlib.md5(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def resumable(p: Params, print_=print) -> bool:
    """Whether an interrupted training of exactly these params and data left a backup to resume from.

    A backup of other params or data (another experiment killed mid-run) would resume with the wrong
    weights, shapes or epoch count: it is discarded, with a message.
    """
    state = backup_dir(p) / "fingerprint.json"
    if not backup_dir(p).exists():
        return False
    saved = read_json(state) if state.exists() else {}
    if saved.get("fingerprint") == fingerprint(p):
        return True
    print_(f"train: discarding {backup_dir(p)}: it was made with other params or data, training starts over")
    shutil.rmtree(backup_dir(p))
    return False


def strategy(mode: str):
    """tf.distribute strategy for `train.distribute`; `mirrored` splits the CPU into two logical devices."""
    import tensorflow as tf

    if mode == "none":
        return tf.distribute.get_strategy()
    if mode == "mirrored":
        if len(tf.config.list_physical_devices("GPU")) < 2:  # listing physical devices does not start the runtime
            try:
                tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                           [tf.config.LogicalDeviceConfiguration()] * 2)
            except RuntimeError:
                pass  # the runtime already started: keep the devices it has
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus if len(gpus) > 1 else tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if mode == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # reads TF_CONFIG
    raise StepError(f"train.distribute must be none, mirrored or multi_worker, got {mode!r}")


def cosine(p: Train):
    """Learning rate per epoch: one cosine from `learning_rate` down to 5 % of it."""
    def schedule(epoch, _lr=None):
        return p.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / max(p.epochs, 1))))
    return schedule


class BackupUnreadable(RuntimeError):
    """The backup of an interrupted training cannot be restored (a kill cut it in half)."""


def restore(p: Params):
    """Keras' BackupAndRestore, whose failure to read the backup raises BackupUnreadable: only that failure
    makes a resumed training start over; any other error of a resumed fit (a full disk, bad data) is raised.

    Its backup survives a kill at any instant: each epoch's weights go to a file of their own, then the
    metadata naming them replaces the previous one in one rename, and only then are older weights removed
    (Keras rewrites one weights file and then its metadata in place, so a kill while it writes leaves a
    backup that cannot be read, and the training starts over)."""
    import json

    import keras

    class Restore(keras.callbacks.BackupAndRestore):
        def on_train_begin(self, logs=None):
            try:
                super().on_train_begin(logs)
            except (OSError, ValueError, KeyError) as err:  # a damaged weights file, damaged or empty metadata
                raise BackupUnreadable(str(err).splitlines()[0][:200] if str(err) else type(err).__name__) from err

        def _save_model(self):
            folder = Path(self.backup_dir)
            weights = f"epoch-{self._current_epoch}.weights.h5"
            folder.mkdir(parents=True, exist_ok=True)
            self.model.save_weights(str(folder / weights), overwrite=True)
            with atomic(self._training_metadata_path) as tmp:
                tmp.write_text(json.dumps({"epoch": self._current_epoch, "weights": weights}))
            for old in folder.glob("epoch-*.weights.h5"):
                if old.name != weights:
                    old.unlink()

        def _load_model(self):
            meta = Path(self._training_metadata_path)
            if not meta.exists():
                return
            saved = json.loads(meta.read_text())
            if not self.model.optimizer.built:  # its state is in the weights file: build it to load it
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(str(Path(self.backup_dir) / saved["weights"]))
            self.model._initial_epoch = saved["epoch"]

    return Restore(str(backup_dir(p)))


def callbacks(p: Params, extra: list):
    import keras

    t = p.train
    # the epoch's row is written before its backup: a kill between the two leaves the epoch logged and redone
    # (run() keeps its last row), never backed up without its row (the rerun would skip it and lose the row)
    return [
        keras.callbacks.LearningRateScheduler(cosine(t)),  # these two put the learning rate and the machine's use
        system.callback(),  # in the epoch's logs, before the CSV logger writes them
        keras.callbacks.CSVLogger(str(out_path(live_history(p))), append=True),
        restore(p),
        keras.callbacks.ModelCheckpoint(str(model_path(p)), monitor="val_auc", mode="max", save_best_only=True),
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=t.patience, restore_best_weights=True),
        *extra,
    ]


def compile_model(model, t) -> None:
    """Adam at `train.learning_rate`, label-smoothed cross-entropy, and the metrics of each epoch (val_auc picks
    the checkpoint and stops the training)."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(t.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(label_smoothing=t.label_smoothing),
                  metrics=["accuracy", keras.metrics.AUC(name="auc"), keras.metrics.Precision(name="precision"),
                           keras.metrics.Recall(name="recall")])


def fit(p: Params, splits: dict, extra_callbacks: list = ()):
    """Build, compile and fit the model on splits['train'] with splits['val']; returns (model, history, seconds)."""
    import keras

    from tasks.training.batches import datasets
    from tasks.training.model import build_model
    from tasks.training.precision import policy

    t = p.train
    keras.utils.set_random_seed(t.seed)
    strat = strategy(t.distribute)
    keras.mixed_precision.set_global_policy(policy(t.precision))
    with strat.scope():
        model = build_model(p.model, p.data.image_size)
        compile_model(model, t)
    replicas = strat.num_replicas_in_sync
    train_ds, val_ds = datasets(splits["train"], splits["val"], t, t.batch_size * replicas, replicas)
    start = time.perf_counter()
    # class weights ride in train_ds, which also shuffles itself (Keras ignores `shuffle` for a tf.data.Dataset)
    try:
        history = model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, verbose=2, shuffle=False,
                            callbacks=callbacks(p, list(extra_callbacks)))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model, history, time.perf_counter() - start


def run(p: Params) -> dict:
    from tasks.imaging.data import load_splits
    from tasks.training.model import check
    from tasks.training.precision import policy, servable

    check(p.model, p.data.image_size)  # bad params fail before any data is loaded
    resuming = resumable(p)
    if not resuming:
        live_history(p).unlink(missing_ok=True)  # a fresh run starts a fresh history
        write_json(backup_dir(p) / "fingerprint.json", {"fingerprint": fingerprint(p)})
    splits = load_splits(p.paths)
    try:
        model, history, seconds = fit(p, splits)
    except BackupUnreadable as err:  # a backup the kill cut in half: start over, once
        log.warning(f"train: the backup in {backup_dir(p)} cannot be restored ({err}); "
                    "training starts over")
        shutil.rmtree(backup_dir(p), ignore_errors=True)
        live_history(p).unlink(missing_ok=True)
        write_json(backup_dir(p) / "fingerprint.json", {"fingerprint": fingerprint(p)})
        resuming = False
        model, history, seconds = fit(p, splits)
    model = servable(model)
    model.save(model_path(p))  # best weights (EarlyStopping restored them)
    # one row per epoch, before and after a resume (an epoch logged twice by a kill between backup and log: the last)
    rows = pd.read_csv(live_history(p), on_bad_lines="skip")  # a row the kill cut short is not an epoch
    rows = rows.dropna(subset=["epoch", "val_auc"]).drop_duplicates("epoch", keep="last").sort_values("epoch")
    with atomic(p.paths.history) as tmp:
        rows.to_csv(tmp, index=False)
    epochs = len(rows)
    images = len(splits["train"][0]) * len(history.history["loss"])  # the epochs this process ran
    report = {"epochs": epochs, "seconds": round(seconds, 1), "train_images": len(splits["train"][0]),
              "images_per_second": round(images / seconds, 1), "params": model.count_params(),
              "best_val_auc": round(float(rows.val_auc.max()), 4), "resumed": resuming,
              "precision": policy(p.train.precision)}
    shutil.rmtree(backup_dir(p), ignore_errors=True)  # training is done: a kill from here on starts over
    live_history(p).unlink()
    write_json(p.paths.train_report, report)
    log.info(f"train: {epochs} epochs in {seconds:.0f} s ({report['images_per_second']} img/s), "
          f"best val AUC {report['best_val_auc']} -> {model_path(p)}")
    return report


if __name__ == "__main__":
    main("train", run)
