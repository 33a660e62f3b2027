"""Reading scalars back from TensorBoard event files (what Keras' TensorBoard callback writes).

An event file may be damaged or crafted: a record whose length runs past the end of the file (TF's
reader would try to allocate it and crash the interpreter), a record that is not an Event or fails its
checksum, a tensor that claims a huge shape or an unknown type. The curves read before the damage are
kept; a bad record ends the file's reading with one warning line naming it, a bad value is skipped.
"""
import glob
import os
import struct
import sys

import tensorflow as tf
from google.protobuf.message import DecodeError

from sr_keras.core.errors import UserError, one_line

_HEADER = 12  # a TFRecord: uint64 length, uint32 CRC of the length, the data, uint32 CRC of the data
_FOOTER = 4


def _framed_records(path):
    """How many records, from the start of the file `path`, lie within it. What follows them is not a
    whole record: a file cut short (a run still writing, or killed) or a damaged length; it is not read."""
    size, pos, count = os.path.getsize(path), 0, 0
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(_HEADER)
            (length,) = struct.unpack("<Q", head[:8]) if len(head) == _HEADER else (size,)
            if length > size - pos - _HEADER - _FOOTER:
                break
            pos += _HEADER + length + _FOOTER
            count += 1
    return count


def _scalar(value):
    """The float a summary value holds, or None when it holds no scalar (an image, a histogram, a
    tensor of another shape or type)."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor") or value.metadata.plugin_data.plugin_name not in ("scalars", ""):
        return None
    tensor = value.tensor
    if any(d.size != 1 for d in tensor.tensor_shape.dim):  # checked first: make_ndarray allocates the shape
        return None
    try:
        if not tf.dtypes.as_dtype(tensor.dtype).is_numpy_compatible:
            return None
        arr = tf.make_ndarray(tensor)
    except (TypeError, ValueError):  # an unknown type, content of the wrong length
        return None
    if arr.size != 1 or arr.dtype.kind not in "fiu":
        return None
    return float(arr.reshape(()))


def _warn(message):
    print(f"warning: {one_line(message)}", file=sys.stderr)


def read_scalars(run_dir, warn=_warn):
    """TensorBoard scalars under `run_dir`, read recursively.

    Both encodings Keras uses are read: `simple_value` and one-element scalar tensors. A file cut short
    by a crash keeps what was read before the cut; a damaged one too, with a `warn` naming it.

    Args:
        run_dir: a training run folder (or any folder holding events.out.tfevents.* files).
        warn: called with one line for each damaged event file; default: a warning on stderr.

    Returns:
        {series: {tag: {step: value}}}; a series is the event file's folder name (Keras: "train",
        "validation").

    Raises:
        UserError: about `logs` ("logs 'runs/x' holds no ..."), when run_dir holds no event file.
    """
    files = sorted(glob.glob(os.path.join(glob.escape(run_dir), "**", "events.out.tfevents.*"), recursive=True))
    if not files:
        raise UserError(f"'{run_dir}' holds no TensorBoard event files (events.out.tfevents.*)", argument="logs")
    series = {}
    for f in files:
        name = os.path.basename(os.path.dirname(f))
        try:
            count = _framed_records(f)
        except OSError as e:
            warn(f"cannot read event file '{f}' ({e.strerror or type(e).__name__}); its curves are left out")
            continue
        try:
            # only the framed records: a length past the end never reaches TF's reader
            for record in tf.data.TFRecordDataset(f).take(count).as_numpy_iterator():
                ev = tf.compat.v1.Event.FromString(record)
                for v in ev.summary.value:
                    val = _scalar(v)
                    if val is not None:
                        series.setdefault(name, {}).setdefault(v.tag, {})[int(ev.step)] = val
        except (tf.errors.OpError, DecodeError) as e:  # a bad checksum, a record that is not an Event
            reason = "a record is not a TensorBoard event" if isinstance(e, DecodeError) else \
                "a record fails its checksum" if isinstance(e, tf.errors.DataLossError) else type(e).__name__
            warn(f"event file '{f}' is damaged ({reason}); its curves stop at the last good record")
    return series
