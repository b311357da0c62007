"""The reviewer's page in a real browser (Debian's chromium and chromium-driver, driven by Selenium): label by
keyboard and by button, go back and change a label, reload, kill the server mid-review and restart, finish; the
labels file then passes adapt's checks and holds exactly what was given. Films are asked for by position only."""
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from tasks.imaging import films as film_folder
from tasks.sites import films, review, stage
from tests.helpers import CHROMIUM, write_params
from tests.unit.test_dicom import dicom_bytes

pytestmark = pytest.mark.slow
DRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver (Debian) are not "
                                                                    "installed (.ci/run installs them)")
BIN = Path(sys.executable).parent


def site(folder: Path):
    """A site set up as query leaves it: 6 worklist films (one DICOM) and a 2-film measurement sample."""
    from PIL import Image

    from tasks.sources.demo import chest_image

    p = write_params(folder)
    images = folder / "inbox"
    rng = np.random.default_rng(0)
    for i in range(8):
        (images / "films").mkdir(parents=True, exist_ok=True)
        pixels = chest_image(rng, 96, bool(i % 2))
        if i == 0:
            (images / "films" / f"DEMO-{7000 + i}-01.dcm").write_bytes(dicom_bytes(pixels))
        else:
            Image.fromarray(pixels).save(images / "films" / f"DEMO-{7000 + i}-01.png")
    paths = film_folder.listing(images)
    stage.write(p, "st1", images, "models:/pneumonia-classifier/1")
    f = stage.files(p, "st1")
    pd.DataFrame({"rank": range(1, 7), "path": paths[:6]}).to_csv(f["worklist"], index=False)
    pd.DataFrame({"path": paths[6:]}).to_csv(f["measure"], index=False)
    return p, images, f, review.order(paths[:6], paths[6:], p.sites.seed)


def start(cwd: Path):
    proc = subprocess.Popen([str(BIN / "pneumonia-site"), "review", "--site", "st1"], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, line + proc.stderr.read()
    return proc, url.group(0), line


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                 "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"):  # offline but for the page
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait_text(driver, element: str, text: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 20).until(lambda d: text in d.find_element(By.ID, element).text)


def press(driver, key: str, progress: str | None = None):
    from selenium.webdriver.common.by import By

    driver.find_element(By.TAG_NAME, "body").send_keys(key)
    if progress:
        wait_text(driver, "progress", progress)


@needs_browser
def test_a_reviewer_labels_the_worklist_in_a_browser_and_nothing_is_lost(workdir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    os.environ["SE_OFFLINE"] = "true"  # Selenium never downloads a driver: Debian's is given
    p, images, f, order = site(workdir)
    proc, url, line = start(workdir)
    driver = browser()
    try:
        assert "0 of 8 films labelled" in line
        driver.get(url)
        wait_text(driver, "progress", "0 of 8 labelled")
        assert "DEMO" not in driver.page_source and "films/" not in driver.page_source  # positions, never names
        given = {}
        for i, key in enumerate("npnnp"):
            press(driver, key, f"{i + 1} of 8 labelled")
            given[order[i]] = {"n": "NORMAL", "p": "PNEUMONIA"}[key]
        saved = pd.read_csv(f["reviewed"])
        assert dict(zip(saved.path, saved.label)) == given  # each label saved the moment it was given
        press(driver, "b")  # back to the fifth film, and change its label
        wait_text(driver, "position", "film 5 of 8")
        press(driver, "n", "5 of 8 labelled")
        given[order[4]] = "NORMAL"
        assert dict(zip(*pd.read_csv(f["reviewed"]).T.values)) == given
        press(driver, Keys.ARROW_UP)  # window/level: brighter
        assert "brightness(1.1" in driver.find_element(By.ID, "film").get_attribute("style")
        driver.refresh()  # resumes at the first film without a label
        wait_text(driver, "position", "film 6 of 8")
        second = subprocess.run([str(BIN / "pneumonia-site"), "review", "--site", "st1"], cwd=workdir,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "another review of site st1 is open" in second.stderr
        for bad in ("film/99", "film/-1", "film/..%2F..%2Fparams.yaml", "film/0/../../params.yaml"):
            assert requests.get(url + bad, timeout=10).status_code in (404, 422), bad
        proc.send_signal(signal.SIGKILL)  # the server dies mid-review
        proc.wait(10)
        proc, url, line = start(workdir)
        assert "5 of 8 films labelled" in line
        driver.get(url)
        wait_text(driver, "position", "film 6 of 8")
        for i, button in zip(range(5, 8), ("btn-pneumonia", "btn-normal", "btn-pneumonia")):
            driver.find_element(By.ID, button).click()
            wait_text(driver, "progress", f"{i + 1} of 8 labelled")
            given[order[i]] = "PNEUMONIA" if button == "btn-pneumonia" else "NORMAL"
        wait_text(driver, "done", "pneumonia-site adapt --site st1")
        driver.save_screenshot(str(workdir / "done.png"))
    finally:
        driver.quit()
        proc.kill()
    labels = films.read_labels(f["reviewed"], images)  # adapt's own checks
    assert len(labels) == 8
    assert dict(zip(labels.path, np.where(labels.label == 1, "PNEUMONIA", "NORMAL"))) == given
