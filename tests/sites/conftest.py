import pytest

from tests.pipeline.conftest import repo_copy  # noqa: F401  (the git+DVC checkout fixture)


@pytest.fixture
def site_films(tmp_path):
    """A site's inbox of generated films from another "acquisition": every film brighter at the top, normals
    with a bright band the source never saw; NORMAL/PNEUMONIA folders name the truth for the test only."""
    import numpy as np
    from PIL import Image

    from tasks.sources.demo import chest_image

    rng = np.random.default_rng(3)
    root = tmp_path / "inbox"
    for i in range(40):
        sick = i % 2 == 1
        img = chest_image(rng, 64, sick).astype(np.float32)
        img[:, :8] = 255 if not sick else img[:, :8]
        folder = root / ("PNEUMONIA" if sick else "NORMAL")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"DEMO-{9000 + i // 2 * 2 + sick}-01.png")
    for film in sorted(root.rglob("*-01.png"))[:3]:  # films exported twice under two names (byte-identical)
        (film.parent / film.name.replace("-01.png", "-02.png")).write_bytes(film.read_bytes())
    return root
