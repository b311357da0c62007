"""The model server's log: a client that hangs up mid-request is one warning line, not a traceback.

`mlflow models serve` runs uvicorn, which logs any exception that leaves the ASGI app as "Exception in
ASGI application" with its whole traceback. A client that closes the connection before its request body
arrives (a timeout, a cancelled upload, a load balancer's probe) makes Starlette raise ClientDisconnect
inside MLflow's handler: nothing was scored and nothing is wrong with the server, yet each such request
wrote 73 lines (measured on one request). The served model installs this filter when it loads inside the
scoring server.
"""
from __future__ import annotations

import logging

DISCONNECT = "a client closed the connection before its request arrived whole: nothing scored, still serving"


def is_disconnect(err: BaseException | None) -> bool:
    """Whether `err` is Starlette's ClientDisconnect, alone or as every member of an exception group."""
    if isinstance(err, BaseExceptionGroup):
        return all(is_disconnect(e) for e in err.exceptions)
    return type(err).__name__ == "ClientDisconnect"  # by name: the model must load where Starlette is absent


class Disconnects(logging.Filter):
    """Rewrites uvicorn's record of a client disconnect into one WARNING line; every other record passes as is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and is_disconnect(record.exc_info[1]):
            record.msg, record.args, record.exc_info, record.exc_text = DISCONNECT, (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_disconnects() -> None:
    """Install the filter on uvicorn's error logger, once per process."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, Disconnects) for f in logger.filters):
        logger.addFilter(Disconnects())
