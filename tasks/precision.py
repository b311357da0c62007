"""Training precision (`train.precision`): the Keras dtype policy a training runs under, and the float32 copy
of the trained model that evaluation, the package and serving run."""
from __future__ import annotations

from tasks.config import Params


def policy(precision: str, flags: set[str] | None = None) -> str:
    """The Keras dtype policy of training: `mixed_bfloat16` (float32 weights, bfloat16 compute, a float32
    output layer) for `bfloat16`, and for `auto` where the CPU computes bfloat16 natively (AVX-512 BF16 or
    AMX; elsewhere it is emulated and slower); else `float32`."""
    if precision == "auto":
        if flags is None:
            from tasks import system

            flags = system.cpu_flags()
        precision = "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def as_float32(model, p: Params):
    """The trained model under the float32 policy, same weights: what evaluation, the package and serving run
    (their 1e-5 agreement holds in float32, and a CPU without bfloat16 serves it at full speed)."""
    import keras

    from tasks.model import build_model

    if model.dtype_policy.name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    plain = build_model(p.model, p.data.image_size)
    plain.set_weights(model.get_weights())
    return plain
