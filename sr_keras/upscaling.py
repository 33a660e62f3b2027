"""Upscaling whole pictures: inputs collected from files and folders, <stem>_x<s>.png outputs.

A picture comes back as it came: grey stays grey, 16-bit grey stays 16-bit, and an alpha channel
is upscaled with bicubic beside the model's colour (the model only sees colour). Files are written
as the rows of tiles come out of the model (sr_keras.imageio.PngStream), so memory stays bounded
whatever the picture's size; a file that cannot be read is named and skipped.

TensorFlow is imported only when a picture is upscaled, so bad inputs are reported at once.
"""
import os
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

from sr_keras.errors import UserError
from sr_keras.imageio import IMAGE_EXTENSIONS, PngStream, atomic_file, list_images, read_image


def collect_inputs(inputs):
    """Expand folders into their image files (natural order).

    Args:
        inputs: image files and folders, as given.

    Returns:
        (files, problems): problems are (input as given, message) for inputs that yield no image.
    """
    files, problems = [], []
    for given in inputs:
        if os.path.isdir(given):
            found = [os.path.join(given, n) for n in list_images(given)]
            if not found:
                problems.append((given, f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in folder '{given}'"))
            files += found
        elif os.path.isfile(given):
            files.append(given)
        else:
            problems.append((given, f"input '{given}' not found"))
    return files, problems


def output_name(path, scale):
    """'photos/cat.jpg', 4 -> 'cat_x4.png'."""
    return f"{os.path.splitext(os.path.basename(path))[0]}_x{scale}.png"


def split_alpha(pixels):
    """(colour, alpha): an HxWx2 (grey + alpha) or HxWx4 (RGBA) uint8 array split into its colour and
    a Pillow "L" alpha image, as read_image returns them; other arrays come back with alpha None."""
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        if pixels.dtype != np.uint8:
            raise ValueError(f"an image with alpha must be uint8. Received: dtype={pixels.dtype}")
        colour = pixels[..., 0] if pixels.shape[2] == 2 else pixels[..., :3]
        return np.ascontiguousarray(colour), Image.fromarray(np.ascontiguousarray(pixels[..., -1]))
    return pixels, None


def upscale_pixels(upscaler, pixels, alpha=None, tile=256, overlap=16, max_tile_mb=768, progress=False):
    """Yield (row, band): the upscaled picture one row of tiles at a time, alpha as its last channel.

    Args:
        upscaler: a loaded sr_keras.inference.Upscaler.
        pixels: HxW or HxWx3 uint8, or HxW uint16 (read_image's pixels).
        alpha: a Pillow "L" image of the same size, or None; upscaled with bicubic (x257 beside
            16-bit pixels).
        tile, overlap, max_tile_mb, progress: as sr_keras.inference.upscale_image.
    """
    from sr_keras.inference import upscale_bands

    s = upscaler.scale
    if alpha is not None:
        alpha = np.asarray(alpha.resize((pixels.shape[1] * s, pixels.shape[0] * s), Image.BICUBIC))
        if pixels.dtype == np.uint16:
            alpha = alpha.astype(np.uint16) * 257
    for row, band in upscale_bands(upscaler, pixels, tile, overlap, max_tile_mb, progress=progress):
        if alpha is not None:
            a = alpha[row:row + band.shape[0], :, None]
            band = np.concatenate([band if band.ndim == 3 else band[..., None], a], axis=2)
        yield row, band


def upscale_file(upscaler, path, out_dir, tile=256, overlap=16, max_tile_mb=768):
    """Upscale one image file to out_dir/<stem>_x<s>.png, written atomically; returns that path.

    Raises:
        UserError: one line naming the file when it cannot be read or the output cannot be written.
    """
    pixels, alpha, info = read_image(path)
    s = upscaler.scale
    h, w = pixels.shape[0] * s, pixels.shape[1] * s
    channels = (1 if pixels.ndim == 2 else 3) + (alpha is not None)
    dest = os.path.join(out_dir, output_name(path, s))
    try:
        with atomic_file(dest) as tmp, open(tmp, "wb") as f:
            png = PngStream(f, w, h, channels, pixels.dtype, info.get("icc_profile"))
            for _, band in upscale_pixels(upscaler, pixels, alpha, tile, overlap, max_tile_mb, progress=True):
                png.write(band)
            png.close()
    except OSError as e:
        raise UserError(f"cannot write '{dest}': {e.strerror or e}") from e
    return dest


def upscale_files(upscaler, files, out_dir, tile=256, overlap=16, max_tile_mb=768):
    """Upscale each file into out_dir; a file that fails is named on stderr and skipped.

    Two inputs with the same stem would write the same output: the second is refused, not written.

    Returns:
        (written, failed): the number of files written, and the files that failed.
    """
    import tensorflow as tf

    written, failed = 0, []
    claimed = {}  # output name -> the input that produced it
    for path in tqdm(files, desc=f"upscale x{upscaler.scale}", unit="img"):
        try:
            name = output_name(path, upscaler.scale)
            if name in claimed:
                raise UserError(f"'{path}' would overwrite {name}, the output of '{claimed[name]}' (same file stem)")
            claimed[name] = path
            try:
                upscale_file(upscaler, path, out_dir, tile, overlap, max_tile_mb)
            except (MemoryError, tf.errors.ResourceExhaustedError) as e:
                raise UserError(f"out of memory on '{path}': use a smaller --tile or --tile-memory") from e
            written += 1
        except UserError as e:
            tqdm.write(f"error: {e} (skipped)", file=sys.stderr)
            failed.append(path)
    return written, failed
