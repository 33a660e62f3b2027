"""TFLite export: the SavedModel's uint8 signature as a `.tflite` model for phones and browsers.

`export_tflite(model, path)` converts the same function the SavedModel serves (uint8 [N, H, W, 3] ->
uint8 [N, sH, sW, 3], round then clip) with TFLite builtin ops only; H and W stay dynamic, so
`Interpreter.resize_tensor_input` takes any size. `fp16=True` stores the weights as float16 (about
half the file; the CPU kernels dequantise them once at load). What it writes passes the loader's op
allowlist (sr_keras.infer.tflite_runner.check_ops).
"""
import tempfile

from sr_keras.core.errors import naming
from sr_keras.infer.tflite_runner import check_ops


def convert(model, fp16=False):
    """The .tflite bytes of a float [0, 1] -> [0, 1] Keras generator, served as the SavedModel is.

    Args:
        model: keras.Model taking [N, H, W, 3] float images.
        fp16: store the weights as float16.
    """
    import tensorflow as tf

    from sr_keras.exports.savedmodel import serving_module

    with tempfile.TemporaryDirectory() as tmp:
        serving_module(model).write_out(tmp, verbose=False)  # frozen from here: no variables in the .tflite
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def export_tflite(model, path, fp16=False):
    """Write model (a Keras generator) to `path` as a .tflite file, atomically; returns `path`. A refused op is
    a UserError about `export`."""
    from sr_keras.core.imageio import atomic_write_bytes

    data = convert(model, fp16)
    with naming(model="export"):  # what it writes, it must load
        check_ops(data, path)
    atomic_write_bytes(path, data)
    return path
