"""efficientnet_lite0: the ImageNet weights are read without torch, land in the right layers, and a
file that is not a state dict is refused before it can run anything."""
import pickle
import struct

import numpy as np
import pytest

from tasks import config, pretrained
from tasks.model import build_model
from tests.helpers import defaults


@pytest.fixture(scope="module")
def state_dict():
    return pretrained.read_state_dict(pretrained.weights_path())


def test_the_packaged_weights_are_the_lite0_state_dict(state_dict):
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state_dict["_fc.weight"].shape == (1000, 1280)  # the ImageNet classifier (not used)
    assert all(np.all(state_dict[k] >= 0) for k in state_dict if k.endswith("running_var"))  # variances


def test_pretrained_backbone_holds_the_imagenet_weights(state_dict):
    model = build_model(defaults("model", name="efficientnet_lite0", pretrained=True), 64)
    np.testing.assert_array_equal(model.get_layer("stem").get_weights()[0],
                                  state_dict["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("b7_dw").get_weights()[0],
                                  state_dict["_blocks.7._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    gamma, beta, mean, var = model.get_layer("head_bn").get_weights()
    np.testing.assert_array_equal(var, state_dict["_bn1.running_var"])
    scores = model.predict(np.random.default_rng(0).random((3, 64, 64, 1), dtype=np.float32), verbose=0)
    assert scores.shape == (3, 1) and np.all((scores > 0) & (scores < 1))
    assert model.layers[-1].input.shape[-1] == pretrained.FEATURES  # the features tasks.ood reads

    scratch = build_model(defaults("model", name="efficientnet_lite0", pretrained=False), 64)
    assert not np.array_equal(scratch.get_layer("stem").get_weights()[0], model.get_layer("stem").get_weights()[0])


def test_too_small_an_input_is_refused_before_training():
    with pytest.raises(config.ConfigError, match="too small for efficientnet_lite0"):
        build_model(defaults("model", name="efficientnet_lite0"), 24)


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickle_with_foreign_code_is_refused(tmp_path, capsys):
    bad = tmp_path / "weights.pth"
    with open(bad, "wb") as fh:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, fh)
        pickle.dump({"_conv_stem.weight": _Payload()}, fh)
        pickle.dump([], fh)
        fh.write(struct.pack("<q", 0))
    model = build_model(defaults("model", name="efficientnet_lite0", pretrained=False), 64)
    with pytest.raises(pretrained.WeightsError, match=r"weights.pth: not the EfficientNet-Lite0 state dict"):
        pretrained.load_imagenet(model, bad)
    assert "pwned" not in capsys.readouterr().out
