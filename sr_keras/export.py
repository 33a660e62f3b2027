"""Export a trained generator: a SavedModel with a uint8 serving signature, plus the Keras model.

    out_dir/saved_model.pb, variables/   serving_default: uint8 [N, H, W, 3], any H and W
                                          -> {"sr": uint8 [N, s*H, s*W, 3]} (round, then clip)
    out_dir/model.keras                   the float [0, 1] -> [0, 1] Keras model (load with safe mode)

The folder is built beside its destination and renamed into place, so a crash never leaves a
half-written export where a good one was; a folder holding anything else is never overwritten.
"""
import os
import re
import shutil

import keras
import numpy as np
import tensorflow as tf

from sr_keras.errors import UserError

# Everything tf.saved_model / Keras write into an export folder; anything else marks a foreign folder.
EXPORT_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", "model.keras"}


def is_export(path):
    """True for a folder written by export_model (a SavedModel and nothing foreign)."""
    entries = set(os.listdir(path))
    return "saved_model.pb" in entries and entries <= EXPORT_ENTRIES


def check_export_dir(out_dir):
    """Raise UserError unless out_dir is absent, empty, or a previous export (safe to replace).

    Training scripts call this before training, so a bad --export fails in seconds, not at the end.
    """
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise UserError(f"--export {out_dir} is a file, not a folder; choose another --export path")
    if os.listdir(out_dir) and not is_export(out_dir):
        raise UserError(f"--export {out_dir} is not empty and does not hold a previous export; "
                        "refusing to overwrite its files: choose an empty or new folder")


def _serving_module(model):
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        x = tf.cast(images, tf.float32) / 255.0
        # Cast first: a mixed-precision model returns float16/bfloat16, too coarse to round at 255 levels.
        y = tf.cast(model(x, training=False), tf.float32)
        return {"sr": tf.cast(tf.clip_by_value(tf.round(y * 255.0), 0.0, 255.0), tf.uint8)}

    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    return archive


def _check_scale(model, scale):
    out = model(np.zeros((1, 8, 8, 3), np.float32), training=False)
    if tuple(out.shape[1:3]) != (8 * scale, 8 * scale):
        raise ValueError(f"model upscales 8x8 to {tuple(out.shape[1:3])}, not x{scale}")


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


def export_model(model, scale, out_dir):
    """Write the SavedModel (uint8 serving_default) and model.keras to out_dir, atomically."""
    _check_scale(model, scale)
    out_dir = os.path.normpath(out_dir)
    parent = os.path.dirname(out_dir) or "."
    os.makedirs(parent, exist_ok=True)
    recover_export_dir(out_dir)
    check_export_dir(out_dir)
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _serving_module(model).write_out(tmp, verbose=False)
        model.save(os.path.join(tmp, "model.keras"))
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
