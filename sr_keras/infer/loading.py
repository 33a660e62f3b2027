"""Find and load a trained generator: model names, the one Keras loader, the one scale probe.

A model is given as a path (an export folder written by `export_model`, a `.keras` or a `.tflite`
file) or as a name: `srresnet_x4` is looked up in the shipped `saved_models/` (installed with the
package as `sr_keras/saved_models`, or the repository's folder in a checkout), then in the folder
named by the environment variable `SR_KERAS_MODELS`, from any working directory: a same-named entry
of the working directory does not shadow it (`./NAME` names that one). An export folder carries
`generator.json` (the generator's `GeneratorConfig`); exports written before it existed have none.

A command resolves what the user gave once, at its edge (`resolve`), into a `ModelRef`: the path, its
kind and, for a SavedModel without model.keras, whether its graph has been checked; the loaders take
that reference (or a name or path, which they resolve once themselves). Their errors are about the
argument `model` ("model 'x' not found"); a script names its flag there (sr_keras.cli.parsing.naming_flags).

TensorFlow and Keras are imported only when a model is loaded, so resolving a name stays cheap.
"""
import dataclasses
import os
import zipfile
from pathlib import Path

from sr_keras.core.errors import UserError, first_line

MODELS_ENV = "SR_KERAS_MODELS"
CONFIG_FILE = "generator.json"
KERAS_FILE = "model.keras"
TFLITE_SUFFIX = ".tflite"
_HINT = ("give a folder written by --export (saved_model.pb, model.keras), a .keras or .tflite file or a "
         "model name")


def model_folders():
    """The folders model names are looked up in, in order: the shipped saved_models/ (inside the
    installed package; in a checkout or an editable install, the repository's folder beside it), then
    $SR_KERAS_MODELS when it is set."""
    package = Path(__file__).resolve().parents[1]  # sr_keras/
    folders = [folder for folder in (package / "saved_models", package.parent / "saved_models") if folder.is_dir()]
    if os.environ.get(MODELS_ENV):
        folders.append(Path(os.environ[MODELS_ENV]).expanduser())
    return folders


def _is_model(path):
    if path.is_dir():
        return (path / KERAS_FILE).is_file() or (path / "saved_model.pb").is_file()
    return path.is_file() and path.suffix in (".keras", TFLITE_SUFFIX)


def known_models():
    """{name: path} of every model found by name; an earlier folder wins over a later one."""
    found = {}
    for folder in model_folders():
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            name = entry.stem if entry.suffix in (".keras", TFLITE_SUFFIX) else entry.name
            if not name.startswith(".") and _is_model(entry):
                found.setdefault(name, str(entry))
    return found


def is_bare_name(given):
    """Whether a --model value is a name (no folder part: "demo_x4", "mine.keras") rather than a path."""
    return bool(given) and given not in (".", "..") and os.path.basename(given) == given \
        and not (os.altsep and os.altsep in given)


def resolve_model(name_or_path):
    """The path of a model given as a name or a path.

    A bare name (no folder part) is looked up in saved_models/ and $SR_KERAS_MODELS first, whatever
    the working directory holds: a folder `demo_x4` in it does not shadow the shipped model (give
    `./demo_x4` for that one). A bare name that is no known model, and anything with a folder part,
    is a path.

    Args:
        name_or_path: the name of a model in saved_models/ or $SR_KERAS_MODELS (a folder `NAME`, or a
            file `NAME.keras` or `NAME.tflite` there), or an existing path (returned as given).

    Returns:
        str: the path.

    Raises:
        UserError: one line about `model`, naming the value as given and listing the known names.
    """
    given = os.fspath(name_or_path)
    if is_bare_name(given):
        for folder in model_folders():
            for candidate in (folder / given, folder / f"{given}.keras", folder / f"{given}{TFLITE_SUFFIX}"):
                if _is_model(candidate):
                    return str(candidate)
    if given and os.path.exists(given):
        return given
    names = ", ".join(known_models()) or "none"
    where = f"saved_models/ or ${MODELS_ENV}"
    raise UserError(f"'{given}' not found: no such file or folder, and no model of that name in {where} "
                    f"(known names: {names}); {_HINT}", argument="model")


def is_savedmodel_only(path):
    """Whether `path` is a SavedModel folder without model.keras: a program, run only once checked."""
    return os.path.isdir(path) and not os.path.isfile(os.path.join(path, KERAS_FILE)) \
        and os.path.isfile(os.path.join(path, "saved_model.pb"))


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """A model resolved once (`resolve`), as the loaders take it.

    Attributes:
        path: the resolved path.
        given: the value as the user gave it (a model name or a path).
        kind: "tflite" (a .tflite file), "savedmodel" (a SavedModel folder without model.keras: a
            program), "export" (a folder with model.keras), "keras" (a path ending in .keras), or
            "other" (any other existing path: its loader says why it cannot take it).
        checked: a "savedmodel" whose graph sr_keras.infer.model_safety has passed (the user vouched
            for it). Only `resolve` sets it: a ModelRef made elsewhere is unchecked, so it cannot carry
            a SavedModel past the check.
    """
    path: str
    given: str
    kind: str
    checked: bool = dataclasses.field(default=False, init=False)


def _kind(path):
    """The ModelRef kind of an existing path, as the loaders dispatch on it."""
    if os.path.isfile(path) and path.endswith(TFLITE_SUFFIX):
        return "tflite"
    if is_savedmodel_only(path):
        return "savedmodel"
    if os.path.isdir(path):
        return "export" if os.path.isfile(os.path.join(path, KERAS_FILE)) else "other"
    return "keras" if path.endswith(".keras") else "other"


def resolve(name_or_path, trust_model=False, check=True):
    """A model given as a name, a path or a ModelRef, resolved once; a SavedModel without model.keras
    (a program: sr_keras.infer.model_safety) is checked, which is cheap (only saved_model.pb is parsed,
    nothing runs), so a command calls this before anything slow or destructive.

    Args:
        name_or_path: a path or a model name (see resolve_model), or a ModelRef (returned as it is,
            once checked where `check` asks for it).
        trust_model: the user vouches for a SavedModel without model.keras (--trust-model); without it
            such a model is refused, with it its graph is still checked.
        check: check such a SavedModel now; False leaves it unchecked for a caller that checks it later
            (load_upscaler does, before it runs) or loads only Keras models.

    Returns:
        ModelRef.

    Raises:
        UserError: one line about `model` naming the value, when it is not found or the SavedModel is refused.
    """
    if isinstance(name_or_path, ModelRef):
        ref = name_or_path
    else:
        path = resolve_model(name_or_path)
        ref = ModelRef(path, os.fspath(name_or_path), _kind(path))
    if check and ref.kind == "savedmodel" and not ref.checked:
        from sr_keras.infer.model_safety import check_savedmodel

        check_savedmodel(ref.path, trust_model=trust_model)
        ref = ModelRef(ref.path, ref.given, ref.kind)
        object.__setattr__(ref, "checked", True)  # the one place a ModelRef is marked checked
    return ref


def load_keras_model(path):
    """The Keras model of an export folder (its model.keras) or of a .keras file, loaded in safe mode.

    Args:
        path: a ModelRef, a path or a model name (see resolve_model).

    Returns:
        keras.Model, uncompiled.

    Raises:
        UserError: one line about `model` naming the path, for anything that is not a loadable Keras model.
    """
    path = resolve(path, check=False).path  # a SavedModel alone is refused below, never run
    keras_file = os.path.join(path, KERAS_FILE) if os.path.isdir(path) else path
    if os.path.isdir(path) and not os.path.isfile(keras_file):
        raise UserError(f"'{path}' is a folder without {KERAS_FILE}: {_HINT}", argument="model")
    if not keras_file.endswith(".keras"):
        raise UserError(f"'{path}' is neither a .keras file nor an export folder: {_HINT}", argument="model")
    if not zipfile.is_zipfile(keras_file):  # Keras would call it "File not found"
        raise UserError(f"'{path}': cannot load {keras_file}: not a .keras archive (not a zip file)",
                        argument="model")
    import keras

    from sr_keras.archs import models  # noqa: F401  registers PixelShuffle and the other custom layers

    try:
        return keras.saving.load_model(keras_file, compile=False, safe_mode=True)
    except Exception as e:  # a corrupt or foreign file: name it, no traceback
        raise UserError(f"'{path}': cannot load the Keras model: {first_line(e)}", argument="model") from e


def load_generator_config(path):
    """The GeneratorConfig an export carries in generator.json, or None when it has none.

    Args:
        path: an export folder, or the model.keras inside one; any other file has no config.

    Raises:
        UserError: one line naming generator.json when it is unreadable or not a generator config
            (GeneratorConfig.from_json checks size, nesting, keys, types and ranges before anything is built).
    """
    from sr_keras.archs.config import MAX_JSON_BYTES, GeneratorConfig

    path = os.fspath(path)
    if os.path.isdir(path):
        config_file = os.path.join(path, CONFIG_FILE)
    elif os.path.basename(path) == KERAS_FILE:
        config_file = os.path.join(os.path.dirname(path), CONFIG_FILE)
    else:
        return None
    if not os.path.isfile(config_file):
        return None
    try:
        with open(config_file, encoding="utf-8") as f:
            return GeneratorConfig.from_json(f.read(MAX_JSON_BYTES + 1))  # what is longer is refused unread
    except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"cannot read the generator config '{config_file}': {first_line(e)}") from e


def shape_text(shape):
    """A batch shape as users read it: (None, 10) -> "[N, 10]", unknown sizes as "?"."""
    dims = ["?" if d is None else str(int(d)) for d in shape]
    return "[" + ", ".join(["N"] + dims[1:]) + "]" if dims else "a scalar"


# Two probe sizes, one not square: an output that does not follow both is a fixed size or a transpose.
_PROBES = ((8, 8), (8, 12))
# The largest scale a model may have: twice the largest this project trains (x8). A larger one is
# refused before it is run on anything bigger than the probes.
MAX_SCALE = 16


def probe_scale(fn, shown):
    """The integer upscaling factor of an image-to-image function, probed on an 8x8 and an 8x12 RGB input.

    Args:
        fn: callable taking a [1, H, W, 3] float32 batch (zeros, a valid [0, 1] image) and returning
            a batch of images.
        shown: the model as the user gave it.

    Returns:
        int: s when every HxW image comes back sH x sW x 3.

    Raises:
        UserError: one line about `model` saying what it is when fn fails on the input, returns no image batch
            (a classifier), returns other than 3 channels, does not scale both sizes by one integer
            factor (a fixed output size, a fractional scale, a transpose), or scales by more than MAX_SCALE.
    """
    import numpy as np

    shapes = []
    for h, w in _PROBES:
        try:
            out = fn(np.zeros((1, h, w, 3), np.float32))
        except UserError:
            raise
        except Exception as e:  # a fixed input size, another channel count, ...: not an image upscaler
            raise UserError(f"'{shown}' cannot upscale an {h}x{w} RGB image: {first_line(e)}",
                            argument="model") from e
        shape = tuple(int(d) for d in out.shape)
        if len(shape) != 4 or shape[0] != 1:
            raise UserError(f"'{shown}': not an image-to-image model (its output is {shape_text(shape)})",
                            argument="model")
        if shape[3] != 3:
            raise UserError(f"'{shown}' is not an RGB upscaler: an {h}x{w} image came back {shape[1:]}",
                            argument="model")
        shapes.append(shape)
    scale = max(1, shapes[0][1] // _PROBES[0][0])
    if scale > MAX_SCALE:
        raise UserError(f"'{shown}' asks for x{scale} (an {_PROBES[0][0]}x{_PROBES[0][1]} image came back "
                        f"{shapes[0][1]}x{shapes[0][2]}); the largest scale taken is x{MAX_SCALE}", argument="model")
    if any(s[1:3] != (h * scale, w * scale) for s, (h, w) in zip(shapes, _PROBES)):
        seen = " and ".join(f"{h}x{w} -> {s[1]}x{s[2]}" for s, (h, w) in zip(shapes, _PROBES))
        fixed = "; a fixed output size" if len({s[1:3] for s in shapes}) == 1 else ""
        raise UserError(f"'{shown}' is not an upscaler at an integer scale: {seen}{fixed}", argument="model")
    return scale
