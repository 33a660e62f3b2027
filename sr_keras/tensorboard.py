"""Reading scalars back from TensorBoard event files (what Keras' TensorBoard callback writes)."""
import glob
import os

import tensorflow as tf

from sr_keras.errors import UserError


def read_scalars(run_dir, flag="--logs"):
    """TensorBoard scalars under `run_dir`, read recursively.

    Both encodings Keras uses are read: `simple_value` and one-element scalar tensors. A file cut short
    by a crash keeps what was read before the cut.

    Args:
        run_dir: a training run folder (or any folder holding events.out.tfevents.* files).
        flag: the command-line flag that gave `run_dir`, for the error message.

    Returns:
        {series: {tag: {step: value}}}; a series is the event file's folder name (Keras: "train",
        "validation").
    """
    files = sorted(glob.glob(os.path.join(glob.escape(run_dir), "**", "events.out.tfevents.*"), recursive=True))
    if not files:
        raise UserError(f"{flag} '{run_dir}' holds no TensorBoard event files (events.out.tfevents.*)")
    series = {}
    for f in files:
        name = os.path.basename(os.path.dirname(f))
        try:
            for record in tf.data.TFRecordDataset(f).as_numpy_iterator():
                ev = tf.compat.v1.Event.FromString(record)
                for v in ev.summary.value:
                    if v.HasField("simple_value"):
                        val = float(v.simple_value)
                    elif v.HasField("tensor") and v.metadata.plugin_data.plugin_name in ("scalars", ""):
                        arr = tf.make_ndarray(v.tensor)
                        if arr.size != 1 or arr.dtype.kind not in "fiu":
                            continue
                        val = float(arr.reshape(()))
                    else:
                        continue
                    series.setdefault(name, {}).setdefault(v.tag, {})[int(ev.step)] = val
        except tf.errors.DataLossError:
            continue
    return series
