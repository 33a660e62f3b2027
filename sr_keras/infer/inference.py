"""Load a trained upscaler: `load_upscaler(path)` accepts what `--export` writes (a SavedModel folder
holding `model.keras` beside `saved_model.pb`), a bare `.keras` file, a `.tflite` file, or a model name
(sr_keras.infer.loading).

The Keras model is preferred (loaded in safe mode, no pickle); a SavedModel without it is refused unless
the user vouches for it (`trust_model=True`), and then called through its uint8 `serving_default`
signature once sr_keras.infer.model_safety has found nothing but tensor math in what loading and serving it
would run; a `.tflite` file runs through LiteRT, in a child process, after its op list is checked
(sr_keras.infer.tflite_runner). A model's scale and output are probed only through these checked paths, and every
call's output is checked to be the input's size times the scale, with 3 channels (Upscaler.batch). A
model call runs so that SIGTERM and Ctrl-C still end the process (`interruptible`), and one that would
need more memory than is left is refused first (sr_keras.infer.memory.check_call_memory). A Keras model whose
output is not finite is refused, never written; a SavedModel or TFLite model returns uint8, in which
NaN or inf has already become some pixel value, so theirs cannot be detected here.

Running them on pictures of any size, tile by tile, is sr_keras.infer.tiling's (upscale_image, upscale_bands,
tile_side, re-exported here); the tile margin comes from sr_keras.infer.reach: the Keras layer graph, else
the one impulse probe (Upscaler.measure_reach) through whatever runs the model (a checked SavedModel, a
TFLite model, a Keras model with a layer reach.py does not know). A model whose reach exceeds the probe
runs each picture in one pass.
"""
import os

import numpy as np
import tensorflow as tf

from sr_keras.core.errors import UserError, first_line
from sr_keras.infer.loading import load_generator_config, load_keras_model, resolve, shape_text
from sr_keras.infer.memory import ACT_OVERHEAD, check_call_memory, memory_left
from sr_keras.infer.model_safety import SIGNATURE, check_savedmodel
from sr_keras.infer.reach import PROBE_REACH, analyse, probe_reach, receptive_radius
from sr_keras.infer.tiling import tile_side, upscale_bands, upscale_image
from sr_keras.infer.upscaler import Upscaler, interruptible, through_uint8

# What other modules import from here (the split modules above are where each lives).
__all__ = ["load_upscaler", "ModelCache", "open_savedmodel", "Upscaler", "interruptible", "through_uint8", "analyse",
           "receptive_radius", "probe_reach", "PROBE_REACH", "tile_side", "upscale_bands", "upscale_image",
           "memory_left", "check_call_memory", "ACT_OVERHEAD"]


def load_upscaler(path, trust_model=False):
    """Load a model for upscaling; raise UserError about `model` naming `path` (one line) when it cannot be.

    Args:
        path: a ModelRef (sr_keras.infer.loading.resolve), or what resolve takes: an export folder (its
            model.keras, else its SavedModel signature), a .keras file, a .tflite file written by
            sr_keras.exports.tflite.export_tflite (run by LiteRT), or a model name.
        trust_model: vouch for a SavedModel without model.keras (refused otherwise); its graph is still
            checked to run only tensor math (sr_keras.infer.model_safety). Only for SavedModels you wrote yourself.
    """
    ref = resolve(path, trust_model)
    if ref.kind == "tflite":
        from sr_keras.infer.tflite_runner import load_tflite_upscaler

        return load_tflite_upscaler(ref.path)
    if ref.kind == "savedmodel":
        return _from_savedmodel(ref)
    path = ref.path
    model = load_keras_model(ref)

    def quantised(dtype):
        # In-graph scaling and rounding: NumPy only ever sees integer tiles (memory), and the rounding
        # (round half to even, then clip) is the evaluation convention.
        top = float(np.iinfo(dtype).max)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], dtype)], reduce_retracing=True)
        def run(x):
            y = tf.cast(model(tf.cast(x, tf.float32) / top, training=False), tf.float32)
            return tf.cast(tf.clip_by_value(tf.round(y * top), 0.0, top), dtype), tf.reduce_all(tf.math.is_finite(y))

        def checked(x):
            out, finite = interruptible(run, x)
            if not finite:  # NaN would be cast to black pixels: refuse rather than write them
                raise UserError(f"'{path}': model output is not finite (NaN or inf); nothing is written",
                                argument="model")
            return out.numpy()

        return checked

    radius, act_bytes = analyse(model)
    upscaler = Upscaler(path, quantised(np.uint8), quantised(np.uint16), radius=radius, act_bytes=act_bytes,
                        config=load_generator_config(path))
    if radius is None:  # a layer whose spatial extent reach.py does not know: measured instead
        upscaler.measure_reach()
    return upscaler


class ModelCache:
    """Upscalers loaded once per model file, for callers that use a model many times (sr_keras.load, the
    tracks of evaluate.py). The key is the file's real path, modification time and trust: a re-export
    replaces the folder (a new modification time) and is loaded again."""

    def __init__(self):
        self._loaded = {}

    def get(self, path, trust_model=False):
        """load_upscaler(path, trust_model), or the upscaler it gave before for the same file."""
        ref = resolve(path, check=False)  # a SavedModel alone: checked by load_upscaler, once
        key = (os.path.realpath(ref.path), os.stat(ref.path).st_mtime_ns, bool(trust_model))
        if key not in self._loaded:
            self._loaded[key] = load_upscaler(ref, trust_model=bool(trust_model))
        return self._loaded[key]


def open_savedmodel(path, trust_model=False):
    """A SavedModel's uint8 serving signature, checked (sr_keras.infer.model_safety) before any of it runs.

    Args:
        path: a SavedModel folder, or its ModelRef (sr_keras.infer.loading.resolve; not checked again
            when resolve has checked it).
        trust_model: the user vouches for it (refused otherwise); its graph is checked all the same.

    Returns:
        (root, run_uint8): the loaded object (its `signatures[SIGNATURE].variables` are the model's
        weights) and a callable N x H x W x 3 uint8 -> N x sH x sW x 3 uint8 that keeps it alive.

    Raises:
        UserError: one line about `model` naming it when it is refused, unloadable, or its signature does not
            take and return uint8 image batches.
    """
    ref = resolve(path, trust_model)
    path = ref.path
    if not ref.checked:  # an export folder's SavedModel too: whatever is loaded here is checked first
        check_savedmodel(path, trust_model=trust_model)
    # A third guard beside the check's refusal of api_implements: the optimiser pass that swaps
    # functions by that attribute is off (this package's own models carry none).
    tf.config.optimizer.set_experimental_options({"implementation_selector": False})
    try:
        root = tf.saved_model.load(path)
        fn = root.signatures[SIGNATURE]
    except Exception as e:
        raise UserError(f"'{path}': cannot load the SavedModel: {first_line(e)}", argument="model") from e
    specs = fn.structured_input_signature[1]
    if len(specs) != 1 or next(iter(specs.values())).dtype != tf.uint8:
        raise UserError(f"'{path}': the SavedModel's {SIGNATURE} must take one uint8 image batch", argument="model")
    outputs = fn.structured_outputs
    if not isinstance(outputs, dict) or len(outputs) != 1:
        raise UserError(f"'{path}': the SavedModel's {SIGNATURE} must return one image batch", argument="model")
    out = next(iter(outputs.values()))
    if out.shape.rank is not None and out.shape.rank != 4:
        raise UserError(f"'{path}': not an image-to-image model (its output is {out.dtype.name} "
                        f"{shape_text(out.shape)})", argument="model")
    if out.dtype != tf.uint8:
        raise UserError(f"'{path}': its {SIGNATURE} returns {out.dtype.name} images, not uint8 as an export's",
                        argument="model")
    name, spec = next(iter(specs.items()))
    one_at_a_time = spec.shape.rank == 4 and spec.shape[0] == 1  # a signature fixed to a batch of one

    def call(x):  # holds `root`: the signature's variables live as long as the loaded object
        signature = root.signatures[SIGNATURE]
        return interruptible(lambda: next(iter(signature(**{name: tf.constant(x, tf.uint8)}).values())).numpy())

    def run_uint8(x):
        if one_at_a_time and len(x) != 1:
            parts = [call(x[i:i + 1]) for i in range(len(x))]
            if len({p.shape for p in parts}) != 1:  # one input shape, several output shapes
                raise UserError(f"'{path}': images of one size came back in several sizes "
                                f"({', '.join(sorted({'x'.join(map(str, p.shape)) for p in parts}))})",
                                argument="model")
            return np.concatenate(parts)
        return call(x)

    return root, run_uint8


def _from_savedmodel(ref):
    """An Upscaler calling the uint8 serving signature of a checked SavedModel (a ModelRef resolve checked)."""
    _, run_uint8 = open_savedmodel(ref)
    upscaler = Upscaler(ref.path, run_uint8, through_uint8(run_uint8), config=load_generator_config(ref.path))
    upscaler.measure_reach()
    return upscaler
