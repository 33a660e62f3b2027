"""Export a trained generator: a SavedModel with a uint8 serving signature, plus the Keras model.

    out_dir/saved_model.pb, variables/   serving_default: uint8 [N, H, W, 3], any H and W
                                          -> {"sr": uint8 [N, s*H, s*W, 3]} (round, then clip)
    out_dir/model.keras                   the float [0, 1] -> [0, 1] Keras model (load with safe mode),
                                          without optimizer state
    out_dir/generator.json                the generator's GeneratorConfig (sr_keras.archs.config), so loading
                                          knows exactly what was exported

On a backend other than TensorFlow (KERAS_BACKEND=jax) the export is model.keras and generator.json only:
export.py on a TensorFlow machine makes the SavedModel from it. The folder is built beside its
destination and renamed into place, so a crash never leaves a
half-written export where a good one was; a folder holding anything else is never overwritten.
"""
import os
import re
import shutil

import keras

from sr_keras.core.backend import is_tensorflow
from sr_keras.core.errors import UserError
from sr_keras.core.imageio import atomic_write_text
from sr_keras.exports.model_card import CARD_FILE
from sr_keras.infer.loading import CONFIG_FILE, KERAS_FILE, probe_scale

# Everything export_model and the training run's card write into an export folder; anything else marks a
# foreign folder. A re-export replaces the whole folder, so a card never outlives the weights it describes.
EXPORT_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", KERAS_FILE, CONFIG_FILE, CARD_FILE}


def is_export(path):
    """True for a folder written by export_model (a SavedModel or, off TensorFlow, model.keras, and nothing
    foreign)."""
    entries = set(os.listdir(path))
    return bool(entries & {"saved_model.pb", KERAS_FILE}) and entries <= EXPORT_ENTRIES


def check_export_dir(out_dir):
    """Raise UserError unless out_dir is absent, empty, or a previous export (safe to replace).

    Training scripts call this before training, so a bad --export fails in seconds, not at the end
    (outputs.check_writable_parent proves the place writable).

    Args:
        out_dir: the export folder; errors are about `export` ("export runs/x is a file, ...").
    """
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise UserError(f"{out_dir} is a file, not a folder; choose another path", argument="export")
    if os.listdir(out_dir) and not is_export(out_dir):
        raise UserError(f"{out_dir} is not empty and does not hold a previous export; "
                        "refusing to overwrite its files: choose an empty or new folder", argument="export")


def serving_module(model):
    """A keras.export.ExportArchive serving `model` as uint8 images -> {"sr": uint8} (serving_default);
    the SavedModel export and the TFLite conversion (sr_keras.infer.tflite_runner) both write it."""
    # No archive.track(model): add_endpoint tracks the variables the endpoint uses, and tracking the model
    # as well stores every weight a second time (Keras 3.15 keeps both lists), doubling the SavedModel.
    import tensorflow as tf

    archive = keras.export.ExportArchive()

    def serve(images):
        x = tf.cast(images, tf.float32) / 255.0
        # Cast first: a mixed-precision model returns float16/bfloat16, too coarse to round at 255 levels.
        y = tf.cast(model(x, training=False), tf.float32)
        return {"sr": tf.cast(tf.clip_by_value(tf.round(y * 255.0), 0.0, 255.0), tf.uint8)}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    return archive


def _check_matches(model, config):
    """Refuse a config that does not describe the model (a generator.json edited or copied from another
    export): generator.json must rebuild it exactly. One line (UserError), before anything is written."""
    scale = probe_scale(lambda x: model(x, training=False), model.name)
    if scale != config.scale:
        raise UserError(f"the model upscales x{scale}, its config ({CONFIG_FILE}) says x{config.scale}")
    expected = [tuple(w.shape) for w in config.build().weights]
    if [tuple(w.shape) for w in model.weights] != expected:
        raise UserError(f"the model's weights do not match a generator built from its config ({CONFIG_FILE}: "
                        f"{config.describe()}, x{config.scale})")


def _without_training_state(model):
    """The same model, uncompiled: Keras 3 saves a compiled model's optimizer state into .keras
    whatever include_optimizer says, and an export has no use for it (Adam's doubles the file)."""
    bare = type(model).from_config(model.get_config())
    bare.set_weights(model.get_weights())
    return bare


def _temp_siblings(out_dir):
    """{path: pid} of the temporary folders export_model builds beside out_dir (.NAME.tmp-PID[.old])."""
    parent, name = os.path.split(out_dir)
    pattern = re.compile(rf"^\.{re.escape(name)}\.tmp-(\d+)(\.old)?$")
    found = {}
    for entry in os.listdir(parent or "."):
        match = pattern.match(entry)
        if match:
            found[os.path.join(parent, entry)] = int(match.group(1))
    return found


def recover_export_dir(out_dir):
    """Undo what a killed export_model (kill -9) left beside out_dir.

    Between its two renames the previous export exists only as .NAME.tmp-PID.old: if out_dir is missing,
    the newest such export is moved back. Then the temporary folders of other processes are removed.
    """
    out_dir = os.path.normpath(out_dir)
    siblings = _temp_siblings(out_dir)
    if not os.path.exists(out_dir):
        olds = [p for p in siblings if p.endswith(".old") and os.path.isdir(p) and is_export(p)]
        if olds:
            newest = max(olds, key=os.path.getmtime)
            os.replace(newest, out_dir)
            del siblings[newest]
    for path, pid in siblings.items():
        if pid != os.getpid():
            shutil.rmtree(path, ignore_errors=True)


def export_model(model, out_dir, config):
    """Write the SavedModel (uint8 serving_default; TensorFlow only), model.keras and generator.json to
    out_dir, atomically.

    Args:
        model: the generator, a float [0, 1] -> [0, 1] keras.Model.
        out_dir: the export folder (absent, empty, or a previous export, which is replaced).
        config: the GeneratorConfig the model was built from; its scale is the export's.

    Returns:
        out_dir, normalised.
    """
    _check_matches(model, config)
    out_dir = os.path.normpath(out_dir)
    parent = os.path.dirname(out_dir) or "."
    os.makedirs(parent, exist_ok=True)
    recover_export_dir(out_dir)
    check_export_dir(out_dir)
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if is_tensorflow():
            serving_module(model).write_out(tmp, verbose=False)
        else:
            os.makedirs(tmp)
        _without_training_state(model).save(os.path.join(tmp, KERAS_FILE))
        atomic_write_text(os.path.join(tmp, CONFIG_FILE), config.to_json() + "\n")
        _swap_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _swap_into_place(tmp, out_dir):
    # rename() replaces an empty folder atomically; a previous export is first moved aside, so at
    # every moment one complete export exists at out_dir or at the .old path next to it.
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        old = f"{tmp}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)
