"""What every benchmark prints first: the CPU it ran on (figures only compare within one machine); and how a
speed is timed on a shared machine."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from tasks.training.system import cpu_flags


def cpu() -> str:
    """The CPU model and the extensions that change TensorFlow's speed (avx2, avx512f, avx512_bf16, amx_tile),
    and the limit `ONEDNN_MAX_CPU_ISA` sets on the ones TensorFlow uses."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(x for x in lines if x.startswith("model name")).split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor()
    extra = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in cpu_flags()]
    # ONEDNN_MAX_CPU_ISA=AVX2 makes TensorFlow's kernels run as on an AVX2-only CPU of the same cores
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{name} ({', '.join(extra)})" + (f", oneDNN limited to {limit}" if limit else "")


def bfloat16_kernels() -> bool:
    """False under an ISA limit without bfloat16 (`ONEDNN_MAX_CPU_ISA=AVX2`, the AVX2 stand-in), where oneDNN has
    no mixed-precision convolution and a bfloat16 model fails to run."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return not limit or "BF16" in limit or "AMX" in limit


def interleaved(calls: dict, rounds: int) -> dict[str, list[float]]:
    """The seconds of each call, per round: every call runs once untimed (it traces its graphs), then each round
    times every call once, one after the other. A shared machine's capacity moves (docs/lab/measured.md): figures
    compared within a round were taken seconds apart, not minutes."""
    for call in calls.values():
        call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    return seconds
