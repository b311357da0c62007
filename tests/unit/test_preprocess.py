import base64

import numpy as np
import pytest

from tasks import ingest
from tasks.imaging import preprocess
from tasks.scoring.serving import decode_images
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


@pytest.mark.parametrize("value, reason", [(12345, "`image` is a int, not a string"), (None, "`image` is a NoneType"),
                                           ("", "`image` is empty"), ("not base64!", "`image` is not valid base64")])
def test_a_bad_image_cell_is_refused_for_its_own_reason_naming_the_row(value, reason):
    from tasks.scoring.serving import BadRow

    good = base64.b64encode(image_bytes(1)).decode()
    with pytest.raises(BadRow, match=rf"row 1: {reason}"):
        decode_images([good, value], 32)
