import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from tasks import train
from tasks.core import config
from tasks.training import precision
from tasks.training.model import build_model
from tests.helpers import REPO, TINY_TRAIN, deep_update, defaults


def seed_param_count(size: int) -> int:
    """The reference recipe's parameters, counted by hand from its layer list."""
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
    sep = lambda cin, cout: 9 * cin + cin * cout + cout  # noqa: E731
    dense = lambda cin, cout: cin * cout + cout  # noqa: E731
    total = conv(3, 16) + conv(16, 16)
    cin = 16
    for f in (32, 64, 128, 256):
        total += sep(cin, f) + sep(f, f) + 4 * f  # two separable convs + batch-norm
        cin = f
    side = size
    for _ in range(5):
        side //= 2
    total += dense(side * side * 256, 512) + dense(512, 128) + dense(128, 64) + dense(64, 1)
    return total


def test_seed_cnn_is_the_reference_recipe():
    model = build_model(defaults("model", name="seed_cnn"), 150)
    assert model.count_params() == seed_param_count(150)
    assert model.output_shape == (None, 1)


def test_fast_cnn_output_is_a_probability_per_image():
    model = build_model(defaults("model"), 64)
    out = model.predict(np.random.rand(3, 64, 64, 1).astype("float32"), verbose=0)
    assert out.shape == (3, 1) and ((out >= 0) & (out <= 1)).all()


@pytest.mark.parametrize("overrides, match", [
    ({"data": {"image_size": 16}}, "too small for fast_cnn"),
    ({"model": {"name": "seed_cnn"}, "data": {"image_size": 24}}, "too small for seed_cnn"),
])
def test_bad_params_fail_before_training(workdir, overrides, match):
    from tests.helpers import write_params

    p = write_params(workdir, overrides)  # no data exists here: the check must come first
    with pytest.raises(config.ConfigError, match=match):
        train.run(p)


def test_unknown_params_key_is_named(workdir):
    (workdir / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("  epochs:", "  epoch:"))
    with pytest.raises(config.ConfigError, match="unknown key `params.train.epoch`"):
        config.load(workdir / "params.yaml")


@pytest.mark.slow
def test_training_lowers_the_loss(tiny_workdir):
    from tasks.imaging.data import load_splits
    from tests.helpers import write_params

    # a few dozen tiny films, 4 batches an epoch, augmented: one epoch's loss moves by several hundredths on
    # its own, so the last three epochs' mean must sit clearly under the first epoch's (4 epochs were too few)
    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 8}}))
    _, history, _ = train.fit(p, load_splits(p.paths))
    loss = history.history["loss"]
    assert sum(loss[-3:]) / 3 < loss[0] - 0.03, loss


def test_fused_batch_norm_computes_what_keras_batch_norm_does():
    import keras
    import tensorflow as tf

    from tasks.training.model import FusedBatchNorm

    x = np.random.default_rng(0).normal(2.0, 3.0, (8, 6, 6, 5)).astype(np.float32)
    upstream = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    fused, plain = FusedBatchNorm(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    outputs, grads = [], []
    for layer in (fused, plain):
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 2.0, 5))
        layer.beta.assign(np.linspace(-1.0, 1.0, 5))
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:  # one training call each, from moving statistics 0 and 1
            tape.watch(inputs)
            outputs.append(layer(inputs, training=True))
            loss = tf.reduce_sum(outputs[-1] * upstream)
        grads.append(tape.gradient(loss, [inputs, layer.gamma.value, layer.beta.value]))
    np.testing.assert_allclose(*outputs, atol=1e-4)
    assert all(g is not None for g in grads[0] + grads[1])
    for a, b in zip(*grads):  # the backward pass too: what the training follows
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    n = 8 * 6 * 6  # the fused kernel feeds the moving variance the unbiased batch variance
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance, 0.9 + (np.asarray(plain.moving_variance) - 0.9) * n / (n - 1),
                               rtol=1e-5)
    fused.moving_variance.assign(plain.moving_variance)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)


def test_the_saved_model_is_plain_keras_and_scores_as_the_trained_one():
    import keras

    from tasks.training.model import FusedBatchNorm

    model = build_model(defaults("model"), 64)
    assert any(isinstance(layer, FusedBatchNorm) for layer in model.layers)
    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 1), dtype=np.float32)
    for layer in model.layers:  # statistics and scales as a training leaves them, not the initial 0s and 1s
        if isinstance(layer, FusedBatchNorm):
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape) for w in layer.get_weights()])
    saved = precision.servable(model)
    assert not any(isinstance(layer, FusedBatchNorm) for layer in saved.layers)
    assert [layer.name for layer in saved.layers] == [layer.name for layer in model.layers]
    np.testing.assert_allclose(saved.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    config = json.dumps(saved.get_config())
    assert "FusedBatchNorm" not in config and "BatchNormalization" in config
    assert keras.Model.from_config(saved.get_config()).count_params() == model.count_params()


def test_auto_precision_takes_bfloat16_only_where_the_cpu_computes_it():
    assert precision.policy("auto", {"avx2", "avx512f"}) == "float32"  # emulated there: slower, not faster
    policy = precision.policy
    assert policy("auto", {"avx2", "avx512_bf16"}) == policy("auto", {"amx_bf16"}) == "mixed_bfloat16"
    assert policy("bfloat16", set()) == "mixed_bfloat16" and policy("float32", {"amx_bf16"}) == "float32"


@pytest.mark.slow
def test_bfloat16_training_saves_a_float32_model_with_its_weights(tiny_workdir):
    import keras

    from tasks.core.files import model_path
    from tests.helpers import write_params

    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 2, "precision": "bfloat16"}}))
    report = train.run(p)
    assert report["precision"] == "mixed_bfloat16"
    saved = keras.saving.load_model(model_path(p), compile=False)
    assert saved.dtype_policy.name == "float32" and all(w.dtype == "float32" for w in saved.weights)
    assert keras.mixed_precision.global_policy().name == "float32", "the policy leaked out of training"
    x = np.random.default_rng(0).random((4, p.data.image_size, p.data.image_size, 1), dtype=np.float32)
    prob = saved.predict(x, verbose=0)
    assert prob.dtype == np.float32 and np.all((prob > 0) & (prob < 1))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = build_model(p.model, p.data.image_size)
    plain = precision.servable(mixed)
    assert plain.dtype_policy.name == "float32"
    assert all(np.array_equal(a, b) for a, b in zip(mixed.get_weights(), plain.get_weights()))
    assert np.allclose(mixed.predict(x, verbose=0), plain.predict(x, verbose=0), atol=0.05)  # bfloat16's 3 digits


@pytest.mark.slow
def test_killed_training_resumes_at_the_next_epoch(tiny_workdir):
    from tests.helpers import write_params

    write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 6, "patience": 10}}))
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "tasks.train"], cwd=tiny_workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history, live = tiny_workdir / "reports/history.csv", tiny_workdir / "models/history.live.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if live.exists() and len(live.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tiny_workdir / "models/backup").exists(), "a backup is left for the rerun"
    done = len(pd.read_csv(live))
    history.unlink(missing_ok=True)  # as `dvc repro` does with a stage's outputs before it reruns it
    rerun = subprocess.run([sys.executable, "-m", "tasks.train"], cwd=tiny_workdir, env=env,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    epochs = [int(line.split()[1].split("/")[0]) for line in rerun.stdout.splitlines() if line.startswith("Epoch ")]
    assert "cannot be restored" not in rerun.stderr  # the kill, wherever it came, left a readable backup
    assert epochs[0] >= done  # it did not start over at epoch 1
    assert epochs[-1] == 6
    assert list(pd.read_csv(history).epoch) == list(range(6))  # one history row per epoch, none twice or missing
    assert json.loads((tiny_workdir / "reports/train.json").read_text())["epochs"] == 6
    assert not (tiny_workdir / "models/backup").exists()
    from mlflow import MlflowClient

    from tasks.records import tracking

    with contextlib.chdir(tiny_workdir):  # one MLflow run holds the whole training, killed part included
        p = config.load()
        client = MlflowClient(tracking.tracking_uri(p))
        runs = client.search_runs([tracking.configure(p)])
        assert [r.info.run_id for r in runs] == [tracking.train_run(p).info.run_id]
        assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")] == list(range(6))


def test_a_kill_while_the_backup_is_written_resumes_from_the_last_whole_epoch(tmp_path):
    """A kill cuts the next epoch's weights file in half: the backup still reads, at the epoch before it."""
    import keras

    from tests.helpers import write_params

    def model_with(seed: int):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(0.1), "mse")
        model.set_weights([np.random.default_rng(seed).random(w.shape) for w in model.get_weights()])
        model.optimizer.build(model.trainable_variables)  # as after a training step: its state is saved too
        return model

    p = write_params(tmp_path, {"paths": {"model_dir": str(tmp_path / "models")}})
    saver = train.restore(p)
    for epoch in range(2):  # two epochs end, each with its weights
        saver.set_model(model := model_with(epoch))
        saver.on_epoch_end(epoch)
    assert [f.name for f in train.backup_dir(p).glob("*.weights.h5")] == ["epoch-2.weights.h5"]  # older removed
    (train.backup_dir(p) / "epoch-3.weights.h5").write_bytes(b"\x89HDF")  # epoch 3's write, killed
    loader = train.restore(p)
    loader.set_model(resumed := model_with(7))  # a fresh process's model
    loader.on_train_begin()
    assert resumed._initial_epoch == 2
    for got, saved in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, saved)


@pytest.mark.slow
def test_a_backup_of_other_params_is_discarded_not_resumed(tiny_workdir):
    from tests.helpers import write_params

    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 2}}))
    stale = train.backup_dir(p)
    stale.mkdir(parents=True)
    (stale / "fingerprint.json").write_text(json.dumps({"fingerprint": "another-experiment"}))
    (stale / "training_metadata.json").write_text(json.dumps({"epoch": 5}))  # what a resume would have read
    assert not train.resumable(p, print_=lambda message: None)
    assert not stale.exists()
    report = train.run(p)
    assert report["epochs"] == 2 and not report["resumed"]


@pytest.mark.slow
def test_a_backup_that_cannot_be_read_starts_training_over(tiny_workdir, caplog):
    from tests.helpers import write_params

    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 2}}))
    cut = train.backup_dir(p)
    cut.mkdir(parents=True)
    (cut / "fingerprint.json").write_text(json.dumps({"fingerprint": train.fingerprint(p)}))  # this very training
    (cut / "training_metadata.json").write_text('{"epoch": ')  # damaged on disk
    with caplog.at_level("WARNING"):
        report = train.run(p)
    assert report["epochs"] == 2 and not report["resumed"] and "cannot be restored" in caplog.text
    assert list(pd.read_csv(p.paths.history).epoch) == [0, 1]


@pytest.mark.slow
def test_a_resumed_training_that_fails_for_another_reason_is_not_started_over(tiny_workdir, monkeypatch, caplog):
    """Only an unreadable backup starts a resumed training over: a full disk mid-fit is raised, not retrained."""
    import keras

    from tests.helpers import write_params

    p = write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 2}}))
    train.backup_dir(p).mkdir(parents=True)
    (train.backup_dir(p) / "fingerprint.json").write_text(json.dumps({"fingerprint": train.fingerprint(p)}))

    class DiskFull(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(train.system, "callback", DiskFull)
    with caplog.at_level("WARNING"), pytest.raises(OSError, match="No space left"):
        train.run(p)
    assert "starts over" not in caplog.text
    assert (train.backup_dir(p) / "fingerprint.json").exists(), "the backup is kept for the next rerun"


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tiny_workdir):
    from tests.helpers import write_params

    write_params(tiny_workdir, deep_update(TINY_TRAIN, {"train": {"epochs": 1, "distribute": "mirrored"}}))
    code = ("from tasks import config, train; from tasks.imaging.data import load_splits; p = config.load(); "
            "s = train.strategy('mirrored'); print('replicas', s.num_replicas_in_sync); "
            "train.fit(p, load_splits(p.paths))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tiny_workdir, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "replicas 2" in proc.stdout
    assert (tiny_workdir / "models/model.keras").exists()
