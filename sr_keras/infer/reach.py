"""How far a model looks: the LR pixels of context each output pixel depends on (its receptive radius),
so that tiles given that margin are seamless.

`analyse(model)` reads it from a Keras model's layer graph (an upper bound, with the largest activation
per LR pixel, which sizes tiles to a memory budget); `probe_reach(run_uint8, scale)` measures it through
a model that can only be run (a checked SavedModel signature, a TFLite model, a Keras model whose graph
analyse cannot read), for every runtime alike (sr_keras.infer.upscaler.Upscaler.measure_reach). Neither
imports TensorFlow.
"""
import math

import numpy as np

from sr_keras.archs.graph import inbound_names
from sr_keras.core.errors import UserError, first_line

# Layers that act on each pixel independently (they widen nothing).
_POINTWISE = {
    "InputLayer", "PReLU", "ReLU", "LeakyReLU", "ELU", "Activation", "BatchNormalization",
    "LayerNormalization", "Identity", "Rescaling", "Dropout", "SpatialDropout2D", "Add", "Subtract",
    "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dense",
}


# The widest margin (LR pixels) probe_reach can measure; for a model reaching further it gives None, and
# the model runs each picture in one pass (Upscaler.measure_reach).
PROBE_REACH = 48


def probe_reach(run_uint8, scale, shown=None):
    """LR pixels of context each output pixel depends on, measured through a (checked) uint8 model.

    One half of a random image is inverted (the rows above, below, the columns left, right of its
    centre line, in turn) and the farthest output row or column that changes beyond the line is
    found. A half-plane rather than one pixel: its effect sums over many pixels, so it survives the
    rounding to uint8 as far as any real influence does (+1 for the last fractions of a level).

    Args:
        run_uint8: callable N x H x W x 3 uint8 -> N x sH x sW x 3 uint8.
        scale: the model's probed scale.
        shown: the model as the user gave it.

    Returns:
        int, or None when a change reaches the probe's far border (the model looks further, up to
        the whole picture).

    Raises:
        UserError: one line about `model` when it fails on the probe image.
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
        raise UserError(f"'{shown}' cannot upscale a {side}x{side} RGB image: {first_line(e)}",
                        argument="model") from e
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
            ready = [ly for ly in pending if all(p in done for p in inbound_names(ly.get("inbound_nodes", [])))]
            if not ready:
                return None
            for ly in ready:
                ins = [done[p] for p in inbound_names(ly.get("inbound_nodes", []))] or [inp]
                out = self.layer(ly["class_name"], ly["config"], ins)
                if out is None:
                    return None
                done[ly["name"]] = out
                pending.remove(ly)
        outs = [done[o[0]] for o in _output_refs(cfg.get("output_layers", [])) if o[0] in done]
        return (max(o[0] for o in outs), max(o[1] for o in outs), max(o[2] for o in outs)) if outs else None


def _output_refs(spec):
    """A functional config's output_layers: one [name, node, index] triple or a list of them."""
    if spec and isinstance(spec[0], str):
        return [spec]
    return [s for s in spec if isinstance(s, (list, tuple)) and s and isinstance(s[0], str)]
