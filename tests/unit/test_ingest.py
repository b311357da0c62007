import functools
import hashlib
import http.server
import io
import os
import threading

import numpy as np
import pandas as pd
import pytest

from tasks import ingest
from tasks.sources import medmnist
from tests.helpers import deep_update, image_bytes, kaggle_tree, tree_digest, write_params


def _corrupt(root):
    bad = {
        root / "train" / "NORMAL" / "IM-0900-0001.jpeg": b"",
        root / "train" / "NORMAL" / "IM-0901-0001.JPEG": image_bytes(9)[:200],
        root / "train" / "PNEUMONIA" / "person900_virus_1.jpeg": b"<html>not an image</html>",
    }
    for path, data in bad.items():
        path.write_bytes(data)
    return bad


def test_folder_ingest_writes_manifest_and_pixels(workdir):
    root = kaggle_tree(workdir / "src", patients=3, per_patient=2)
    (root / "train" / "NORMAL" / "IM-0800-0001.PNG").write_bytes(image_bytes(77, fmt="PNG"))  # upper-case suffix
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(root)}, "data": {"image_size": 32}})
    manifest = ingest.run(p)
    pixels = np.load(p.paths.pixels)
    assert len(manifest) == 13 and pixels.shape == (13, 32, 32) and pixels.dtype == np.uint8
    assert list(manifest.columns) == ingest.COLUMNS
    row = manifest[manifest.path.str.endswith("IM-0800-0001.PNG")].iloc[0]
    assert (row.label, row["class"], row.patient_id) == (0, "NORMAL", "IM-0800")
    assert row.sha256 == hashlib.sha256(image_bytes(77, fmt="PNG")).hexdigest()
    i = manifest.index[manifest.path == row.path][0]
    assert pixels[i].mean() == pytest.approx(row["mean"], abs=1e-3)  # row i of the store is manifest row i


def test_bad_images_fail_naming_every_file_and_write_nothing(workdir):
    root = kaggle_tree(workdir / "src", patients=2, per_patient=1)
    bad = _corrupt(root)
    before = tree_digest(root)
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(root), "workers": 1}})
    with pytest.raises(ingest.BadImages) as err:
        ingest.run(p)
    for path in bad:
        assert path.name in str(err.value)
    assert "on_bad_image: skip" in str(err.value)
    assert not (workdir / p.paths.manifest).exists()
    assert tree_digest(root) == before  # the source is never modified


def test_skip_quarantines_bad_images(workdir):
    root = kaggle_tree(workdir / "src", patients=2, per_patient=1)
    bad = _corrupt(root)
    p = write_params(workdir, {"ingest": {"source": "folder", "input": str(root), "on_bad_image": "skip"}})
    manifest = ingest.run(p)
    quarantine = pd.read_csv(p.paths.quarantine)
    assert len(manifest) == 4 and len(quarantine) == len(bad)
    assert set(quarantine.problem.str.split(" ").str[0]) == {"empty", "truncated", "not"}


def test_process_parallel_equals_serial(workdir):
    root = kaggle_tree(workdir / "src", patients=20, per_patient=2)
    outs = []
    for workers in (1, 2):
        p = write_params(workdir, {"ingest": {"source": "folder", "input": str(root), "workers": workers}})
        outs.append((ingest.run(p), np.load(p.paths.pixels)))
    pd.testing.assert_frame_equal(outs[0][0], outs[1][0])
    assert np.array_equal(outs[0][1], outs[1][1])


def test_demo_is_deterministic_and_patients_have_several_images(workdir):
    overrides = {"ingest": {"demo": {"patients": 30, "size": 64}}, "data": {"image_size": 32}}
    p = write_params(workdir, overrides)
    first, px1 = ingest.run(p), np.load(p.paths.pixels)
    second, px2 = ingest.run(p), np.load(p.paths.pixels)
    pd.testing.assert_frame_equal(first, second)
    assert np.array_equal(px1, px2)
    assert first.patient_id.value_counts().max() > 1 and first.label.nunique() == 2
    # no single-brightness cue: the class means overlap well within one standard deviation
    means = first.groupby("label")["mean"]
    assert abs(means.mean().diff().iloc[-1]) < means.std().max()


@pytest.fixture
def http_dir(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _fake_mnist(size=28):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    arrays = {}
    for split, n in (("train", 30), ("val", 10), ("test", 12)):
        arrays[f"{split}_images"] = (rng.random((n, size, size)) * 255).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def test_medmnist_download_checks_md5_and_keeps_splits(workdir, http_dir):
    www, base = http_dir
    data = _fake_mnist(64)
    (www / "pneumoniamnist_64.npz").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    p = write_params(workdir, {"data": {"image_size": 32}, "ingest": {
        "source": "medmnist", "input": "data/raw/pneumoniamnist_64.npz",
        "medmnist": {"size": 64, "url": base + "/pneumoniamnist{suffix}.npz", "md5": {64: md5}}}})
    manifest = ingest.run(p)
    assert manifest.source_split.value_counts().to_dict() == {"train": 30, "test": 12, "val": 10}
    assert np.load(p.paths.pixels).shape == (52, 32, 32)
    assert (workdir / "data/raw/pneumoniamnist_64.npz").read_bytes() == data  # cached for the next run


def test_medmnist_bad_md5_is_refused_and_not_cached(workdir, http_dir):
    www, base = http_dir
    (www / "pneumoniamnist.npz").write_bytes(_fake_mnist())
    dest = workdir / "cache.npz"
    with pytest.raises(medmnist.SourceError, match="md5"):
        medmnist.download(medmnist.url_for(base + "/pneumoniamnist{suffix}.npz", 28), dest, "0" * 32)
    assert not dest.exists() and not list(workdir.glob("*.part"))


def test_unknown_source_is_a_clear_error(workdir):
    with pytest.raises(ingest.StepError, match="`params.ingest.source`: 'dicom' is not known; choose one of demo"):
        write_params(workdir, {"ingest": {"source": "dicom"}})


def test_a_disk_that_fills_during_ingest_keeps_the_last_outputs_and_says_so_in_one_line(workdir):
    """A real short write: ingest rerun under a file-size limit smaller than its pixel store, so numpy's `np.save`
    fails the way a full disk makes it fail (an OSError without an errno: "N requested and M written")."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    from tasks.core.files import file_md5
    from tests.helpers import REPO, TINY_DEMO, write_params

    p = write_params(workdir, TINY_DEMO)
    ingest.run(p)
    before = {f: file_md5(f) for f in (p.paths.pixels, p.paths.manifest)}
    limit = Path(p.paths.pixels).stat().st_size // 2  # the manifest and the demo's PNGs fit, the pixels do not
    p = write_params(workdir, deep_update(TINY_DEMO, {"ingest": {"demo": {"seed": 8}}}))  # new pixels to write

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "tasks.ingest"], cwd=workdir, capture_output=True, text=True,
                          timeout=300, preexec_fn=small_disk, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if "error" in line] == [
        f"ingest: error: no space left on the device writing {p.paths.pixels}: free some space and rerun; nothing "
        "half-written was kept"]
    assert {f: file_md5(f) for f in before} == before  # the last good store and manifest, untouched
    assert not [f for f in Path(p.paths.pixels).parent.iterdir() if "partial" in f.name]
    assert np.load(p.paths.pixels).shape[0] == len(pd.read_csv(p.paths.manifest))


@pytest.mark.parametrize("err, named", [
    (OSError("4096 requested and 0 written"), None),  # numpy's tofile
    (OSError(27, "Unable to extend file properly, errno = 27, error message = 'file too large' (file write failed: "
                 "filename = 'models/backup/epoch-1.weights.h5', ...)"), "models/backup/epoch-1.weights.h5"),  # HDF5
    (RuntimeError("The following failures occurred while downloading one or more artifacts: [Errno 27] File too "
                  "large: 'models/model.keras' -> '/tmp/x/model.keras'"), "/tmp/x/model.keras"),  # MLflow's copy
    (OSError(28, "No space left on device", "reports/metrics.json"), "reports/metrics.json")])
def test_a_short_write_is_read_as_a_full_disk_whichever_library_reports_it(err, named):
    """What the other writers raised under the same file-size limit (train's backup, package's copy; checked by
    hand, docs/reliability.md), and what the full-disk line then names."""
    from tasks.core.files import out_of_space, written

    assert out_of_space(err) and written(err) == named
    assert not out_of_space(OSError(2, "No such file or directory", "x")) and not out_of_space(ValueError("bad"))
