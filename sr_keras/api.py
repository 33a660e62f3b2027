"""The Python API: load a trained upscaler by name or path, upscale a picture in one call.

    import sr_keras
    big = sr_keras.upscale(pixels, model="srresnet_x4")    # uint8 HxWx3 in, uint8 (4H)x(4W)x3 out
    upscaler = sr_keras.load("srresnet_x4")                # sr_keras.infer.inference.Upscaler

Names resolve as for `upscale.py --model` (sr_keras.infer.loading.resolve): the repository's
saved_models/, then $SR_KERAS_MODELS. The result is what upscale.py writes for the same picture: the
same tiles, grey stays grey, alpha is upscaled with bicubic. A SavedModel folder without model.keras
is refused, as by upscale.py, unless `trust_model=True` vouches for it (for SavedModels you wrote
yourself); even then it is checked before any of it runs (sr_keras.infer.model_safety). A `.tflite` file
(export.py --format tflite) loads as well, and runs through LiteRT after its op list is checked.

TensorFlow is imported on first use, with its start-up banner hidden as the CLIs hide it
(sr_keras.core.tfbanner: TF_CPP_MIN_LOG_LEVEL=2 unless set, fd 2 captured only while TensorFlow imports).
"""
import os

import numpy as np

from sr_keras.core.tfbanner import hide_tensorflow_banner
from sr_keras.infer.upscaler import Upscaler

_CACHE = None  # an inference.ModelCache, made on first use (importing it imports TensorFlow)


def load(name_or_path, trust_model=False):
    """The Upscaler of a model name or path, loaded once per model file.

    Args:
        name_or_path: a model name (e.g. "srresnet_x4"), an export folder, a .keras file or a .tflite
            file; an Upscaler (what load returns) comes back as it is.
        trust_model: vouch for a SavedModel folder without model.keras (refused otherwise); its graph is
            still checked (sr_keras.infer.model_safety). Only for SavedModels you wrote yourself.

    Returns:
        sr_keras.infer.inference.Upscaler: callable on one uint8 image; `scale` and `config` describe it.

    Raises:
        sr_keras.core.errors.UserError: the model cannot be found or loaded, or is refused (one line naming
            it: "model 'x' not found: ...").
    """
    if isinstance(name_or_path, Upscaler):
        return name_or_path
    hide_tensorflow_banner()
    global _CACHE
    if _CACHE is None:
        from sr_keras.infer.inference import ModelCache

        _CACHE = ModelCache()
    return _CACHE.get(name_or_path, trust_model)


def _pixels(image):
    """(pixels, alpha) of an array, a path or a Pillow image, as upscale.py reads a file."""
    from PIL import Image

    from sr_keras.core.imageio import read_image
    from sr_keras.infer.pictures import split_alpha

    if isinstance(image, (str, os.PathLike)):
        pixels, alpha, _ = read_image(image)
        return pixels, alpha
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        image = np.asarray(image)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a NumPy array, a path or a PIL image. Received: image={type(image)}")
    return split_alpha(image)


def upscale(image, model="srresnet_x4", tile=None, overlap=16, tile_memory="auto", trust_model=False):
    """Upscale one picture with a trained model, tile by tile as upscale.py does.

    Args:
        image: a NumPy array (uint8 HxWx3 RGB or HxW grey, uint8 HxWx4 RGBA or HxWx2 grey + alpha,
            uint16 HxW or HxWx3), an image file path, or a PIL image.
        model: a model name, an export folder, a .keras file or a .tflite file (loaded once, then
            cached), or an upscaler sr_keras.load returned.
        tile: largest tile side in LR pixels; None = as large as tile_memory allows (a picture that
            fits runs in one pass, the fastest on a CPU); 0 = the whole picture in one pass.
        overlap: LR pixels of context around each tile (raised to the model's receptive radius).
        tile_memory: MB one tile's activations may take; tiles shrink to fit. "auto" = a quarter of the
            memory left, 256 to 4096 MB (sr_keras.infer.memory.auto_tile_mb); 0 = no limit.
        trust_model: see load().

    Returns:
        np.ndarray: the picture s times larger, same dtype and channels as the input.
    """
    from sr_keras.infer.pictures import upscale_pixels

    upscaler = load(model, trust_model)
    pixels, alpha = _pixels(image)
    s = upscaler.scale
    channels = pixels.shape[2:] if alpha is None else ((pixels.shape[2] if pixels.ndim == 3 else 1) + 1,)
    out = np.empty((pixels.shape[0] * s, pixels.shape[1] * s) + channels, pixels.dtype)
    for row, band in upscale_pixels(upscaler, pixels, alpha, tile, overlap, tile_memory or None):
        out[row:row + band.shape[0]] = band
    return out
