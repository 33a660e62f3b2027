"""Upscaling whole pictures: inputs collected from files and folders, <stem><suffix>.<ext> outputs.

A picture comes back as it came: grey stays grey, 16-bit grey stays 16-bit, and an alpha channel
is upscaled with bicubic beside the model's colour (the model only sees colour); JPEG and WebP
outputs keep the input's ICC profile and EXIF (orientation reset: the pixels are stored upright). A
PNG at the model's scale is written as the rows of tiles come out of the model
(sr_keras.core.imageio.PngStream), so memory stays bounded whatever the picture's size; JPEG, WebP and
--outscale hold the whole output once. Every output is written atomically (temp file + rename), so an
output that exists is complete: --skip-existing trusts it (and a SIGTERM, handled as Ctrl-C by
sr_keras.core.errors.cli_entry, leaves no temporary file).

Each file is its own job: a file that cannot be read (sr_keras.core.imageio's refusals: damaged, a
decompression bomb, floating point, not a raster format), whose pixels or size the chosen format
cannot hold (16-bit in JPEG/WebP, alpha in JPEG, a side over the format's limit), whose output would
need more memory at once than is available (JPEG, WebP and --outscale hold the whole output; e.g.
--outscale 3000), whose output would replace an input (a folder upscaled into itself, --suffix "", -o
naming the input), that the model cannot take (too small for its borders, e.g. 1 pixel wide with a
bicubic-skip model; output not finite) or that runs out of memory is named in one line and skipped;
the others are written. A full disk stops the batch, once. Metadata that the output cannot carry
is dropped with a warning naming the file: an EXIF block over JPEG's 64 kB segment, an ICC profile
over MAX_ICC_BYTES (Pillow reads no larger one back from a PNG).

TensorFlow is imported only when a picture is upscaled, so bad inputs are reported at once.
"""
import contextlib
import dataclasses
import errno
import os
import re
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

from sr_keras.core.errors import UserError, first_line, one_line
from sr_keras.core.imageio import IMAGE_EXTENSIONS, PngStream, atomic_file, list_images, read_image
from sr_keras.infer import memory
from sr_keras.infer.metadata import output_metadata
from sr_keras.infer.tiling import upscale_bands


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


# --ext -> the Pillow format written, and the longest side that format can store
FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
MAX_SIDE = {"png": 2**31 - 1, "jpg": 65535, "webp": 16383}


@dataclasses.dataclass(frozen=True)
class Tiling:
    """How pictures go through the model (sr_keras.infer.inference.upscale_image): core tile side in LR
    pixels (0 = whole picture), margin, activation memory per tile in MB (None/0 = no limit), and
    tiles per model call (the same pixels whatever the batch; `batch` times the memory)."""

    tile: int = 256
    overlap: int = 16
    max_tile_mb: int = 768
    batch: int = 1


@dataclasses.dataclass(frozen=True)
class Output:
    """What is written: format (a key of FORMATS), JPEG/WebP quality (1-100), final scale (None: the
    model's; else round(outscale x input size), Lanczos-resampled from the model's output), and the
    file-name suffix (None: "_x<final scale>")."""

    ext: str = "png"
    quality: int = 95
    outscale: float = None
    suffix: str = None

    def __post_init__(self):
        if self.ext not in FORMATS:
            raise ValueError(f"ext must be one of {sorted(FORMATS)}. Received: ext={self.ext!r}")
        if self.outscale is not None and not self.outscale > 0:
            raise ValueError(f"outscale must be positive. Received: outscale={self.outscale}")

    def name(self, path, scale):
        """'photos/cat.jpg', model scale 4 -> 'cat_x4.png' (with the defaults)."""
        suffix = self.suffix if self.suffix is not None else f"_x{self.outscale or scale:g}"
        return f"{os.path.splitext(os.path.basename(path))[0]}{suffix}.{self.ext}"

    def size(self, width, height, scale):
        """The (width, height) written for an input of width x height."""
        if self.outscale is None:
            return width * scale, height * scale
        return tuple(max(1, int(self.outscale * n + 0.5)) for n in (width, height))


def split_alpha(pixels):
    """(colour, alpha): an HxWx2 (grey + alpha) or HxWx4 (RGBA) uint8 array split into its colour and
    a Pillow "L" alpha image, as read_image returns them; other arrays come back with alpha None."""
    if pixels.ndim == 3 and pixels.shape[2] in (2, 4):
        if pixels.dtype != np.uint8:
            raise ValueError(f"an image with alpha must be uint8. Received: dtype={pixels.dtype}")
        colour = pixels[..., 0] if pixels.shape[2] == 2 else pixels[..., :3]
        return np.ascontiguousarray(colour), Image.fromarray(np.ascontiguousarray(pixels[..., -1]))
    return pixels, None


def upscale_pixels(upscaler, pixels, alpha=None, tile=256, overlap=16, max_tile_mb=768, progress=False, batch=1):
    """Yield (row, band): the upscaled picture one row of tiles at a time, alpha as its last channel.

    Args:
        upscaler: a loaded sr_keras.infer.inference.Upscaler.
        pixels: HxW or HxWx3 uint8, or HxW uint16 (read_image's pixels).
        alpha: a Pillow "L" image of the same size, or None; upscaled with bicubic (x257 beside
            16-bit pixels).
        tile, overlap, max_tile_mb, progress, batch: as sr_keras.infer.tiling.upscale_image.
    """
    s = upscaler.scale
    if alpha is not None:
        alpha = np.asarray(alpha.resize((pixels.shape[1] * s, pixels.shape[0] * s), Image.BICUBIC))
        if pixels.dtype == np.uint16:
            alpha = alpha.astype(np.uint16) * 257
    for row, band in upscale_bands(upscaler, pixels, tile, overlap, max_tile_mb, progress=progress, batch=batch):
        if alpha is not None:
            a = alpha[row:row + band.shape[0], :, None]
            band = np.concatenate([band if band.ndim == 3 else band[..., None], a], axis=2)
        yield row, band


def check_format(pixels, alpha, path, output, scale=None):
    """Raise UserError (one line naming the file) when output's format cannot hold the picture (its
    pixels, or, given the model's `scale`, its size), or the output held whole would not fit in memory."""
    fmt = FORMATS[output.ext]
    if scale is not None:
        w, h = output.size(pixels.shape[1], pixels.shape[0], scale)
        if max(w, h) > MAX_SIDE[output.ext]:
            raise UserError(f"'{path}' would become {w}x{h}, over {fmt}'s largest side of "
                            f"{MAX_SIDE[output.ext]} pixels: use a smaller --outscale or another --ext")
        held, left = held_bytes(pixels, alpha, output, scale), memory_available()
        if left is not None and held > left:
            raise UserError(f"'{path}' would become {w}x{h}, which needs {held / 2**30:,.1f} GiB of memory at once, "
                            f"more than the {left / 2**30:,.1f} GiB available: use a smaller --outscale, or --ext "
                            "png without --outscale (written as it is made)")
    if pixels.dtype == np.uint16 and fmt != "PNG":
        raise UserError(f"'{path}' is 16-bit and {fmt} holds 8 bits: use --ext png to keep it")
    if alpha is not None and fmt == "JPEG":
        raise UserError(f"'{path}' has an alpha channel, which JPEG cannot hold: use --ext png or webp")


def memory_available():
    """Bytes this process may still allocate (sr_keras.infer.memory.memory_left: available memory, ulimit -v,
    the cgroup's limit), or None when unknown."""
    return memory.memory_left()


def held_bytes(pixels, alpha, output, scale):
    """Bytes upscale_file holds at once for `pixels` (with `alpha`): 0 for a PNG at the model's scale
    (written as it is made); else the model-scale picture, the resized one with Pillow's image it comes
    from, and Pillow's copy to save (Pillow stores a pixel in 4 bytes)."""
    if output.ext == "png" and output.outscale is None:
        return 0
    channels = (1 if pixels.ndim == 2 else 3) + (alpha is not None)
    h, w = pixels.shape[0] * scale, pixels.shape[1] * scale
    fw, fh = output.size(pixels.shape[1], pixels.shape[0], scale)
    item = pixels.dtype.itemsize
    resized = fw * fh * (channels * item + 4) if (fw, fh) != (w, h) else 0
    saved = fw * fh * 4 if output.ext != "png" else 0
    return w * h * channels * item + resized + saved


def _warn(message):
    tqdm.write(f"warning: {one_line(message)}", file=sys.stderr)


def resize_lanczos(pixels, width, height):
    """HxW(xC) uint8 or uint16 pixels resampled to height x width with Lanczos (Pillow's; alpha-weighted
    for RGBA); 16-bit channels go through 32-bit float, so no precision is lost on the way."""
    if pixels.dtype == np.uint8:
        return np.asarray(Image.fromarray(pixels).resize((width, height), Image.LANCZOS))
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    out = np.stack([np.asarray(Image.fromarray(planes[..., i].astype(np.float32), "F").resize(
        (width, height), Image.LANCZOS)) for i in range(planes.shape[2])], axis=2)
    out = np.clip(np.round(out), 0, np.iinfo(pixels.dtype).max).astype(pixels.dtype)
    return out[..., 0] if pixels.ndim == 2 else out


class DiskFull(UserError):
    """The output's filesystem is full (or over quota): every later file would fail the same way."""


def _op_reason(e):
    """The line of a TensorFlow/LiteRT error that says what went wrong, without node names or frames."""
    lines = [ln.strip() for ln in str(getattr(e, "message", e)).splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[")
    lines = [ln for ln in lines if ln and not ln.startswith(noise)]
    reason = re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[\[.*$|\s*\[Op:[^\]]*\].*$", "", lines[-1]) if lines else ""
    return reason or type(e).__name__


@contextlib.contextmanager
def model_errors(shown, width, height, smaller):
    """Turns what running a model on one picture can raise into a one-line UserError naming it: out
    of memory (suggesting a `smaller` one of what the caller takes, e.g. "tile"), an op the picture's
    size breaks (a bicubic-skip model pads 2 pixels each side: a 1-pixel-wide picture is refused by the
    model), and the model's own UserErrors (non-finite output), which name the model but not the picture.

    Args:
        shown: the picture as the message names it, e.g. "'photos/cat.png'".
        width, height: its size in pixels.
        smaller: what shrinks the memory of one model call, in the caller's words ("use a smaller tile").
    """
    import tensorflow as tf

    try:
        yield
    except UserError as e:
        raise UserError(f"{shown}: {e}") from e
    except (MemoryError, tf.errors.ResourceExhaustedError) as e:
        raise UserError(f"out of memory on {shown} ({width}x{height}): use a smaller {smaller}") from e
    except (tf.errors.OpError, RuntimeError) as e:  # RuntimeError: LiteRT's invoke()
        raise UserError(f"{shown}: the model cannot upscale this {width}x{height} image "
                        f"({first_line(_op_reason(e))})") from e


def _model_bands(bands, shown, width, height, smaller):
    """`bands` (upscale_pixels') with model_errors around the model's work only: what the consumer
    raises (a PNG stream, a full disk) stays its own error."""
    with model_errors(shown, width, height, smaller):
        yield from bands


def upscale_file(upscaler, path, dest, tiling=Tiling(), output=Output(), warn=_warn):
    """Upscale one image file to `dest`, written atomically; returns `dest`.

    Args:
        upscaler: a loaded sr_keras.infer.inference.Upscaler.
        path: the image file.
        dest: the output file (its format is output.ext's, whatever its name says).
        tiling: a Tiling.
        output: an Output.
        warn: called with a message for metadata dropped (output_metadata); default: a warning line
            on stderr.

    Raises:
        UserError: one line naming the file when it cannot be read, the format cannot hold its
            pixels, the model fails on it (model_errors) or the output cannot be written; DiskFull,
            a UserError, when the output's filesystem is full.
    """
    pixels, alpha, info = read_image(path)
    check_format(pixels, alpha, path, output, upscaler.scale)
    s = upscaler.scale
    w, h = output.size(pixels.shape[1], pixels.shape[0], s)
    channels = (1 if pixels.ndim == 2 else 3) + (alpha is not None)
    extra = output_metadata(path, info, output, warn)
    bands = _model_bands(upscale_pixels(upscaler, pixels, alpha, tiling.tile, tiling.overlap,
                                        tiling.max_tile_mb or None, progress=True, batch=tiling.batch),
                         f"'{path}'", pixels.shape[1], pixels.shape[0], "tile, tile memory or tile batch")
    try:
        with atomic_file(dest) as tmp, open(tmp, "wb") as f:
            if output.ext == "png" and output.outscale is None:
                png = PngStream(f, w, h, channels, pixels.dtype, extra.get("icc_profile"))
                for _, band in bands:
                    png.write(band)
                png.close()
                return dest
            full = np.empty((pixels.shape[0] * s, pixels.shape[1] * s, channels), pixels.dtype)
            for row, band in bands:
                full[row:row + band.shape[0]] = band.reshape(band.shape[:2] + (channels,))
            full = full[..., 0] if channels == 1 else full
            if (w, h) != (full.shape[1], full.shape[0]):
                full = resize_lanczos(full, w, h)
            if output.ext == "png":
                png = PngStream(f, w, h, channels, pixels.dtype, extra.get("icc_profile"))
                png.write(full)
                png.close()
            else:
                Image.fromarray(full).save(f, format=FORMATS[output.ext], quality=output.quality, **extra)
    except MemoryError as e:  # the whole output held at once (check_format bounds it by the machine's memory)
        raise UserError(f"out of memory writing '{dest}' ({w}x{h}): use a smaller --outscale, or --ext png "
                        "without --outscale (written as it is made)") from e
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"cannot write '{dest}': {e.strerror}") from e
        raise UserError(f"cannot write '{dest}': {e.strerror or first_line(e, dest)}") from e
    return dest


def file_identity(path):
    """(device, inode) of the file `path` names (links followed), or None when there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def overwrite_refusal(path, dest):
    """The message refusing to write `path`'s output `dest`, which is an input."""
    return (f"'{path}': its output '{dest}' is an input file, which is never overwritten: choose another "
            "--out, --suffix or -o")


def upscale_files(upscaler, files, out_dir, tiling=Tiling(), output=Output(), out_file=None, skip_existing=False):
    """Upscale each file into out_dir (or the one file into out_file); a file that fails is named on
    stderr (one line) and skipped. A full disk stops the batch: DiskFull, counting what was written.

    Two inputs with the same stem would write the same output: the second is refused, not written.
    An input is never overwritten: a file whose output is one of `files` (compared as files, so links
    and other spellings of a path count) is refused before any picture is upscaled. With skip_existing,
    an input whose output exists is not upscaled again (outputs are written atomically, so an existing
    one is complete).

    Returns:
        (written, skipped, failed): the numbers of files written and skipped, and the files that failed.
    """
    written, skipped, failed = 0, 0, []
    claimed = {}  # output path -> the input that produced it
    dests = [out_file or os.path.join(out_dir, output.name(path, upscaler.scale)) for path in files]
    inputs = {identity for identity in map(file_identity, files) if identity}
    replaces_input = [file_identity(dest) in inputs for dest in dests]  # all known before the first picture
    bar = tqdm(files, desc=f"upscale x{upscaler.scale}", unit="img")

    def say(line):  # on a line of its own: this bar is cleared first and drawn again after, and no
        bar.clear()  # other bar is touched (tqdm.write moves to each one, a failed picture's tile bar too)
        print(one_line(line), file=sys.stderr, flush=True)
        bar.refresh()

    for path, dest, clash in zip(bar, dests, replaces_input):
        try:
            if clash:
                raise UserError(overwrite_refusal(path, dest))
            if dest in claimed:
                raise UserError(f"'{path}' would overwrite {os.path.basename(dest)}, the output of "
                                f"'{claimed[dest]}' (same file stem)")
            claimed[dest] = path
            if skip_existing and os.path.exists(dest):
                skipped += 1
                continue
            upscale_file(upscaler, path, dest, tiling, output, warn=lambda message: say(f"warning: {message}"))
            written += 1
        except DiskFull as e:
            raise DiskFull(f"{e}; stopped with {written} image(s) written") from e
        except UserError as e:
            say(f"error: {e} (skipped)")
            failed.append(path)
    return written, skipped, failed
