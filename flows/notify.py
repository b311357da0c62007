"""POST a JSON message to a webhook (Slack, Teams or any incident hook); never raises: a hook that does not
answer is logged, and the run it reports on goes on."""
from __future__ import annotations

import json
import logging
import urllib.request


def post(url: str | None, payload: dict) -> bool:
    """Whether the hook at `url` (None: no hook configured) took the message."""
    if not url:
        return False
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"},
                                     method="POST")
    try:
        urllib.request.urlopen(request, timeout=10).close()
        return True
    except OSError as err:
        logging.getLogger(__name__).warning(f"webhook {url} did not answer: {err}")
        return False
