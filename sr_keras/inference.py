"""Load a trained upscaler and run it on images of any size, tile by tile.

`load_upscaler(path)` accepts what `--export` writes (a SavedModel folder holding `model.keras`
beside `saved_model.pb`), a bare `.keras` file, or a model name (sr_keras.loading). The Keras model
is preferred (loaded in safe mode, no pickle); a SavedModel without it is refused unless the user
vouches for it (`trust_model=True`), and then called through its uint8 `serving_default` signature
once sr_keras.model_safety has found nothing but tensor math in what loading and serving it would
run; a `.tflite` file runs through LiteRT, in a child process, after its op list is checked
(sr_keras.tflite). A model's scale and output are probed only through these checked paths, and every
call's output is checked to be the input's size times the scale, with 3 channels (Upscaler.batch).
A model call runs so that SIGTERM and Ctrl-C still end the process (`interruptible`), and one that
would need more memory than is left is refused first (`check_call_memory`). A Keras model whose
output is not finite is refused, never written; a SavedModel or TFLite model returns uint8, in which
NaN or inf has already become some pixel value, so theirs cannot be detected here.

`upscale_image(upscaler, img, tile, overlap)` splits the LR image into tiles, gives each tile a
margin of real neighbouring pixels, and writes only the tile's core into a preallocated output of
the input's dtype (`upscale_bands` yields it one row of tiles at a time, for streaming writers). The
margin is at least the model's receptive-field radius (read from the Keras model's layer graph, or
measured by an impulse probe through a checked SavedModel), so every core pixel sees exactly what it
would in a whole-image pass and tiles are seamless; memory is the output plus one tile's activations,
whatever the image size. A SavedModel whose reach exceeds the probe runs each picture in one pass.
"""
import math
import os
import threading

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from sr_keras.errors import UserError, first_line
from sr_keras.loading import (CONFIG_FILE, TFLITE_SUFFIX, is_savedmodel_only, load_generator_config,
                              load_keras_model, probe_scale, resolve_model, shape_text)
from sr_keras.model_safety import SIGNATURE, check_savedmodel

# ITU-R BT.601 luma, as PIL's convert("L"): how a grey input comes back to one channel.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# Layers that act on each pixel independently (they widen nothing).
_POINTWISE = {
    "InputLayer", "PReLU", "ReLU", "LeakyReLU", "ELU", "Activation", "BatchNormalization",
    "LayerNormalization", "Identity", "Rescaling", "Dropout", "SpatialDropout2D", "Add", "Subtract",
    "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dense",
}


class Upscaler:
    """A loaded SR model: `scale`, `config` (its GeneratorConfig, None when the export carries none),
    `radius` (LR pixels of context each output pixel depends on), `act_bytes` (largest activation in
    bytes per LR pixel), both None when unknown, `whole_image` (True when no tile margin is known to
    be seamless: each picture runs in one pass), and `__call__(lr)` for one HxWx3 uint8/uint16 image
    -> same dtype, s times larger. Every call's output is checked to be exactly that (`batch`)."""

    def __init__(self, path, run_uint8, run_uint16, radius=None, act_bytes=None, config=None, flag="--model"):
        self.path = path
        self.flag = flag
        self._run = {np.dtype(np.uint8): run_uint8, np.dtype(np.uint16): run_uint16}
        self.radius = radius
        self.act_bytes = act_bytes
        self.config = config
        self.whole_image = False
        self.scale = probe_scale(lambda x: run_uint8(x.astype(np.uint8)), flag, path)
        if config is not None and config.scale != self.scale:
            raise UserError(f"{flag} '{path}' upscales x{self.scale} but its {CONFIG_FILE} says x{config.scale}")

    def __call__(self, lr):
        return self.batch(lr[None])[0]

    def batch(self, lrs):
        """N x H x W x 3 uint8/uint16 images -> N x sH x sW x 3, same dtype, in one model call.

        Raises:
            UserError: one line naming the model when what came back is not exactly that (a model whose
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
            raise UserError(f"{self.flag} '{self.path}': {n} {h}x{w} image(s) came back as "
                            f"{'x'.join(map(str, got)) or 'no array'} {getattr(out, 'dtype', '')}, not "
                            f"{'x'.join(map(str, want))} {lrs.dtype} (x{self.scale}); nothing of it is written")
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


def load_upscaler(path, flag="--model", trust_model=False):
    """Load a model for upscaling; raise UserError naming `path` (one line) when it cannot be.

    Args:
        path: an export folder (its model.keras, else its SavedModel signature), a .keras file, a
            .tflite file written by sr_keras.tflite.export_tflite (run by LiteRT), or a model name
            (sr_keras.loading.resolve_model).
        flag: the command-line flag that gave `path`, for error messages.
        trust_model: vouch for a SavedModel without model.keras (refused otherwise); its graph is still
            checked to run only tensor math (sr_keras.model_safety). Only for SavedModels you wrote yourself.
    """
    path = resolve_model(path, flag)
    if os.path.isfile(path) and path.endswith(TFLITE_SUFFIX):
        from sr_keras.tflite import load_tflite_upscaler

        return load_tflite_upscaler(path, flag)
    if is_savedmodel_only(path):
        return _from_savedmodel(path, flag, trust_model)
    model = load_keras_model(path, flag)

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
                raise UserError(f"{flag} '{path}': model output is not finite (NaN or inf); nothing is written")
            return out.numpy()

        return checked

    radius, act_bytes = analyse(model)
    return Upscaler(path, quantised(np.uint8), quantised(np.uint16), radius=radius, act_bytes=act_bytes,
                    config=load_generator_config(path), flag=flag)


def open_savedmodel(path, flag="--model", trust_model=False):
    """A SavedModel's uint8 serving signature, checked (sr_keras.model_safety) before any of it runs.

    Args:
        path: a SavedModel folder.
        flag: the command-line flag that gave it, for error messages.
        trust_model: the user vouches for it (refused otherwise); its graph is checked all the same.

    Returns:
        (root, run_uint8): the loaded object (its `signatures[SIGNATURE].variables` are the model's
        weights) and a callable N x H x W x 3 uint8 -> N x sH x sW x 3 uint8 that keeps it alive.

    Raises:
        UserError: one line naming the model when it is refused, unloadable, or its signature does not
            take and return uint8 image batches.
    """
    check_savedmodel(path, flag, trust_model=trust_model)
    # A third guard beside the check's refusal of api_implements: the optimiser pass that swaps
    # functions by that attribute is off (this package's own models carry none).
    tf.config.optimizer.set_experimental_options({"implementation_selector": False})
    try:
        root = tf.saved_model.load(path)
        fn = root.signatures[SIGNATURE]
    except Exception as e:
        raise UserError(f"{flag} '{path}': cannot load the SavedModel: {first_line(e)}") from e
    specs = fn.structured_input_signature[1]
    if len(specs) != 1 or next(iter(specs.values())).dtype != tf.uint8:
        raise UserError(f"{flag} '{path}': the SavedModel's {SIGNATURE} must take one uint8 image batch")
    outputs = fn.structured_outputs
    if not isinstance(outputs, dict) or len(outputs) != 1:
        raise UserError(f"{flag} '{path}': the SavedModel's {SIGNATURE} must return one image batch")
    out = next(iter(outputs.values()))
    if out.shape.rank is not None and out.shape.rank != 4:
        raise UserError(f"{flag} '{path}': not an image-to-image model (its output is {out.dtype.name} "
                        f"{shape_text(out.shape)})")
    if out.dtype != tf.uint8:
        raise UserError(f"{flag} '{path}': its {SIGNATURE} returns {out.dtype.name} images, not uint8 as an export's")
    name, spec = next(iter(specs.items()))
    one_at_a_time = spec.shape.rank == 4 and spec.shape[0] == 1  # a signature fixed to a batch of one

    def call(x):  # holds `root`: the signature's variables live as long as the loaded object
        signature = root.signatures[SIGNATURE]
        return interruptible(lambda: next(iter(signature(**{name: tf.constant(x, tf.uint8)}).values())).numpy())

    def run_uint8(x):
        if one_at_a_time and len(x) != 1:
            parts = [call(x[i:i + 1]) for i in range(len(x))]
            if len({p.shape for p in parts}) != 1:  # one input shape, several output shapes
                raise UserError(f"{flag} '{path}': images of one size came back in several sizes "
                                f"({', '.join(sorted({'x'.join(map(str, p.shape)) for p in parts}))})")
            return np.concatenate(parts)
        return call(x)

    return root, run_uint8


def _from_savedmodel(path, flag, trust_model=False):
    """An Upscaler calling a SavedModel's uint8 serving signature, checked before any of it runs."""
    _, run_uint8 = open_savedmodel(path, flag, trust_model)
    upscaler = Upscaler(path, run_uint8, through_uint8(run_uint8), config=load_generator_config(path), flag=flag)
    upscaler.radius = probe_reach(upscaler.batch, upscaler.scale, flag, path)  # batch: its output shape checked
    upscaler.whole_image = upscaler.radius is None  # it reaches past the probe: no margin is known to be enough
    return upscaler


# The widest margin (LR pixels) probe_reach can measure; a model reaching further runs whole pictures.
PROBE_REACH = 48


def probe_reach(run_uint8, scale, flag="--model", shown=None):
    """LR pixels of context each output pixel depends on, measured through a (checked) uint8 model.

    One half of a random image is inverted (the rows above, below, the columns left, right of its
    centre line, in turn) and the farthest output row or column that changes beyond the line is
    found. A half-plane rather than one pixel: its effect sums over many pixels, so it survives the
    rounding to uint8 as far as any real influence does (+1 for the last fractions of a level).

    Args:
        run_uint8: callable N x H x W x 3 uint8 -> N x sH x sW x 3 uint8.
        scale: the model's probed scale.
        flag: the command-line flag that named the model, for the error message.
        shown: the model as the user gave it.

    Returns:
        int, or None when a change reaches the probe's far border (the model looks further, up to
        the whole picture).

    Raises:
        UserError: one line naming the model when it fails on the probe image.
    """
    side, c = 2 * PROBE_REACH + 1, PROBE_REACH
    x = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8)
    halves = [(axis, part) for axis in (1, 2) for part in (slice(0, c), slice(c + 1, side))]
    probes = [x[0]]
    for axis, part in halves:
        y = x[0].copy()
        index = (part, slice(None)) if axis == 1 else (slice(None), part)
        y[index] = 255 - y[index]
        probes.append(y)
    try:
        out = run_uint8(np.stack(probes))  # open_savedmodel's run_uint8 splits it for a batch-of-one signature
    except UserError:
        raise
    except Exception as e:  # it took 8x8 and 8x12 (probe_scale) but not this size: no tile margin is known
        raise UserError(f"{flag} '{shown}' cannot upscale a {side}x{side} RGB image: {first_line(e)}") from e
    reach = 0
    for (axis, part), sr in zip(halves, out[1:]):
        lines = np.nonzero(np.any(sr != out[0], axis=(1, 2) if axis == 1 else (0, 2)))[0] // scale
        if not len(lines):
            continue
        if part.start == 0:  # rows/columns 0..c-1 inverted: how far past c-1 the change goes
            far, dist = lines.max() == side - 1, lines.max() - (c - 1)
        else:
            far, dist = lines.min() == 0, c + 1 - lines.min()
        if far:
            return None
        reach = max(reach, int(dist))
    return reach + 1


def through_uint8(run_uint8):
    """A uint16 runner for a model that is 8-bit (a SavedModel signature, a TFLite model): 16-bit data
    passes through 8 bits."""
    return lambda x: run_uint8(np.round(x / 257.0).astype(np.uint8)).astype(np.uint16) * 257


def receptive_radius(model):
    """LR pixels each output pixel can depend on, from the layer graph (an upper bound), or None
    when the model holds a layer whose spatial extent is not known here."""
    return analyse(model)[0]


def analyse(model):
    """(receptive radius in LR pixels, bytes of the largest float32 activation per LR pixel), read
    from the Keras layer graph; (None, None) when a layer's spatial effect is not known here."""
    walk = _Walk()
    out = walk.graph(model.get_config(), model.__class__.__name__, (1.0, 0.0, 3))
    if out is None:
        return None, None
    return int(math.ceil(out[1] - 1e-9)), walk.peak


def _pairs(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


class _Walk:
    """Follows (factor, radius, channels) through a layer graph: factor = output pixels per LR pixel
    along one axis, radius in LR pixels; `peak` = the largest activation, in bytes per LR pixel."""

    def __init__(self):
        self.peak = 0.0

    def layer(self, class_name, cfg, ins):
        f, r, c = max(i[0] for i in ins), max(i[1] for i in ins), max(i[2] for i in ins)
        if class_name == "Concatenate":
            c = sum(i[2] for i in ins)
        if class_name in _POINTWISE:
            out = (f, r, cfg.get("units", c) if class_name == "Dense" else c)
        elif class_name in ("Conv2D", "FewOutputConv2D", "DepthwiseConv2D", "SeparableConv2D"):
            k, d, st = _pairs(cfg["kernel_size"]), _pairs(cfg.get("dilation_rate", 1)), _pairs(cfg.get("strides", 1))
            reach = max((k[i] - 1) * d[i] - (k[i] - 1) * d[i] // 2 for i in range(2))  # 'same' pads right more
            ch = c * cfg.get("depth_multiplier", 1) if class_name == "DepthwiseConv2D" else cfg["filters"]
            out = (f / max(st), r + (reach + max(st) - 1) / f, ch)
        elif class_name == "PixelShuffle":
            out = (f * cfg["factor"], r, c // cfg["factor"] ** 2)
        elif class_name == "BicubicUpsample":  # bicubic reads 2 input pixels each side
            out = (f * cfg["factor"], r + 2.0 / f, c)
        elif class_name == "UpSampling2D":
            size = max(_pairs(cfg.get("size", 2)))
            out = (f * size, r + (1.0 / f if cfg.get("interpolation") == "bilinear" else 0.0), c)
        elif class_name in ("Functional", "Sequential"):
            out = self.graph(cfg, class_name, (f, r, c))
        else:
            return None
        if out is not None:
            self.peak = max(self.peak, out[0] ** 2 * out[2] * 4.0)
        return out

    def graph(self, cfg, class_name, inp):
        layers = cfg.get("layers", [])
        if class_name == "Sequential":
            cur = inp
            for layer in layers:
                cur = self.layer(layer["class_name"], layer["config"], [cur])
                if cur is None:
                    return None
            return cur
        if class_name != "Functional":
            return None  # a subclassed model: nothing to read
        done = {}
        pending = list(layers)
        while pending:  # layers are usually listed in order; loop until every input is known
            ready = [ly for ly in pending if all(p in done for p in _inbound_names(ly.get("inbound_nodes", [])))]
            if not ready:
                return None
            for ly in ready:
                ins = [done[p] for p in _inbound_names(ly.get("inbound_nodes", []))] or [inp]
                out = self.layer(ly["class_name"], ly["config"], ins)
                if out is None:
                    return None
                done[ly["name"]] = out
                pending.remove(ly)
        outs = [done[o[0]] for o in _output_refs(cfg.get("output_layers", [])) if o[0] in done]
        return (max(o[0] for o in outs), max(o[1] for o in outs), max(o[2] for o in outs)) if outs else None


def _inbound_names(nodes):
    """Names of the layers feeding a layer, from its serialized inbound nodes."""
    names = []

    def walk(v):
        if isinstance(v, dict):
            hist = v.get("config", {}).get("keras_history") if v.get("class_name") == "__keras_tensor__" else None
            if hist:
                names.append(hist[0])
            else:
                for x in v.values():
                    walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(nodes)
    return names


def _output_refs(spec):
    """A functional config's output_layers: one [name, node, index] triple or a list of them."""
    if spec and isinstance(spec[0], str):
        return [spec]
    return [s for s in spec if isinstance(s, (list, tuple)) and s and isinstance(s[0], str)]


def _splits(n, tile):
    """Even tile edges along one axis: ceil(n / tile) tiles, none larger than `tile`."""
    k = max(1, math.ceil(n / tile))
    return [n * i // k for i in range(k + 1)]


def _windows(n, tile, margin):
    """(window length, [(core start, core end, window start)]) along one axis.

    The cores are _splits(n, tile); every window has the same length (the largest core plus a margin
    each side, at most n) and is shifted to lie inside the image, so each core keeps at least `margin`
    pixels of real context wherever the image has them, and every tile of a picture has one shape:
    tiles can be batched, and a fixed-shape runtime (TFLite) never re-allocates within a picture.
    """
    edges = _splits(n, tile) if tile and tile > 0 else [0, n]
    cores = list(zip(edges[:-1], edges[1:]))
    length = min(n, max(b - a for a, b in cores) + 2 * margin)
    return length, [(a, b, min(max(0, a - margin), n - length)) for a, b in cores]


# Peak memory of one model call, in multiples of its largest activation (input and output of the
# widest op plus oneDNN's reordered copy); measured 4.1x on the full x4 SRResNet on CPU.
ACT_OVERHEAD = 4.0


def memory_left():
    """Bytes this process may still allocate, or None when unknown: the least of the machine's available
    memory, the address-space limit (ulimit -v) less what is mapped, and the cgroup's limit less its use."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        limits.append(int(info["MemAvailable"].split()[0]) * 1024)
    except (OSError, KeyError, ValueError):
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/status") as f:
                mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            limits.append(soft - mapped)
    except (ImportError, OSError, StopIteration, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            top = f.read().strip()
        if top != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                limits.append(int(top) - int(f.read()))
    except (OSError, ValueError):
        pass
    return max(0, min(limits)) if limits else None


def check_call_memory(upscaler, n, h, w):
    """Raise MemoryError (which upscaling.model_errors turns into its one-line out-of-memory error) when
    one model call on n h x w tiles would need more memory than is left: TensorFlow's allocator aborts
    the process (std::bad_alloc) under a memory limit instead of raising. The need is ACT_OVERHEAD times
    the largest activation when the layer graph is known, else at least the float32 output."""
    per_pixel = ACT_OVERHEAD * upscaler.act_bytes if upscaler.act_bytes else upscaler.scale ** 2 * 3 * 4.0
    need = per_pixel * n * h * w
    left = memory_left()
    if left is not None and need > left:
        raise MemoryError(f"one model call on {n} {h}x{w} tile(s) needs about {need / 2 ** 30:.1f} GiB, "
                          f"{left / 2 ** 30:.1f} GiB are left")


def tile_side(upscaler, tile, overlap, max_tile_mb):
    """The core tile side actually used: `tile`, made smaller when one tile's activations (margins
    included) would exceed `max_tile_mb`; 0 stays 0 (one pass, as asked); 0 for an upscaler whose
    seamless margin is unknown (`whole_image`)."""
    if upscaler.whole_image:
        return 0
    if not tile or tile <= 0 or not upscaler.act_bytes or not max_tile_mb:
        return tile
    margin = max(int(overlap), upscaler.radius or 0)
    fits = int(math.sqrt(max_tile_mb * 2 ** 20 / (ACT_OVERHEAD * upscaler.act_bytes))) - 2 * margin
    return max(16, min(tile, fits))


def upscale_bands(upscaler, img, tile=256, overlap=16, max_tile_mb=768, progress=False, batch=1):
    """Yield (row, band): the upscaled image one row of tiles at a time, top to bottom, so a caller
    can write it out without ever holding the whole output. Arguments as upscale_image."""
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"upscale takes an HxW or HxWx3 uint8/uint16 image. "
                         f"Received: shape={img.shape}, dtype={img.dtype}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1. Received: batch={batch}")
    s = upscaler.scale
    h, w = img.shape[:2]
    margin = max(int(overlap), upscaler.radius or 0)
    tile = tile_side(upscaler, tile, overlap, max_tile_mb)
    (wy, rows), (wx, cols) = _windows(h, tile, margin), _windows(w, tile, margin)
    top = np.iinfo(img.dtype).max
    jobs = [(r, c) for r in range(len(rows)) for c in range(len(cols))]  # raster order: rows finish in turn
    bar = tqdm(total=len(jobs), desc="tiles", unit="tile", leave=False, delay=2, disable=not progress)
    band, left = None, 0
    for i in range(0, len(jobs), batch):
        chunk = jobs[i:i + batch]
        check_call_memory(upscaler, len(chunk), wy, wx)
        parts = np.stack([img[rows[r][2]:rows[r][2] + wy, cols[c][2]:cols[c][2] + wx] for r, c in chunk])
        if img.ndim == 2:
            parts = np.repeat(parts[..., None], 3, axis=3)
        for (r, c), sr in zip(chunk, upscaler.batch(parts)):
            (y0, y1, ya), (x0, x1, xa) = rows[r], cols[c]
            if band is None:
                band, left = np.empty(((y1 - y0) * s, w * s) + img.shape[2:], img.dtype), len(cols)
            core = sr[(y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
            if img.ndim == 2:
                core = np.clip(np.round(core.astype(np.float32) @ _LUMA), 0, top).astype(img.dtype)
            band[:, x0 * s:x1 * s] = core
            bar.update()
            left -= 1
            if not left:
                yield y0 * s, band
                band = None
    bar.close()


def upscale_image(upscaler, img, tile=256, overlap=16, max_tile_mb=768, progress=False, batch=1):
    """Upscale one image (HxW grey or HxWx3 RGB, uint8 or uint16) -> same layout and dtype, s times larger.

    `tile` is the largest core tile side in LR pixels (0 = whole image in one pass); tiles shrink so
    that one tile's activations stay under `max_tile_mb` (None: no limit). `overlap` is the margin
    of neighbouring pixels given to each tile, raised to the model's receptive radius when that is
    larger so that tiled and whole-image results agree. Grey images run through the model as
    replicated RGB and come back as BT.601 luma. Tiles are written straight into the one uint8/uint16
    output array; no float copy of the full-size image is ever made. `batch` tiles (all of one shape)
    go through the model per call: the same pixels as one per call, faster on a GPU, `batch` times the
    activation memory.
    """
    s = upscaler.scale
    out = np.empty((img.shape[0] * s, img.shape[1] * s) + img.shape[2:], img.dtype)
    for row, band in upscale_bands(upscaler, img, tile, overlap, max_tile_mb, progress, batch):
        out[row:row + band.shape[0]] = band
    return out
