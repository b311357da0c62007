"""The training augmentation: `augmenter(train.augment, seed)`, a keras.Sequential of the steps params.yaml
lists, in its order; each step is an entry of tasks.core.plugins.AUGMENTATIONS called as `fn(amount, seed)`.

The built-in steps suit X-rays: a small affine, brightness and contrast, an optional horizontal flip and
never a vertical one (a chest film has an orientation). Inputs are float32 in [0, 1]; tasks.training.batches
clips after.
"""
from __future__ import annotations

from tasks.core import plugins
from tasks.core.config import Augment


def rotation(amount: float, seed: int):
    from keras import layers
    return layers.RandomRotation(amount, fill_mode="constant", seed=seed)  # a fraction of a full turn


def zoom(amount: float, seed: int):
    from keras import layers
    return layers.RandomZoom(amount, amount, fill_mode="constant", seed=seed)


def shift(amount: float, seed: int):
    from keras import layers
    return layers.RandomTranslation(amount, amount, fill_mode="constant", seed=seed)


def brightness(amount: float, seed: int):
    from keras import layers
    return layers.RandomBrightness(amount, value_range=(0.0, 1.0), seed=seed)


def contrast(amount: float, seed: int):
    from keras import layers
    return layers.RandomContrast(amount, value_range=(0.0, 1.0), seed=seed)


def horizontal_flip(on: bool, seed: int):
    from keras import layers
    return layers.RandomFlip("horizontal", seed=seed) if on else None


def augmenter(a: Augment, seed: int):
    """The steps of `a` as one keras.Sequential; step i draws from `seed + i`, so a step's randomness does
    not depend on the others'."""
    import keras

    steps = [plugins.AUGMENTATIONS.get(name)(amount, seed + i) for i, (name, amount) in enumerate(a.active())]
    return keras.Sequential([s for s in steps if s is not None], name="augment")
