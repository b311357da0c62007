import base64

import numpy as np

from tasks import ingest, preprocess
from tasks.serving import decode_images
from tests.helpers import image_bytes, kaggle_tree, write_params


def test_training_and_serving_see_the_same_pixels_for_the_same_file(workdir):
    root = kaggle_tree(workdir / "src", patients=2, per_patient=1)
    (root / "train/NORMAL/IM-0700-0001.png").write_bytes(image_bytes(5, size=300, fmt="PNG", mode="RGBA"))
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(root)}, "data": {"image_size": 64}})
    manifest = ingest.run(p)
    stored = np.load(p.paths.pixels)
    for i, path in enumerate(manifest.path):
        served = decode_images([base64.b64encode(open(path, "rb").read()).decode()], 64)
        assert np.array_equal(served[0], stored[i]), path
        for mode in preprocess.MODES:
            assert np.array_equal(preprocess.normalize(served, mode), preprocess.normalize(stored[i:i + 1], mode))


def test_equalize_removes_exposure_differences():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 64, 64)).astype(np.uint8)
    darker = (img * 0.6).astype(np.uint8)
    a, b = preprocess.normalize(img), preprocess.normalize(darker)
    assert np.abs(a - b).mean() < 0.02 < np.abs(img / 255.0 - darker / 255.0).mean()
    assert a.shape == (1, 64, 64, 1) and a.min() >= 0 and a.max() <= 1


def test_clahe_raises_local_contrast_of_a_hazy_image_and_keeps_the_shape():
    from tasks.preprocess import normalize

    rng = np.random.default_rng(0)
    detail = rng.integers(0, 2, (4, 64, 64)) * 40  # fine structure
    haze = np.linspace(60, 180, 64)[None, :, None]  # a smooth gradient across the film
    hazy = (haze + detail * 0.25).clip(0, 255).astype(np.uint8)
    local = lambda x: np.abs(np.diff(x[..., 0], axis=2)).mean()  # noqa: E731
    out = normalize(hazy, "clahe")
    assert out.shape == (4, 64, 64, 1) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert local(out) > 2 * local(normalize(hazy, "scale"))
    assert normalize(hazy[:0], "clahe").shape == (0, 64, 64, 1)
