"""Test helpers: tiny Kaggle-like image trees and params files written into a temp folder."""
from __future__ import annotations

import copy
import hashlib
import io
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from tasks.core import config

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "chest_xray"


def image_bytes(seed: int, size: int = 64, fmt: str = "JPEG", mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size)) * 200 + 20).astype(np.uint8)
    img = Image.fromarray(arr, mode="L")
    if mode != "L":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def kaggle_tree(root: Path, splits=("train",), patients: int = 6, per_patient: int = 2) -> Path:
    """root/chest_xray/<split>/{NORMAL,PNEUMONIA}/ with Kaggle-style names; returns root/chest_xray."""
    base = root / "chest_xray"
    seed = 0
    for split in splits:
        for p in range(patients):
            for i in range(per_patient):
                seed += 1
                normal = base / split / "NORMAL" / f"IM-{split[:2]}{p:02d}-{i:04d}.jpeg"
                sick = base / split / "PNEUMONIA" / f"person{split[:2]}{p}_bacteria_{seed}.jpeg"
                for path in (normal, sick):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(image_bytes(seed + (path is sick) * 1000))
    return base


def tree_digest(root: Path) -> str:
    """A hash of every file's path and bytes under root, to prove a source was not modified."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def deep_update(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = deep_update(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def defaults(section: str, **changes):
    """A params section as params.yaml holds it (the only place values live), with `changes` applied."""
    return getattr(config.load(REPO / "params.yaml"), section).model_copy(update=changes)


def write_params(folder: Path, overrides: dict | None = None) -> config.Params:
    """params.yaml of the repo with `overrides` applied, written to folder; returns it loaded."""
    raw = deep_update(config.read_yaml(REPO / "params.yaml"), overrides or {})
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return config.load(folder / "params.yaml")


TINY_DEMO = {"ingest": {"demo": {"patients": 40, "size": 64}}, "data": {"image_size": 48},
             "validate": {"min_per_class": 5}}
TINY_TRAIN = {**TINY_DEMO, "train": {"epochs": 2, "batch_size": 16, "patience": 5}, "evaluate": {"gradcam": 2}}


@contextmanager
def webhook():
    """A local HTTP endpoint on 127.0.0.1 that records the JSON bodies POSTed to it; yields (url, bodies)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    bodies = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", bodies
    finally:
        server.shutdown()


CHROMIUM = shutil.which("chromium")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--virtual-time-budget=15000", "--window-size=1400,1000"]


def chromium(url: str, out: Path, offline: bool = False) -> str:
    """Screenshot `url` to `out` and return the rendered DOM; `offline`: every request off the page fails (a
    proxy on a closed port), as on a hospital machine without internet."""
    profile = out.parent / f"profile-{out.stem}"
    flags = [*CHROME_FLAGS, f"--user-data-dir={profile}"] + (["--proxy-server=127.0.0.1:9"] if offline else [])
    subprocess.run([CHROMIUM, *flags, f"--screenshot={out}", url], capture_output=True, timeout=120)
    return subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
