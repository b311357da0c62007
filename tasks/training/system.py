"""Machine use during training, one reading per epoch, under MLflow's system-metric names.

MLflow samples system metrics only inside an active run, and this project records a training run after
training (tasks/records/tracking.py: a run exists only for a model that was made). So the train step samples
them itself: at the end of each epoch, the machine's CPU use since the previous epoch, its memory in
use, and the training process's resident memory. They join the epoch's logs, so `paths.history`
keeps them and the recorded run holds them as `system/...` metrics, which the MLflow UI draws in its
"System metrics" tab. `cpu_flags` says what the CPU computes natively (tasks.training.precision.policy reads it).
"""
from __future__ import annotations

CPU = "system/cpu_utilization_percentage"
MEMORY = "system/system_memory_usage_megabytes"
MEMORY_SHARE = "system/system_memory_usage_percentage"
PROCESS = "system/train_process_rss_megabytes"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo: avx2, avx512_bf16, amx_bf16, ...); empty where unreadable."""
    from pathlib import Path

    try:
        line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def reading(process) -> dict[str, float]:
    """The machine's CPU use (%) since the previous call, its memory in use and the process's resident set."""
    import psutil

    memory = psutil.virtual_memory()
    return {CPU: psutil.cpu_percent(None), MEMORY: round((memory.total - memory.available) / 2**20, 1),
            MEMORY_SHARE: memory.percent, PROCESS: round(process.memory_info().rss / 2**20, 1)}


def callback():
    """A Keras callback adding `reading()` to each epoch's logs (it must come before the CSV logger)."""
    import keras
    import psutil

    class SystemMetrics(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.process = psutil.Process()
            psutil.cpu_percent(None)  # the first call only starts the interval

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs.update(reading(self.process))

    return SystemMetrics()
