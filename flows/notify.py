"""Tell people: a Prefect notification block (`orchestration.notify_block`: Slack, Microsoft Teams, email, a
custom webhook, any of Prefect's notification blocks, set up once on the Prefect server) and, without a server,
a JSON POST to a webhook URL from the environment. Neither raises: a channel that does not answer is logged,
and the run it reports on goes on."""
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


def send(block: str, subject: str, body: str) -> bool:
    """Whether the Prefect notification block `block` ("<block-type-slug>/<name>", e.g. "slack-webhook/alerts";
    "": none configured) took the message."""
    if not block:
        return False
    from prefect.blocks.core import Block

    try:
        Block.load(block).notify(body, subject=subject)
        return True
    except Exception as err:  # noqa: BLE001 - a missing block, a refused login, an unreachable service: all alike
        logging.getLogger(__name__).warning(f"notification block {block!r} did not deliver: {err}")
        return False


def configured_block() -> str:
    """`orchestration.notify_block` of the checkout's params.yaml; "" when the file cannot be read (the failure
    being reported may be that very file)."""
    from tasks.core import config

    try:
        return config.load().orchestration.notify_block
    except Exception:  # noqa: BLE001 - a bad params.yaml is reported by the flow itself
        return ""


def drift_alert(command: str, site: str, out: dict) -> None:
    """A monitoring alert (`out` of tasks.monitoring.monitor.test_and_record: alert text, model, batch) to the
    Prefect notification block and $PNEUMONIA_ALERT_WEBHOOK, from whichever flow tested the batch."""
    import os

    from tasks.core import config

    r = out["result"]
    send(config.load().orchestration.notify_block, f"{command} ALERT, site {site}", out["alert"])
    post(os.environ.get("PNEUMONIA_ALERT_WEBHOOK"),
         {"text": f"{command} ALERT: {out['alert']}", "site": site, "model_uri": out["model_uri"],
          "batch": r["batch"], "drifted": r["drifted"],
          "p_values": {t: r[t]["p_value"] for t in ("features", "scores", "ood")}})
