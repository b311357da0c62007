"""Training precision (`train.precision`): the Keras dtype policy a training runs under, and the plain float32
copy of the trained model that evaluation, the package and serving run."""
from __future__ import annotations


def policy(precision: str, flags: set[str] | None = None) -> str:
    """The Keras dtype policy of training: `mixed_bfloat16` (float32 weights, bfloat16 compute, a float32
    output layer) for `bfloat16`, and for `auto` where the CPU computes bfloat16 natively (AVX-512 BF16 or
    AMX; elsewhere it is emulated and slower); else `float32`."""
    if precision == "auto":
        if flags is None:
            from tasks.training import system

            flags = system.cpu_flags()
        precision = "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def servable(model):
    """The trained model as evaluation, the package and serving run it, same weights: under the float32 policy
    (their 1e-5 agreement holds in float32, and a CPU without bfloat16 serves it at full speed) and with
    Keras' own BatchNormalization in place of training's FusedBatchNorm (a saved model loads without this
    code)."""
    import keras

    from tasks.training.model import FusedBatchNorm

    def plain(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        kind = keras.layers.BatchNormalization if isinstance(layer, FusedBatchNorm) else type(layer)
        return kind.from_config(config)

    if model.dtype_policy.name == "float32" and not any(isinstance(x, FusedBatchNorm) for x in model.layers):
        return model
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")  # the model's own policy is the global one at its making
    try:
        copy = keras.models.clone_model(model, clone_function=plain)
    finally:
        keras.mixed_precision.set_global_policy(before)
    copy.set_weights(model.get_weights())
    return copy
