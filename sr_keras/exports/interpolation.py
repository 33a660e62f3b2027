"""Network interpolation (ESRGAN, Wang et al. 2018, section 3.4): blend two trainings of one generator.

Every weight, BatchNorm moving statistics included, becomes (1 - alpha) * A + alpha * B. Blending a
PSNR-oriented model (A) with its GAN fine-tuning (B) trades PSNR for texture continuously, without the
noise and artefacts that either network alone shows at the same balance. It only makes sense for two
networks of one architecture, usually one initialised from the other; `architecture_difference` says
what stops two models from being blended.
"""
import numpy as np

from sr_keras.archs.graph import inbound_map
from sr_keras.core.errors import UserError

# Layer settings that do not change what the layer computes from its weights: how they were created
# (initialisers, e.g. a seed), trained (regularisers, constraints) or stored (dtype policy).
_IGNORED_KEYS = ("name", "trainable", "dtype")
_IGNORED_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def _settings(layer):
    return {k: v for k, v in layer.get_config().items()
            if k not in _IGNORED_KEYS and not k.endswith(_IGNORED_SUFFIXES)}


def architecture_difference(a, b):
    """The first difference that stops two Keras models from being interpolated, or None.

    Two models match when they have the same layer names, and each named layer has the same class,
    the same settings (initialisers and dtype policies aside), the same inputs and the same weight
    shapes in the same order.

    Args:
        a, b: keras.Model.

    Returns:
        str or None: e.g. "layer 'up1_conv' of the first is missing from the second".
    """
    names_a, names_b = [ly.name for ly in a.layers], [ly.name for ly in b.layers]
    for names, other, which in ((names_a, set(names_b), ("first", "second")),
                                (names_b, set(names_a), ("second", "first"))):
        missing = [n for n in names if n not in other]
        if missing:
            return f"layer '{missing[0]}' of the {which[0]} is missing from the {which[1]}"
    inbound_a, inbound_b = inbound_map(a), inbound_map(b)
    for la in a.layers:
        lb = b.get_layer(la.name)
        what = f"layer '{la.name}'"
        if type(la).__name__ != type(lb).__name__:
            return f"{what} is a {type(la).__name__} in the first, a {type(lb).__name__} in the second"
        if _settings(la) != _settings(lb):
            changed = sorted(k for k in set(_settings(la)) | set(_settings(lb))
                             if _settings(la).get(k) != _settings(lb).get(k))
            return f"{what} differs in {', '.join(changed)}"
        if inbound_a.get(la.name) != inbound_b.get(la.name):
            return f"{what} has other inputs"
        shapes_a = [tuple(w.shape) for w in la.weights]
        shapes_b = [tuple(w.shape) for w in lb.weights]
        if shapes_a != shapes_b:
            return f"{what} has weights of shapes {shapes_a} in the first, {shapes_b} in the second"
    return None


def check_same_architecture(a, b, shown_a, shown_b):
    """Raise UserError (one line naming both models as given) unless a and b can be interpolated."""
    difference = architecture_difference(a, b)
    if difference:
        raise UserError(f"cannot interpolate '{shown_a}' and '{shown_b}': not the same architecture "
                        f"({difference}); network interpolation blends two trainings of one generator")


def blend(a, b, alpha):
    """(1 - alpha) * a + alpha * b in a's dtype (float32 weights stay float32); other dtypes
    (integer counters, seeds) are not blended and keep a's value."""
    a, b = np.asarray(a), np.asarray(b)
    if not np.issubdtype(a.dtype, np.floating):
        return a
    return ((1 - alpha) * a + alpha * b).astype(a.dtype, copy=False)


def interpolate(a, b, alpha):
    """A new model, a's architecture, with every weight blended as (1 - alpha) * a + alpha * b.

    Args:
        a: keras.Model (alpha 0 gives its weights).
        b: keras.Model of the same architecture (alpha 1 gives its weights).
        alpha: float in [0, 1], the weight of b.

    Returns:
        keras.Model: a clone of a; a and b are left unchanged.

    Raises:
        ValueError: alpha outside [0, 1], or a and b of different architectures.
    """
    import keras

    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1]. Received: alpha={alpha!r}")
    difference = architecture_difference(a, b)
    if difference:
        raise ValueError(f"a and b are not the same architecture: {difference}")
    out = keras.models.clone_model(a)
    for layer in out.layers:
        for var, wa, wb in zip(layer.weights, a.get_layer(layer.name).weights, b.get_layer(layer.name).weights):
            var.assign(blend(keras.ops.convert_to_numpy(wa), keras.ops.convert_to_numpy(wb), alpha))
    return out


def export_config(path, model, shown):
    """The GeneratorConfig the export at `path` carries in generator.json, else generator_config() of
    its model (a bare .keras file); UserError about `model`, "model '<shown>' is not ...", when neither
    gives one."""
    from sr_keras.archs.registry import ARCHITECTURES
    from sr_keras.infer.loading import load_generator_config

    config = load_generator_config(path) or generator_config(model, shown)
    if config is None:
        titles = " or ".join(spec.title for spec in ARCHITECTURES.values())
        raise UserError(f"'{shown}' is not an {titles} generator of this project and carries no "
                        "generator.json: give an export folder written by --export", argument="model")
    return config


def generator_config(model, shown=None):
    """The GeneratorConfig of a generator built by one of registry.ARCHITECTURES, recognised by the
    architecture's reader of layer names; for bare .keras files, which carry no generator.json.
    export_model checks the result against a rebuild, so a model this misreads is refused rather than
    mislabelled.

    Args:
        model: keras.Model.
        shown: the model as the user gave it, for errors about `model` (default: its name).

    Returns:
        GeneratorConfig, or None when the model is none of this project's architectures.
    """
    from sr_keras.archs.config import GeneratorConfig
    from sr_keras.archs.registry import ARCHITECTURES
    from sr_keras.infer.loading import probe_scale

    layers = {ly.name: ly for ly in model.layers}
    scale = probe_scale(lambda x: model(x, training=False), model.name if shown is None else shown)
    for spec in ARCHITECTURES.values():
        fields = spec.read(layers)
        if fields is not None:
            return GeneratorConfig(scale, arch=spec.arch, **fields)
    return None
