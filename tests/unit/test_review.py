"""The review page's server without a browser (FastAPI's test client): films asked for by position only, each
label saved whole at once, a labels file read by adapt's checks while the page writes it."""
import threading

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tasks.imaging import films as film_folder
from tasks.sites import films, review
from tests.helpers import image_bytes


@pytest.fixture
def page(tmp_path):
    images = tmp_path / "inbox"
    (images / "a").mkdir(parents=True)
    for i in range(6):
        (images / "a" / f"IM-{i:04d}-0001.jpeg").write_bytes(image_bytes(i))
    paths = film_folder.listing(images)
    out = tmp_path / "reviewed.csv"
    pd.DataFrame({"path": ["elsewhere/IM-9999-0001.jpeg"], "label": ["NORMAL"]}).to_csv(out, index=False)
    r = review.Review(review.order(paths[:4], paths[4:], seed=0), images, out)
    return r, TestClient(review.app(r, "st1")), images, out


def test_the_order_mixes_the_sample_into_the_worklist_and_is_the_same_every_time():
    worklist, sample = [f"w{i}" for i in range(20)], [f"s{i}" for i in range(10)]
    once = review.order(worklist, sample, seed=3)
    assert once == review.order(worklist, sample, seed=3) and sorted(once) == sorted(worklist + sample)
    assert [x for x in once if x.startswith("w")] != worklist  # shuffled, so the sample is not at the end


def test_labels_are_saved_at_once_and_only_films_of_the_review_are_served(page):
    r, client, images, out = page
    assert client.get("/api/state").json()["done"] == 0  # a label of a film no longer asked for is not counted
    assert client.post("/api/label", json={"position": 2, "label": "PNEUMONIA"}).json()["done"] == 1
    saved = pd.read_csv(out)
    assert dict(zip(saved.path, saved.label)) == {r.films[2]: "PNEUMONIA", "elsewhere/IM-9999-0001.jpeg": "NORMAL"}
    client.post("/api/label", json={"position": 2, "label": None})
    assert r.films[2] not in set(pd.read_csv(out).path)
    assert client.post("/api/label", json={"position": 1, "label": "pneumonia?"}).status_code == 422
    assert client.post("/api/label", json={"position": 6, "label": "NORMAL"}).status_code == 404
    assert client.get("/film/0").headers["content-type"] == "image/png"
    for bad in ("/film/6", "/film/-1", "/film/..%2F..%2Freviewed.csv", "/film/0/../../reviewed.csv"):
        assert client.get(bad).status_code in (404, 422), bad
    page_html = client.get("/").text
    assert "IM-0" not in page_html and "https://" not in page_html and 'src="http' not in page_html  # no CDN


def test_a_labels_file_written_while_adapt_reads_it_is_always_whole(page):
    r, _, images, out = page
    stop = threading.Event()

    def label_again_and_again():
        k = 0
        while not stop.is_set():
            r.set(k % len(r.films), ("NORMAL", "PNEUMONIA")[k % 2])
            k += 1

    writer = threading.Thread(target=label_again_and_again)
    writer.start()
    try:
        for _ in range(30):
            rows = pd.read_csv(out)
            rows = rows[rows.path.str.startswith("a/")]
            rows.to_csv(out.with_name("snapshot.csv"), index=False)
            if len(rows):
                assert len(films.read_labels(out.with_name("snapshot.csv"), images)) == len(rows)
    finally:
        stop.set()
        writer.join()
