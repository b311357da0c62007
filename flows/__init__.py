"""Prefect orchestration of the DVC stages: when, retries, schedules, summaries. No ML logic here."""
import os

# Prefect reads these when it starts its temporary API: set before any flows module imports prefect
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
