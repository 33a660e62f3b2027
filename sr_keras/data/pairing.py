"""LR/HR pairs: the pairing rule, the checks run before any training step, and reading a pair.

PAIRING RULE: an LR side of length l belongs to an HR side of length L when |s*l - L| < s (LR is
floor(L/s) or ceil(L/s), MATLAB imresize's two size conventions). The pair is then trimmed from the
top-left to LR = min(l, floor(L/s)) and HR = s times that, which keeps pixel alignment for both
conventions because imresize samples from the top-left corner.

Every pair is checked when a dataset is built: files must have a readable header and the sizes must
follow the pairing rule; a bad pair raises UserError naming the file. Pixels are read with
sr_keras.core.imageio.read_rgb (its 16-bit rule, EXIF orientation), so training, validation and
evaluate.py see the same pixels of a file.
"""
import sys

import numpy as np
from PIL import Image

from sr_keras.core import imageio
from sr_keras.core.errors import UserError
from sr_keras.data import imresize

# Sources whose non-RGB images were already reported: training and validation of one source say it once.
_CONVERSION_REPORTED = set()
# EXIF orientations that swap width and height (transpose, rotations by 90 degrees)
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def sizes_pair(lr_size, hr_size, scale):
    """True when LR (h, w) and HR (h, w) follow the PAIRING RULE at `scale`."""
    return all(abs(scale * l - h) < scale for l, h in zip(lr_size, hr_size))


def trimmed_lr_size(lr_size, hr_size, scale):
    """LR (h, w) after trimming a pair (the HR side is `scale` times it)."""
    return tuple(min(l, h // scale) for l, h in zip(lr_size, hr_size))


def trim(lr, hr, scale):
    """The PAIRING RULE's trim of two arrays: LR to trimmed_lr_size, HR to scale times that, top-left."""
    h, w = trimmed_lr_size(lr.shape[:2], hr.shape[:2], scale)
    return lr[:h, :w], hr[:scale * h, :scale * w]


def _orientation(im):
    """EXIF orientation of an opened image without decoding it (a PNG's getexif() would decode the
    pixels; an eXIf chunk before them is already in im.info)."""
    if im.format != "PNG":
        return im.getexif().get(0x0112)
    exif = Image.Exif()
    if "exif" in im.info:
        exif.load(im.info["exif"])
    return exif.get(0x0112)


def header(path):
    """(height, width) as read (EXIF orientation applied) and mode of an image file, after a cheap
    integrity check (PNG chunk CRCs); imageio.open_image's refusals (not an image, a decompression
    bomb, floating point) and any damage found are a UserError naming the file."""
    with imageio.open_image(path) as im:
        size, mode = (im.height, im.width), im.mode
        if im.tile and ";16" in str(im.tile[0][3]):  # Pillow reports 48-bit PNGs as plain "RGB"
            mode += " 16-bit"
        if _orientation(im) in _SWAPPING_ORIENTATIONS:
            size = size[::-1]
        im.verify()
    return size, mode


def check_pairs(pairs, scale, source):
    """Fill the sizes and modes of sources.Pair objects; UserError for an unreadable header or an
    HR/LR size mismatch. Non-RGB images are reported once per source."""
    for p in pairs:
        if isinstance(p.hr, np.ndarray):
            p.hr_size = p.hr.shape[:2]
        else:
            p.hr_size, p.mode = header(p.hr)
        if p.lr is None:
            p.lr_size = (p.hr_size[0] // scale, p.hr_size[1] // scale)
        elif isinstance(p.lr, np.ndarray):
            p.lr_size = p.lr.shape[:2]
        else:
            p.lr_size, lr_mode = header(p.lr)
            p.mode = p.mode if p.mode != "RGB" else lr_mode
            if not sizes_pair(p.lr_size, p.hr_size, scale):
                h, w = p.hr_size
                raise UserError(
                    f"{p.lr}: LR image is {p.lr_size[1]}x{p.lr_size[0]} but its HR image {p.hr} is {w}x{h}; "
                    f"x{scale} needs LR {w // scale}x{h // scale} (within one pixel of HR/{scale})")
        p.lr_size = trimmed_lr_size(p.lr_size, p.hr_size, scale)
        if min(p.lr_size) < 1:
            raise UserError(f"{p.name}: image too small for x{scale} ({p.hr_size[1]}x{p.hr_size[0]})")
    odd = [p for p in pairs if p.mode != "RGB"]
    if odd and source not in _CONVERSION_REPORTED:
        _CONVERSION_REPORTED.add(source)
        print(f"warning: {len(odd)} image(s) are not 8-bit RGB (e.g. {odd[0].name}: mode {odd[0].mode}); "
              f"converted to 8-bit RGB (alpha dropped, 16-bit levels v to round(v/257)), as are any others "
              f"in {source}", file=sys.stderr)


def read_pair(pair, scale):
    """Trimmed (lr, hr) uint8 arrays of a checked pair; UserError naming a file that cannot be read,
    or whose pixels disagree with its header."""
    hr = pair.hr if isinstance(pair.hr, np.ndarray) else imageio.read_rgb(pair.hr)
    if pair.lr is None:
        lr = imresize.downscale(hr, scale)
    else:
        lr = pair.lr if isinstance(pair.lr, np.ndarray) else imageio.read_rgb(pair.lr)
    lr, hr = trim(lr, hr, scale)
    if lr.shape[:2] != tuple(pair.lr_size):
        raise UserError(f"{pair.name}: decodes to LR {lr.shape[1]}x{lr.shape[0]} but its header says "
                        f"{pair.lr_size[1]}x{pair.lr_size[0]}; replace or remove it")
    return lr, hr
