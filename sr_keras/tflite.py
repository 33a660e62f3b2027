"""TFLite export and loading: the SavedModel's uint8 signature as a `.tflite` model for phones and browsers.

`export_tflite(model, path)` converts the same function the SavedModel serves (uint8 [N, H, W, 3] ->
uint8 [N, sH, sW, 3], round then clip) with TFLite builtin ops only; H and W stay dynamic, so
`Interpreter.resize_tensor_input` takes any size. `fp16=True` stores the weights as float16 (about
half the file; the CPU kernels dequantise them once at load).

A `.tflite` file is a program too: it can hold TensorFlow (Flex) ops, file ops among them, and
custom ops. `check_ops` reads the operator codes straight from the file's flatbuffer (a few lines of
struct parsing below; no interpreter is built and nothing is run) and refuses any op that is not in
ALLOWED_OPS, a list of TFLite builtin tensor-math ops, with one line naming the model and the op.
Only then does `load_tflite_upscaler` build an interpreter: LiteRT's (`ai-edge-litert`) when it is
installed, else TensorFlow's deprecated `tf.lite.Interpreter`.
"""
import os
import struct
import tempfile
import warnings

import numpy as np

from sr_keras.errors import UserError, first_line

# TFLite BuiltinOperator codes (tensorflow/compiler/mlir/lite/schema/schema.fbs) of tensor math: no
# control flow (subgraph calls), no resource or variable ops, no CUSTOM (32, which Flex ops use).
ALLOWED_OPS = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE", 8: "FLOOR", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU",
    20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 26: "SPACE_TO_DEPTH", 28: "TANH",
    34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 42: "DIV", 43: "SQUEEZE", 45: "STRIDED_SLICE", 47: "EXP",
    49: "SPLIT", 53: "CAST", 54: "PRELU", 55: "MAXIMUM", 57: "MINIMUM", 59: "NEG", 60: "PADV2", 65: "SLICE",
    67: "TRANSPOSE_CONV", 69: "TILE", 70: "EXPAND_DIMS", 74: "SUM", 75: "SQRT", 76: "RSQRT", 77: "SHAPE",
    78: "POW", 83: "PACK", 88: "UNPACK", 92: "SQUARE", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU",
    99: "SQUARED_DIFFERENCE", 100: "MIRROR_PAD", 101: "ABS", 102: "SPLIT_V", 105: "REVERSE_V2", 114: "QUANTIZE",
    116: "ROUND", 117: "HARD_SWISH", 130: "BROADCAST_TO", 150: "GELU",
}
_CUSTOM = 32
# The widest receptive radius (LR pixels) the impulse probe can see; a model reaching further is
# tiled with this margin plus the user's overlap.
_PROBE_RADIUS = 48


class _Table:
    """One flatbuffer table: its fields by index (the schema's field order), read from the vtable."""

    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vsize = struct.unpack_from("<H", buf, self.vtable)[0]

    def _field(self, index):
        at = 4 + 2 * index
        off = struct.unpack_from("<H", self.buf, self.vtable + at)[0] if at < self.vsize else 0
        return self.pos + off if off else None

    def scalar(self, index, fmt, default=0):
        at = self._field(index)
        return default if at is None else struct.unpack_from(fmt, self.buf, at)[0]

    def _target(self, index):
        at = self._field(index)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def string(self, index):
        at = self._target(index)
        if at is None:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode("utf-8", "replace")

    def tables(self, index):
        at = self._target(index)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        return [_Table(self.buf, at + 4 + 4 * i + struct.unpack_from("<I", self.buf, at + 4 + 4 * i)[0])
                for i in range(n)]


def operator_names(data):
    """The names of the operators a .tflite model declares (Model.operator_codes), builtin or custom.

    Args:
        data: the file's bytes.

    Raises:
        ValueError: when the bytes are not a TFLite flatbuffer.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (no TFL3 identifier)")
    try:
        model = _Table(data, struct.unpack_from("<I", data, 0)[0])
        names = []
        for code in model.tables(1):  # OperatorCode: deprecated_builtin_code, custom_code, version, builtin_code
            builtin = max(code.scalar(0, "<b"), code.scalar(3, "<i"))
            if builtin == _CUSTOM:
                names.append(f"custom op '{code.string(1)}'")
            else:
                names.append(ALLOWED_OPS.get(builtin, f"builtin op {builtin}"))
        return names
    except (struct.error, IndexError, UnicodeError) as e:
        raise ValueError(f"damaged TFLite flatbuffer: {e}") from e


def check_ops(data, shown, flag="--model"):
    """Raise UserError (one line naming the model and the op) unless every op is in ALLOWED_OPS."""
    try:
        names = operator_names(data)
    except ValueError as e:
        raise UserError(f"{flag} '{shown}': cannot read the TFLite model: {first_line(e)}") from e
    allowed = set(ALLOWED_OPS.values())
    for name in names:
        if name not in allowed:
            raise UserError(f"{flag} '{shown}' uses {name}, which is not in the allowlist of TFLite tensor-math ops "
                            "(sr_keras.tflite.ALLOWED_OPS); refusing to run it")
    return names


def convert(model, fp16=False):
    """The .tflite bytes of a float [0, 1] -> [0, 1] Keras generator, served as the SavedModel is.

    Args:
        model: keras.Model taking [N, H, W, 3] float images.
        fp16: store the weights as float16.
    """
    import tensorflow as tf

    from sr_keras.export import serving_module

    with tempfile.TemporaryDirectory() as tmp:
        serving_module(model).write_out(tmp, verbose=False)  # frozen from here: no variables in the .tflite
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if fp16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def export_tflite(model, path, fp16=False):
    """Write model (a Keras generator) to `path` as a .tflite file, atomically; returns `path`."""
    from sr_keras.imageio import atomic_write_bytes

    data = convert(model, fp16)
    check_ops(data, path, "export")  # what it writes, it must load
    atomic_write_bytes(path, data)
    return path


def _interpreter(data, threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():  # its deprecation notice: LiteRT is used whenever installed
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_content=data, num_threads=threads)
    return Interpreter(model_content=data, num_threads=threads)


class _Runner:
    """One interpreter; re-allocates only when the batch shape changes (the tiler keeps it fixed)."""

    def __init__(self, data):
        self.it = _interpreter(data, os.cpu_count())
        inp, out = self.it.get_input_details(), self.it.get_output_details()
        if len(inp) != 1 or len(out) != 1 or inp[0]["dtype"] != np.uint8 or out[0]["dtype"] != np.uint8:
            raise ValueError("expected one uint8 image input and one uint8 image output")
        self.inp, self.out, self.shape = inp[0]["index"], out[0]["index"], None

    def __call__(self, x):
        if x.shape != self.shape:
            self.it.resize_tensor_input(self.inp, list(x.shape))
            self.it.allocate_tensors()
            self.shape = x.shape
        self.it.set_tensor(self.inp, np.ascontiguousarray(x, np.uint8))
        self.it.invoke()
        return self.it.get_tensor(self.out).copy()


def probe_radius(run, scale):
    """LR pixels of context an output pixel depends on, measured: one input pixel of a random image is
    changed and the farthest changed output pixel is found; None when it reaches the probe's border."""
    side = 2 * _PROBE_RADIUS + 1
    x = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)
    y = x.copy()
    y[0, _PROBE_RADIUS, _PROBE_RADIUS] = 255 - y[0, _PROBE_RADIUS, _PROBE_RADIUS]
    changed = np.argwhere(np.any(run(x) != run(y), axis=3)[0])
    if not len(changed):
        return 0
    centre = (_PROBE_RADIUS + 0.5) * scale
    reach = int(np.ceil((np.abs(changed + 0.5 - centre).max() + scale / 2) / scale))
    # +1: changes too small to move a rounded level still exist a little farther out
    return None if reach >= _PROBE_RADIUS else reach + 1


def load_tflite_upscaler(path, flag="--model"):
    """An inference.Upscaler running a .tflite file whose ops are all in ALLOWED_OPS.

    Raises:
        UserError: one line naming the file, for an unreadable file, a refused op, or a model that
            is not a uint8 image upscaler.
    """
    from sr_keras.inference import Upscaler, through_uint8

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"{flag} '{path}': cannot read it: {e.strerror or e}") from e
    check_ops(data, path, flag)
    try:
        run = _Runner(data)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"{flag} '{path}': cannot load the TFLite model: {first_line(e)}") from e

    upscaler = Upscaler(path, run, through_uint8(run), flag=flag)
    radius = probe_radius(run, upscaler.scale)
    upscaler.radius = _PROBE_RADIUS if radius is None else radius
    return upscaler
