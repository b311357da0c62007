"""Extension points: a new source, model, augmentation step and threshold method each cost one module and
one params.yaml section. The module here is a real package found through its entry points, as a plugin
package installed with pip would be."""
import textwrap

import numpy as np
import pandas as pd
import pytest

from tasks.core import config, plugins
from tasks.measure import metrics as M
from tests.helpers import TINY_DEMO, write_params

PLUGIN = '''
from pathlib import Path

import numpy as np
from PIL import Image

from tasks.core.sections import Section


class Shapes(Section):
    patients: int


def shapes(cfg, ingest, workdir):
    """A source: a Kaggle-layout folder of generated films, `patients` per class and split."""
    root = Path(workdir) / "shapes"
    rng = np.random.default_rng(0)
    for k, split in enumerate(("train", "val", "test")):
        for label, name in enumerate(("NORMAL", "PNEUMONIA")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(cfg.patients):
                pixels = (rng.random((40, 40)) * 100 + 60 * label).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"person{label}{k}{i:02d}_virus_1.png")
    return root


class Tiny(Section):
    units: int


def tiny(cfg, size):
    """A model: global pooling, `units` dense units, the pipeline's float32 output."""
    import keras
    from tasks.training.model import output

    inputs = keras.Input((size, size, 1), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3, name="last_conv")(inputs))
    return keras.Model(inputs, output(keras.layers.Dense(cfg.units)(x)), name="tiny")


def invert(on, seed):
    """An augmentation step: the negative film."""
    import keras
    return keras.layers.Lambda(lambda x: 1.0 - x) if on else None


class Fixed(Section):
    value: float


def fixed(y, prob, cfg):
    """A threshold method: a number from params.yaml."""
    return cfg.value
'''
ENTRY_POINTS = """
[pneumonia_mlops.sources]
shapes = fake_plugin:SOURCE
[pneumonia_mlops.models]
tiny = fake_plugin:MODEL
[pneumonia_mlops.augmentations]
invert = fake_plugin:AUGMENTATION
[pneumonia_mlops.thresholds]
fixed = fake_plugin:THRESHOLD
"""
REGISTRIES = (plugins.SOURCES, plugins.MODELS, plugins.AUGMENTATIONS, plugins.THRESHOLDS)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """fake_plugin installed on sys.path with its entry points (a dist-info folder, as pip writes it)."""
    site = tmp_path / "site"
    (site / "fake_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "fake_plugin-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\n"
                                                                 "Version: 0.1\n")
    (site / "fake_plugin-0.1.dist-info" / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "fake_plugin.py").write_text(PLUGIN + textwrap.dedent('''
        from tasks.core.plugins import Entry
        SOURCE = Entry(shapes, Shapes)
        MODEL = Entry(tiny, Tiny)
        AUGMENTATION = Entry(invert, bool)
        THRESHOLD = Entry(fixed, Fixed)
    '''))
    monkeypatch.syspath_prepend(str(site))
    for registry in REGISTRIES:  # read the entry points afresh, forget them afterwards
        monkeypatch.setattr(registry, "entries", dict(registry.entries))
        monkeypatch.setattr(registry, "_loaded", False)
    return site


PARAMS = {**TINY_DEMO, "ingest": {"source": "shapes", "shapes": {"patients": 6}},
          "model": {"name": "tiny", "tiny": {"units": 3}},
          "train": {"augment": {"rotation": 0, "zoom": 0, "shift": 0, "brightness": 0, "contrast": 0, "invert": True}},
          "evaluate": {"threshold": "fixed", "fixed": {"value": 0.42}}}


def test_a_plugin_package_adds_a_source_model_augmentation_and_threshold(installed, workdir):
    from tasks import ingest
    from tasks.training.augment import augmenter
    from tasks.training.model import build_model

    p = write_params(workdir, PARAMS)
    for registry, name in zip(REGISTRIES, ("shapes", "tiny", "invert", "fixed")):
        assert name in registry.names()

    manifest = ingest.run(p)  # the source: its folder read and decoded as any Kaggle-layout one
    assert len(manifest) == 36 and set(manifest.source_split) == {"train", "val", "test"}
    assert pd.read_csv(p.paths.manifest).patient_id.nunique() == 36

    model = build_model(p.model, p.data.image_size)  # the model, with its own settings
    assert model.name == "tiny" and model.output_shape == (None, 1)
    assert model.layers[-2].units == 3

    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    steps = augmenter(p.train.augment, seed=1)  # the step, after the built-ins params.yaml still lists
    assert np.allclose(np.asarray(steps(x, training=True)), 1.0 - x, atol=1e-6)

    y, raw = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    assert M.operating_point(y, raw, p.evaluate)["threshold"] == pytest.approx(0.42)


def test_a_plugins_params_section_is_checked_like_any_other(installed, workdir):
    with pytest.raises(config.ConfigError, match=r"unknown key `params.model.tiny.unit`; known keys: units"):
        write_params(workdir, {**PARAMS, "model": {"name": "tiny", "tiny": {"unit": 3}}})
    with pytest.raises(config.ConfigError, match=r"missing key `params.evaluate.fixed` \(the settings of fixed\)"):
        write_params(workdir, {"evaluate": {"threshold": "fixed"}})
    with pytest.raises(config.ConfigError, match=r"`params.train.augment.invert`: input should be a valid boolean"):
        write_params(workdir, {"train": {"augment": {"invert": "sometimes"}}})


def test_without_the_package_its_names_are_unknown(workdir):
    with pytest.raises(config.ConfigError, match=r"`params.model.name`: 'tiny' is not known; choose one of fast_cnn"):
        write_params(workdir, {"model": {"name": "tiny"}})
