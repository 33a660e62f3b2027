"""MATLAB-compatible bicubic resizing (the DIV2K degradation for the bicubic tracks).

Pillow's BICUBIC filter uses the same Keys kernel (a = -0.5) as MATLAB `imresize`, widened by the
scale factor when shrinking (MATLAB's antialiasing), and samples at pixel centres like MATLAB.
docs/data.md gives the measured difference from a NumPy port of MATLAB's imresize.
"""
import numpy as np
from PIL import Image


def crop_to_multiple(img, scale):
    """Top-left crop so height and width are multiples of `scale`."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def _resize_u8(img, size):
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(size, Image.BICUBIC))


def downscale(img, scale):
    """uint8 HxWxC -> uint8 (H//s)x(W//s)xC, MATLAB-style antialiased bicubic."""
    img = crop_to_multiple(np.asarray(img, np.uint8), scale)
    h, w = img.shape[:2]
    return _resize_u8(img, (w // scale, h // scale))


def upscale_bicubic(img, scale):
    """uint8 HxWxC -> uint8 (s*H)x(s*W)xC bicubic (the evaluation baseline)."""
    img = np.asarray(img, np.uint8)
    h, w = img.shape[:2]
    return _resize_u8(img, (w * scale, h * scale))
