"""Model builders: `build_model(params.model, image_size)` -> an uncompiled keras.Model. No I/O.

The builder is `model.name`'s entry of tasks.core.plugins.MODELS, called with its settings (`model.<name>`); a
builder may carry `min_size(settings)`, the smallest input side it takes, checked before any training.

Input: float32 (size, size, 1) in [0, 1] (see tasks.imaging.preprocess); output: P(pneumonia).
`seed_cnn` is the reference recipe layer for layer (it saw RGB, so the gray channel is
repeated to three); `fast_cnn`: a strided stem, plain conv blocks and global average pooling,
trained from scratch, several times the reference's training throughput on a CPU; it trains with
`FusedBatchNorm` and is saved with Keras' BatchNormalization (tasks.training.precision.servable).
"""
from __future__ import annotations

import keras
from keras import layers

from tasks.core import plugins
from tasks.core.config import ConfigError, FastCnn, Model

LAST_CONV = "last_conv"  # Grad-CAM reads this layer


def conv_block(x, filters: int, separable: bool = True, dropout: float = 0.0, name: str | None = None):
    """Two 3x3 convolutions, batch-norm, 2x2 max-pool (the reference's block)."""
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(filters, 3, activation="relu", padding="same")(x)
    x = conv(filters, 3, activation="relu", padding="same", name=name)(x)
    if separable:
        x = layers.BatchNormalization()(x)
    x = layers.MaxPool2D(2)(x)
    return layers.Dropout(dropout)(x) if dropout else x


def dense_block(x, units: int, dropout: float):
    x = layers.Dense(units, activation="relu")(x)
    return layers.Dropout(dropout)(x)


def seed_cnn(_, size: int) -> keras.Model:
    """The reference recipe: Conv 16, SeparableConv 32/64/128/256, dense 512/128/64, dropout .7/.5/.3."""
    inputs = keras.Input((size, size, 1), name="image")
    x = layers.Concatenate()([inputs, inputs, inputs])  # the recipe read RGB copies of gray X-rays
    x = conv_block(x, 16, separable=False)
    x = conv_block(x, 32)
    x = conv_block(x, 64)
    x = conv_block(x, 128, dropout=0.2)
    x = conv_block(x, 256, dropout=0.2, name=LAST_CONV)
    x = layers.Flatten()(x)
    for units, rate in ((512, 0.7), (128, 0.5), (64, 0.3)):
        x = dense_block(x, units, rate)
    return keras.Model(inputs, output(x), name="seed_cnn")


@keras.saving.register_keras_serializable(package="pneumonia")
class FusedBatchNorm(layers.BatchNormalization):
    """BatchNormalization of a channels-last 4-D input through TensorFlow's fused kernel: one op forward and one
    backward, where Keras 3 runs the batch moments and the normalisation as separate ops (docs/lab/measured.md has
    what it saves). Same weights, config and inference as the Keras layer; the moving variance is fed the
    batch variance with Bessel's correction (as Keras 2 did: n/(n-1) with n in the thousands). A trained model
    is saved with plain BatchNormalization (`tasks.training.precision.servable`), so no saved model needs this class."""

    def call(self, inputs, training=None, mask=None):
        if mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3) or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = keras.ops.cast(inputs, "float32")  # as Keras' layer: statistics in float32 under any policy
        gamma, beta = keras.ops.cast(self.gamma, "float32"), keras.ops.cast(self.beta, "float32")
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon)
            for stat, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                stat.assign(stat * self.momentum + batch * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, self.moving_mean, self.moving_variance,
                                                       epsilon=self.epsilon, is_training=False)
        return keras.ops.cast(y, self.compute_dtype)


def _conv_bn_relu(x, filters: int, strides: int = 1, name: str | None = None):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    x = FusedBatchNorm(momentum=0.9)(x)  # 0.99 lags for hundreds of steps: val scores collapse early
    return layers.Activation("relu", name=name)(x)


def output(x):
    """The pneumonia probability; float32 under any training precision (a bfloat16 sigmoid holds 3 digits,
    too few for a threshold or an AUC)."""
    return layers.Dense(1, activation="sigmoid", name="pneumonia", dtype="float32")(x)


def fast_cnn(p: FastCnn, size: int) -> keras.Model:
    """Strided stem (+ max-pool), blocks of `convs_per_block` conv+BN+ReLU with a max-pool between; GAP; sigmoid.

    Plain convolutions: on this CPU, TF's separable convolutions train 3-10x slower per FLOP.
    """
    inputs = keras.Input((size, size, 1), name="image")
    x = _conv_bn_relu(inputs, p.stem, strides=2)
    if p.stem_pool:
        x = layers.MaxPool2D(2)(x)
    for i, filters in enumerate(p.filters):
        last = i == len(p.filters) - 1
        for j in range(p.convs_per_block):
            x = _conv_bn_relu(x, filters, name=LAST_CONV if last and j == p.convs_per_block - 1 else None)
        if not last:
            x = layers.MaxPool2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(p.dropout)(x)
    return keras.Model(inputs, output(x), name="fast_cnn")


seed_cnn.min_size = lambda _: 32
fast_cnn.min_size = lambda p: 2 ** (len(p.filters) + p.stem_pool) * 2


def check(p: Model, size: int) -> None:
    """Raise ConfigError for an input too small for the chosen model, before any training."""
    builder = plugins.MODELS.get(p.name)
    need = getattr(builder, "min_size", lambda _: 1)(p.setting())
    if size < need:
        raise ConfigError(f"data.image_size={size} is too small for {p.name} (needs >= {need}); "
                          f"raise data.image_size or change model.{p.name}")


def build_model(p: Model, size: int) -> keras.Model:
    check(p, size)
    return plugins.MODELS.get(p.name)(p.setting(), size)
