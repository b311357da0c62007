"""The reviewer's page: `pneumonia-site review --site NAME` serves, on 127.0.0.1, one film at a time of the site's
worklist and measurement sample (mixed, in a fixed order that does not say which is which), and saves each label
the moment it is given into `<paths.sites>/NAME/reviewed.csv` (`path,label`, the format `adapt` reads), written
whole and renamed into place: closing the browser or killing the server loses nothing, and reopening resumes at
the first film without a label. One review of a site at a time (a lock); two tabs of the same page share it.

The page shows films by their position only (no name, no path, no header value); a film is asked for by that
position, so no request can reach a file outside the worklist. Everything the page needs (its script, its
style) is served by the page itself (`review.html`): no CDN, no build step. FastAPI and uvicorn come with MLflow.
"""
from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from tasks.core.errors import StepError
from tasks.core.files import atomic, exclusive

LABELS = ("NORMAL", "PNEUMONIA")
PAGE = Path(__file__).with_name("review.html")


def order(worklist: list[str], sample: list[str], seed: int) -> list[str]:
    """The films in the order the reviewer sees them: the worklist and the sample shuffled together (seeded, so a
    restarted page shows the same order)."""
    films = list(dict.fromkeys([*worklist, *sample]))
    return [films[i] for i in np.random.default_rng(seed).permutation(len(films))]


class Label(BaseModel):
    """A label the page sends: the film's position in the review, NORMAL, PNEUMONIA or None (unlabelled)."""
    position: int
    label: str | None


class Review:
    """The labels of one site's review, saved on every change."""

    def __init__(self, films: list[str], images: Path, out: Path):
        self.films, self.images, self.out = films, images, out
        self.lock = threading.Lock()
        self.labels: dict[str, str] = {}
        if out.exists():  # resume; labels of films no longer asked for (a new worklist) are kept too
            saved = pd.read_csv(out, dtype=str)
            self.labels = {p: lab for p, lab in zip(saved.path, saved.label) if lab in LABELS}

    def state(self) -> dict:
        return {"total": len(self.films), "labels": [self.labels.get(f) for f in self.films],
                "done": sum(f in self.labels for f in self.films)}

    def set(self, position: int, label: str | None) -> dict:
        """Label (or, with None, unlabel) the film at `position`, then save every label atomically."""
        film = self.films[position]
        with self.lock:
            if label is None:
                self.labels.pop(film, None)
            else:
                self.labels[film] = label
            rows = [(f, self.labels[f]) for f in self.films if f in self.labels]
            rows += [(f, lab) for f, lab in self.labels.items() if f not in set(self.films)]
            with atomic(self.out) as tmp:
                pd.DataFrame(rows, columns=["path", "label"]).to_csv(tmp, index=False)
        return self.state()

    def png(self, position: int) -> bytes:
        """The film at `position` as an 8-bit PNG at its own size (DICOM through its window), for the page."""
        from PIL import Image

        from tasks.imaging.images import decode

        gray, _ = decode((self.images / self.films[position]).read_bytes())
        buf = io.BytesIO()
        Image.fromarray(gray).save(buf, format="PNG")
        return buf.getvalue()


def app(review: Review, site: str):
    """The page's FastAPI app: `/` the page, `/api/state`, `POST /api/label`, `/film/<position>`."""
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, Response

    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def film(position: int) -> int:
        if not 0 <= position < len(review.films):
            raise HTTPException(404, "no such film in this review")
        return position

    @api.get("/", response_class=HTMLResponse)
    def page():
        return PAGE.read_text().replace("{{site}}", site)

    @api.get("/api/state")
    def state():
        return review.state()

    @api.post("/api/label")
    def label(body: Label):
        if body.label is not None and body.label not in LABELS:
            raise HTTPException(422, f"label must be one of {', '.join(LABELS)} or null")
        return review.set(film(body.position), body.label)

    @api.get("/film/{position}")
    def image(position: int):
        return Response(review.png(film(position)), media_type="image/png", headers={"Cache-Control": "no-store"})

    return api


def only_review(folder: Path, site: str):
    """The site's review lock, for a `with` block; StepError when another review of the site holds it."""
    return exclusive(folder / "review.lock", f"another review of site {site} is open; finish it (or stop its "
                                             "server) first: two reviewers must not write one labels file")


def serve(review: Review, site: str, folder: Path, port: int) -> None:
    """Serve the page on 127.0.0.1:`port` (0: a free one) until interrupted; prints its address first."""
    import uvicorn

    with only_review(folder, site):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            raise StepError(f"port {port} on 127.0.0.1 is taken ({err.strerror}): give --port another one") from None
        sock.listen(64)  # connections wait in the backlog until uvicorn serves: the printed address answers at once
        state = review.state()
        print(f"review of site {site}: {state['done']} of {state['total']} films labelled; open "
              f"http://127.0.0.1:{sock.getsockname()[1]}/ (labels saved to {review.out}; Ctrl-C stops)", flush=True)
        server = uvicorn.Server(uvicorn.Config(app(review, site), log_level="warning"))
        server.run(sockets=[sock])
