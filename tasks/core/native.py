"""TensorFlow imported without its start-up notices on the terminal of a user's command.

TensorFlow 2.21 prints "oneDNN custom operations are on ..." (twice, each after "WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR") from native code while it loads, before it
reads TF_CPP_MIN_LOG_LEVEL: no setting silences it. The commands users run by hand (pneumonia-predict,
pneumonia-monitor, pneumonia-site) import TensorFlow through `import_tensorflow` first: the process's stderr
is caught while it loads, and every line but those notices is written back. PNEUMONIA_DEBUG=1 shows all.
"""
from __future__ import annotations

import os
import sys
import tempfile

NOTICES = ("WARNING: All log messages before absl::InitializeLog()", "I0000 00:00:")  # INFO, pre-logging only


def import_tensorflow() -> None:
    """Import TensorFlow (once per process) with its native INFO notices kept off stderr."""
    if "tensorflow" in sys.modules or os.environ.get("PNEUMONIA_DEBUG"):
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)  # the native code writes to file descriptor 2, not to sys.stderr
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode(errors="replace").splitlines(keepends=True)
                    if not line.startswith(NOTICES)]
            sys.stderr.write("".join(kept))
