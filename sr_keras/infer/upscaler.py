"""The loaded model every runtime gives (`Upscaler`), with what the runtimes share: a model call that
SIGTERM and Ctrl-C can still end (`interruptible`), and 16-bit data through an 8-bit model
(`through_uint8`), and the one rule for a tile margin measured through the model (`measure_reach`).
NumPy only: sr_keras.infer.inference (Keras, SavedModel) and sr_keras.infer.tflite_runner (LiteRT) both
build on it, so neither imports the other, and `isinstance(x, Upscaler)` imports no TensorFlow."""
import threading

import numpy as np

from sr_keras.core.errors import UserError
from sr_keras.infer.loading import CONFIG_FILE, probe_scale
from sr_keras.infer.reach import probe_reach


class Upscaler:
    """A loaded SR model: `scale`, `config` (its GeneratorConfig, None when the export carries none),
    `radius` (LR pixels of context each output pixel depends on), `act_bytes` (largest activation in
    bytes per LR pixel), both None when unknown, `whole_image` (True when no tile margin is known to
    be seamless: each picture runs in one pass), and `__call__(lr)` for one HxWx3 uint8/uint16 image
    -> same dtype, s times larger. Every call's output is checked to be exactly that (`batch`)."""

    def __init__(self, path, run_uint8, run_uint16, radius=None, act_bytes=None, config=None):
        self.path = path
        self._run = {np.dtype(np.uint8): run_uint8, np.dtype(np.uint16): run_uint16}
        self.radius = radius
        self.act_bytes = act_bytes
        self.config = config
        self.whole_image = False
        self.scale = probe_scale(lambda x: run_uint8(x.astype(np.uint8)), path)
        if config is not None and config.scale != self.scale:
            raise UserError(f"'{path}' upscales x{self.scale} but its {CONFIG_FILE} says x{config.scale}",
                            argument="model")

    def __call__(self, lr):
        return self.batch(lr[None])[0]

    def measure_reach(self):
        """Set `radius` from the impulse probe (sr_keras.infer.reach.probe_reach) run through `batch`, so
        its output is checked: for every model whose layer graph cannot be read (a SavedModel, a TFLite
        model, a Keras model with a layer reach.py does not know). A model reaching past the probe gets
        no radius and `whole_image`: no tile margin is known to be seamless, so each picture runs in one
        pass.

        Raises:
            UserError: one line about `model` when it fails on the probe image.
        """
        self.radius = probe_reach(self.batch, self.scale, self.path)
        self.whole_image = self.radius is None

    def batch(self, lrs):
        """N x H x W x 3 uint8/uint16 images -> N x sH x sW x 3, same dtype, in one model call.

        Raises:
            UserError: one line about `model` when what came back is not exactly that (a model whose
                scale or channels change with the input size, or that drops batch items): nothing of
                it may be written.
        """
        run = self._run.get(lrs.dtype)
        if run is None:
            raise TypeError(f"upscaler takes uint8 or uint16 images. Received: dtype={lrs.dtype}")
        out = run(lrs)
        n, h, w = lrs.shape[:3]
        want = (n, h * self.scale, w * self.scale, 3)
        got = tuple(int(d) for d in getattr(out, "shape", ()))
        if got != want or getattr(out, "dtype", None) != lrs.dtype:
            raise UserError(f"'{self.path}': {n} {h}x{w} image(s) came back as "
                            f"{'x'.join(map(str, got)) or 'no array'} {getattr(out, 'dtype', '')}, not "
                            f"{'x'.join(map(str, want))} {lrs.dtype} (x{self.scale}); nothing of it is written",
                            argument="model")
        return out


def interruptible(fn, *args):
    """fn(*args), run so that SIGTERM and Ctrl-C still end the process while it runs.

    A model call spends its time in TensorFlow's C++ runtime, where Python's signal handlers (SIGTERM's
    Terminated, Ctrl-C's KeyboardInterrupt) never run, and a graph may loop for hours. In the main
    thread the call runs in a daemon thread and the main thread waits, where handlers do run: their
    exception ends the wait, the usual cleanup runs and the process exits; the abandoned call dies
    with it. Elsewhere (a worker thread gets no signals) it is a plain call.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    result = {}

    def call():
        try:
            result["value"] = fn(*args)
        except BaseException as e:  # handed to the waiting thread, raised there
            result["error"] = e

    worker = threading.Thread(target=call, name="sr-keras-model-call", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(1.0)  # a signal handler runs here and may raise
    if "error" in result:
        raise result["error"]
    return result["value"]


def through_uint8(run_uint8):
    """A uint16 runner for a model that is 8-bit (a SavedModel signature, a TFLite model): 16-bit data
    passes through 8 bits."""
    return lambda x: run_uint8(np.round(x / 257.0).astype(np.uint8)).astype(np.uint16) * 257
