"""Prefect orchestration of the DVC stages: when, retries, schedules, summaries. No ML logic here."""
