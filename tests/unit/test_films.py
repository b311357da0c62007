"""A folder of films (tasks/imaging/films.py): the one listing and decoder of predict, monitor and the site loop."""
from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import StepError
from tasks.imaging import films
from tasks.monitoring.monitor_store import new_films
from tasks.scoring.predict import image_files
from tests.helpers import image_bytes


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "NORMAL").mkdir()
    (tmp_path / "__MACOSX/NORMAL").mkdir(parents=True)
    (tmp_path / "NORMAL/a.jpeg").write_bytes(image_bytes(1))
    (tmp_path / "NORMAL/twin.JPEG").write_bytes(image_bytes(1))
    (tmp_path / "NORMAL/b.png").write_bytes(image_bytes(2, fmt="PNG"))
    (tmp_path / "NORMAL/broken.jpeg").write_bytes(b"not an image")
    (tmp_path / "__MACOSX/NORMAL/._a.jpeg").write_bytes(b"resource fork")
    (tmp_path / "NORMAL/.a.partial-42.jpeg").write_bytes(b"half a file")  # a write a kill interrupted
    (tmp_path / "notes.txt").write_text("not a film")
    return tmp_path


def test_every_command_lists_the_same_films(folder):
    listed = films.listing(folder)
    assert listed == ["NORMAL/a.jpeg", "NORMAL/b.png", "NORMAL/broken.jpeg", "NORMAL/twin.JPEG"]
    assert [str(f.relative_to(folder)) for f in image_files([str(folder)])] == listed  # pneumonia-predict

    class NothingSeen:
        def seen(self, version):
            return set()

    paths, _, _ = new_films(folder, NothingSeen(), "1")  # pneumonia-monitor: the twin once
    assert paths == [p for p in listed if p != "NORMAL/twin.JPEG"]


def test_read_collects_what_it_cannot_decode_and_load_names_it(folder):
    paths = films.listing(folder)
    pixels, kept, errors = films.read(folder, paths, 32)
    assert pixels.shape == (3, 32, 32) and pixels.dtype == np.uint8
    assert [paths[i] for i in kept] == ["NORMAL/a.jpeg", "NORMAL/b.png", "NORMAL/twin.JPEG"]
    assert list(errors) == ["NORMAL/broken.jpeg"]
    with pytest.raises(StepError, match="broken.jpeg"):
        films.load(folder, paths, 32)
    assert films.load(folder, [paths[i] for i in kept], 32).shape == (3, 32, 32)


def test_a_missing_or_empty_folder_is_refused(tmp_path):
    with pytest.raises(StepError, match="is not a folder"):
        films.listing(tmp_path / "missing")
    with pytest.raises(StepError, match="holds no image files"):
        films.listing(tmp_path)
