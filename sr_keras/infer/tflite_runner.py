"""Running a `.tflite` model (sr_keras.exports.tflite writes them) safely.

A `.tflite` file is a program too: it can hold TensorFlow (Flex) ops, file ops among them, and
custom ops. `check_ops` reads the operator codes straight from the file's flatbuffer (a few lines of
struct parsing below; no interpreter is built and nothing is run) and refuses any op that is not in
ALLOWED_OPS, a list of TFLite builtin tensor-math ops, with one line naming the model and the op.
Only then does `load_tflite_upscaler` build an interpreter: LiteRT's (`ai-edge-litert`) when it is
installed, else TensorFlow's deprecated `tf.lite.Interpreter`. It runs in a forked child process
(`_Runner`): an interpreter asked for a huge output crashes instead of raising, and how large an
output will be is only known once the model has run, so a crash must not take the caller along.
"""
import faulthandler
import os
import signal
import socket
import struct
import warnings
import weakref

import numpy as np

from sr_keras.core.errors import UserError, first_line
from sr_keras.infer.loading import MAX_SCALE
from sr_keras.infer.upscaler import Upscaler, through_uint8

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


def check_ops(data, shown):
    """Raise UserError (one line about `model` naming it and the op) unless every op is in ALLOWED_OPS."""
    try:
        names = operator_names(data)
    except ValueError as e:
        raise UserError(f"'{shown}': cannot read the TFLite model: {first_line(e)}", argument="model") from e
    allowed = set(ALLOWED_OPS.values())
    for name in names:
        if name not in allowed:
            raise UserError(f"'{shown}' uses {name}, which is not in the allowlist of TFLite tensor-math ops "
                            "(sr_keras.infer.tflite_runner.ALLOWED_OPS); refusing to run it", argument="model")
    return names


def _interpreter(data, threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():  # its deprecation notice: LiteRT is used whenever installed
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_content=data, num_threads=threads)
    return Interpreter(model_content=data, num_threads=threads)


# An output larger than this many times its input (in elements) is never taken back from the child:
# MAX_SCALE per side.
_MAX_GROWTH = MAX_SCALE ** 2


def _send(sock, header, payload=b""):
    sock.sendall(struct.pack("<8q", *header, *[0] * (8 - len(header))) + payload)


def _receive(sock, n):
    """n bytes from sock, or None when the other side is gone first."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:])
        if not k:
            return None
        got += k
    return bytes(buf)


def _serve(sock, data):
    """The child's loop: one fresh interpreter (its threads start here, after the fork), then for each
    request (an image batch) its output, or the error; returns when the parent closes its end."""
    it = _interpreter(data, os.cpu_count())
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    shape = None
    while True:
        head = _receive(sock, 64)
        if head is None:
            return
        dims = struct.unpack("<8q", head)[:4]
        x = np.frombuffer(_receive(sock, int(np.prod(dims))) or b"", np.uint8).reshape(dims)
        try:
            if x.shape != shape:
                it.resize_tensor_input(inp, list(x.shape))
                it.allocate_tensors()
                shape = x.shape
            it.set_tensor(inp, x)
            it.invoke()
            y = it.get_tensor(out)
        except Exception as e:  # LiteRT's RuntimeError, a shape it refuses: sent back as one line
            message = first_line(e).encode("utf-8", "replace")[:1000]
            _send(sock, (-1, len(message)), message)
            continue
        if y.dtype != np.uint8 or y.ndim > 7:
            message = f"its output is {y.dtype} of {y.ndim} dimensions".encode()
            _send(sock, (-1, len(message)), message)
            continue
        _send(sock, (y.ndim,) + y.shape, np.ascontiguousarray(y).tobytes())


def _stop_child(sock, pid):
    sock.close()
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


class _Runner:
    """Runs a .tflite model in a child process of its own, where a crash cannot take this one along.

    LiteRT does not check its allocations: a model of allowed ops that asks for a huge output (a
    resize x600) segfaults the interpreter, and the size a model's output will have is only known once
    it has run (its shapes depend on tensor values). So the interpreter runs in a forked child that
    gets each image batch over a socket and sends back the output; a child that dies is reported in
    one line and replaced on the next call, and an output over _MAX_GROWTH times its input is refused
    unread. Where fork() is missing (Windows) the interpreter runs in this process.
    """

    def __init__(self, data):
        self.data = data
        it = _interpreter(data, 1)  # reads the signature; runs nothing
        inp, out = it.get_input_details(), it.get_output_details()
        if len(inp) != 1 or len(out) != 1 or inp[0]["dtype"] != np.uint8 or out[0]["dtype"] != np.uint8:
            raise ValueError("expected one uint8 image input and one uint8 image output")
        self._local = None if hasattr(os, "fork") else _LocalRunner(it, inp[0]["index"], out[0]["index"])
        self._child = None

    def _start(self):
        parent, child = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's exit handlers
            code = 0
            try:
                parent.close()
                faulthandler.disable()  # a crash here is expected and reported by the parent, in one line
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                _serve(child, self.data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child.close()
        self._child = (parent, pid, weakref.finalize(self, _stop_child, parent, pid))
        return self._child

    def _died(self, x):
        sock, pid, finalizer = self._child
        self._child = None
        sock.close()
        _, status = os.waitpid(pid, 0)
        finalizer.detach()
        how = f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else \
            f"exit status {os.WEXITSTATUS(status)}"
        return RuntimeError(f"the TFLite interpreter crashed on an input of {x.shape[1]}x{x.shape[2]} ({how}); "
                            "its output is likely too large for memory")

    def __call__(self, x):
        if self._local is not None:
            return self._local(x)
        x = np.ascontiguousarray(x, np.uint8)
        if self._child is None:
            self._start()
        try:
            return self._exchange(x)
        except KeyboardInterrupt:  # Ctrl-C mid-exchange: the socket's stream is out of step, start afresh
            if self._child is not None:
                sock, pid, finalizer = self._child
                self._child = None
                finalizer.detach()
                _stop_child(sock, pid)
            raise

    def _exchange(self, x):
        sock = self._child[0]
        try:
            _send(sock, x.shape, x.tobytes())
        except OSError:
            raise self._died(x) from None
        head = _receive(sock, 64)
        if head is None:
            raise self._died(x)
        values = struct.unpack("<8q", head)
        if values[0] < 0:
            raise RuntimeError((_receive(sock, values[1]) or b"").decode("utf-8", "replace"))
        shape = values[1:1 + values[0]]
        if int(np.prod(shape, dtype=np.float64)) > _MAX_GROWTH * x.size:
            _stop_child(sock, self._child[1])
            self._child[2].detach()
            self._child = None
            raise RuntimeError(f"an input of {x.shape[1]}x{x.shape[2]} gave an output of shape {list(shape)}, over "
                               f"x{MAX_SCALE} per side; refused unread")
        body = _receive(sock, int(np.prod(shape)))
        if body is None:
            raise self._died(x)
        return np.frombuffer(body, np.uint8).reshape(shape).copy()


class _LocalRunner:
    """The interpreter in this process (no fork() here); re-allocates only when the batch shape changes."""

    def __init__(self, it, inp, out):
        self.it, self.inp, self.out, self.shape = it, inp, out, None

    def __call__(self, x):
        if x.shape != self.shape:
            self.it.resize_tensor_input(self.inp, list(x.shape))
            self.it.allocate_tensors()
            self.shape = x.shape
        self.it.set_tensor(self.inp, np.ascontiguousarray(x, np.uint8))
        self.it.invoke()
        return self.it.get_tensor(self.out).copy()


def load_tflite_upscaler(path):
    """An inference.Upscaler running a .tflite file whose ops are all in ALLOWED_OPS; its tile margin is
    measured as a SavedModel's is (Upscaler.measure_reach).

    Raises:
        UserError: one line about `model` naming the file, for an unreadable file, a refused op, or a model that
            is not a uint8 image upscaler (a crash of the interpreter on a probe included).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"'{path}': cannot read it: {e.strerror or e}", argument="model") from e
    check_ops(data, path)
    try:
        run = _Runner(data)
    except (ValueError, RuntimeError) as e:
        raise UserError(f"'{path}': cannot load the TFLite model: {first_line(e)}", argument="model") from e
    upscaler = Upscaler(path, run, through_uint8(run))
    upscaler.measure_reach()
    return upscaler
