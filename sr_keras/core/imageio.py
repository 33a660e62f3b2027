"""Image files in and out: the one extension list, the one reader, atomic writes, a streaming PNG writer.

Reading. `read_image` keeps what upscaling needs to give a picture back as it came: grey stays grey,
alpha is returned separately, 16-bit grey stays uint16 and the ICC profile is kept. `read_rgb` gives
uint8 RGB for scoring and training and follows THE 16-BIT RULE: a 16-bit sample v becomes the 8-bit
level round(v / 257) (nearest level, so 65535 -> 255 and 32896 -> 128; never a clip at 255 or the
high byte alone), for grey and for 48/64-bit colour PNGs alike. Both readers apply the EXIF
orientation, so a photograph is read upright; alpha is dropped by `read_rgb` (not composited).

Refused, with one line naming the file (a UserError), by every reader and by `check_header`:
- files that are not images of RASTER_FORMATS, or whose header or data is damaged. Pillow picks a
  decoder from the content, not the name: the list keeps an EPS file named .png away from Ghostscript
  (and every other decoder of Pillow's from files that were not meant for it);
- DECOMPRESSION BOMBS: a header claiming more than PIL.Image.MAX_IMAGE_PIXELS pixels (Pillow's
  limit, 89,478,485 = about 9459x9459; Pillow itself only warns up to twice that, here the warning
  is an error too). A program that means to read larger pictures raises that limit (None: none);
- FLOATING-POINT images (Pillow mode "F", float RGB TIFFs): their range has no one convention
  ([0, 1], [0, 255], HDR), and reading them as 8-bit would score or upscale a black picture;
  save them as 8- or 16-bit integer images;
- images with a zero side.

Writing. `atomic_file` hands out a temporary path in the destination's folder; the file is fsynced
and renamed over the destination only when the block succeeds, so a reader (or a crash) never sees a
half-written file. A temporary name starts with "." and `list_images` skips such names. The temporary
file is created exclusively (O_EXCL): a name already taken, by a link planted there or a stale file,
is never opened, written or removed; another name is used.
"""
import contextlib
import os
import re
import secrets
import struct
import warnings
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sr_keras.core.errors import UserError, first_line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
# the only Pillow decoders any reader here uses: those of IMAGE_EXTENSIONS, whatever a file's name
RASTER_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "PPM")

# EXIF orientation tag -> the transpose that makes the picture upright (as ImageOps.exif_transpose)
_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
EXIF_ORIENTATION = 0x0112


def _natural_key(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def is_image_name(name):
    """True for a visible file name with one of IMAGE_EXTENSIONS (any case)."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder):
    """Names (not paths) of the image files in `folder`, in natural order ("2.png" before "10.png").

    A file counts when its extension is in IMAGE_EXTENSIONS (any case). Hidden names (".x.png":
    temporary files of `atomic_file`, macOS "._" resource forks) are skipped. Subfolders are not read.
    """
    return sorted((n for n in os.listdir(folder) if is_image_name(n) and os.path.isfile(os.path.join(folder, n))),
                  key=_natural_key)


def _pixels_claimed(e):
    """The pixel count in Pillow's decompression-bomb message, or None."""
    found = re.search(r"\((\d+) pixels\)", str(e))
    return int(found.group(1)) if found else None


def _bomb(path, pixels):
    claimed = f"{pixels:,} pixels" if pixels else "more pixels"
    return UserError(f"cannot read image '{path}': its header claims {claimed}, over the limit of "
                     f"{Image.MAX_IMAGE_PIXELS:,} (PIL.Image.MAX_IMAGE_PIXELS) that guards against "
                     "decompression bombs")


_TIFF_SAMPLE_FORMAT, _TIFF_FLOAT = 339, 3


def _float_tiff(path):
    """True when `path` is a TIFF whose first image stores floating-point samples (SampleFormat 3)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            order = {b"II*\0": "<", b"MM\0*": ">"}.get(head[:4])
            if order is None:
                return False
            f.seek(struct.unpack(order + "I", head[4:])[0])
            (count,) = struct.unpack(order + "H", f.read(2))
            entries = f.read(12 * min(count, 4096))
            for i in range(0, len(entries) - 11, 12):
                tag, kind, n = struct.unpack(order + "HHI", entries[i:i + 8])
                if tag == _TIFF_SAMPLE_FORMAT and kind == 3:  # SHORTs, one per sample: the first one's
                    value = entries[i + 8:i + 10]
                    if n > 2:  # over 4 bytes: stored at the offset held here
                        f.seek(struct.unpack(order + "I", entries[i + 8:i + 12])[0])
                        value = f.read(2)
                    return struct.unpack(order + "H", value)[0] == _TIFF_FLOAT
    except (OSError, struct.error):
        pass
    return False


def _float_refusal(path):
    return UserError(f"cannot read image '{path}': floating-point pixels are not supported (their range "
                     "has no one convention); save it as an 8- or 16-bit integer image")


def _read_error(path, e):
    """The one-line UserError for an exception Pillow raised on `path`."""
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _bomb(path, _pixels_claimed(e))
    if isinstance(e, UnidentifiedImageError):
        if _float_tiff(path):
            return _float_refusal(path)
        return UserError(f"cannot read image '{path}': not an image, or its header is corrupt "
                         f"(formats read: {', '.join(RASTER_FORMATS)})")
    if isinstance(e, MemoryError):
        return UserError(f"cannot read image '{path}': not enough memory to decode it")
    return UserError(f"cannot read image '{path}': {first_line(e, path)}")


@contextlib.contextmanager
def open_image(path):
    """Image.open with the checks of every reader (module docstring): yields the open Pillow image;
    any failure, in the block too (decoding), is a UserError naming `path`.

    Args:
        path: an image file.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=RASTER_FORMATS)
    except Exception as e:  # PIL raises many types for broken files; each is a clean per-file error
        raise _read_error(path, e) from None
    with im:
        # again after the open: warning filters are process-wide, another thread may have reset them
        if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
            raise _bomb(path, im.width * im.height)
        if im.mode == "F":
            raise _float_refusal(path)
        if im.width < 1 or im.height < 1:
            raise UserError(f"cannot read image '{path}': its size is {im.width}x{im.height}")
        try:
            yield im
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001  decoding errors of the block
            raise _read_error(path, e) from None


def check_header(path):
    """(width, height, mode) of an image file from its header, without decoding the pixels; the
    refusals of the module docstring (not an image, decompression bomb, floating point, zero size)
    are a UserError naming `path`. EXIF orientation is not applied to the size.

    Args:
        path: an image file.
    """
    with open_image(path) as im:
        return im.width, im.height, im.mode


def read_image(path):
    """Pixels of an image file as upscaling keeps them, with the EXIF orientation applied.

    Args:
        path: an image file.

    Returns:
        (pixels, alpha, info): pixels HxWx3 or HxW uint8, or HxW uint16 for 16-bit grey; alpha a
        Pillow "L" image or None; info {"icc_profile": bytes} when the file has one.
    """
    with open_image(path) as im:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)  # in place: no copy of an upright picture
    info = {k: im.info[k] for k in ("icc_profile",) if k in im.info}
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode.startswith("I"):  # 16-bit grey (I;16*) or Pillow's 32-bit "I" view of one
        arr = np.asarray(im)
        if arr.min() < 0 or arr.max() > 65535:
            raise UserError(f"cannot read image '{path}': {mode} values outside 0..65535")
        return arr.astype(np.uint16), None, info
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    alpha = im.getchannel("A") if im.mode in ("LA", "RGBA") else None
    target = "L" if im.mode in ("L", "LA") else "RGB"
    return np.asarray(im if im.mode == target else im.convert(target)), alpha, info


def uint16_to_uint8(pixels):
    """THE 16-BIT RULE: uint16 levels v -> uint8 round(v / 257); uint8 is returned unchanged."""
    if pixels.dtype == np.uint8:
        return pixels
    # (v + 128) // 257 == round(v / 257) for integers: v / 257 is never exactly half-way
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _deep_colour_png(path):
    """(True, EXIF orientation) for a 16-bit-per-channel colour PNG, which Pillow reads as 8-bit
    by keeping the high byte only; (False, None) otherwise, unreadable files included."""
    try:
        with open_image(path) as im:
            deep = im.format == "PNG" and im.mode in ("RGB", "RGBA") and bool(im.tile) \
                and ";16" in str(im.tile[0][3])
            return deep, (im.getexif().get(EXIF_ORIENTATION) if deep else None)
    except UserError:  # read_image reports the problem with one line
        return False, None


def read_rgb(path):
    """uint8 HxWx3 RGB pixels of an image file for scoring and training (THE 16-BIT RULE above).

    Grey is repeated to three channels, palettes are expanded, alpha is dropped; the EXIF orientation
    is applied. An unreadable file raises UserError naming it.
    """
    deep, orientation = _deep_colour_png(path)
    if deep:
        import tensorflow as tf  # the one decoder here that keeps 16 bits per colour channel

        try:
            pixels = tf.io.decode_png(tf.io.read_file(os.fspath(path)), channels=3, dtype=tf.uint16).numpy()
        except (tf.errors.OpError, OSError) as e:
            raise UserError(f"cannot read image '{path}': {first_line(getattr(e, 'message', e), path)}") from e
        pixels = uint16_to_uint8(pixels)
        if orientation in _ORIENTATION:
            pixels = np.asarray(Image.fromarray(pixels).transpose(_ORIENTATION[orientation]))
        return pixels
    pixels, _, _ = read_image(path)
    pixels = uint16_to_uint8(pixels)
    return np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels


def _fsync_folder(folder):
    """Make a rename in `folder` durable; some filesystems refuse to open folders, then it is skipped."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _create_temporary(folder, name):
    """Create an empty temporary file for `name` in `folder` exclusively and return its path: first
    ".tmp-<pid>-<name>" (the name sr_keras.train.runs recognises as a killed run's), then random names."""
    prefix = f".tmp-{os.getpid()}-"
    for tag in ("", *(secrets.token_hex(6) + "-" for _ in range(100))):
        tmp = os.path.join(folder, prefix + tag + name)
        try:
            os.close(os.open(tmp, _EXCLUSIVE, 0o666))  # 0o666 less the umask, as open() gives
            return tmp
        except FileExistsError:  # a link or a file is there: not ours, never followed or replaced
            continue
    raise FileExistsError(f"no free temporary name for '{name}' in '{folder or '.'}'")


@contextlib.contextmanager
def atomic_file(path):
    """Yields the path of a new, empty temporary file beside `path`; on success it is fsynced and
    renamed to `path`.

    The temporary file is created exclusively (O_EXCL), so a planted link is never followed. Its name
    keeps the file name's suffix (".tmp-<pid>-model.weights.h5"), for writers that choose the format by
    suffix. On an exception the temporary file is removed and `path` is untouched.

    Args:
        path: the destination file.
    """
    folder, name = os.path.split(os.fspath(path))
    tmp = _create_temporary(folder, name)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_folder(folder)


def atomic_write_bytes(path, data):
    """Write `data` to `path` through atomic_file."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path, text):
    """Write `text` (UTF-8, line endings as given) to `path` through atomic_file."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


class PngStream:
    """A PNG written band by band, top to bottom (adaptive row filters, zlib): the upscaled picture
    goes to disk as tiles come out of the model, so no full-size copy of it is ever held."""

    _COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # grey, grey+alpha, RGB, RGBA
    _CHUNK = 1 << 20

    def __init__(self, f, width, height, channels, dtype, icc_profile=None):
        self.f, self.depth = f, 16 if dtype == np.uint16 else 8
        self.bpp = channels * self.depth // 8
        self.prev = np.zeros(width * self.bpp, np.uint8)
        self.z = zlib.compressobj(6)
        self.pending = b""
        f.write(b"\x89PNG\r\n\x1a\n")
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, self.depth, self._COLOUR_TYPE[channels], 0, 0, 0))
        if icc_profile:
            self._chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile))

    def _chunk(self, kind, data):
        self.f.write(struct.pack(">I", len(data)) + kind + data
                     + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    def _idat(self, data, final=False):
        self.pending += data
        while len(self.pending) >= self._CHUNK or (final and self.pending):
            self._chunk(b"IDAT", self.pending[:self._CHUNK])
            self.pending = self.pending[self._CHUNK:]

    def write(self, rows):
        """rows: n x W (x C) uint8 or uint16, the next rows of the picture."""
        raw = np.ascontiguousarray(rows.astype(">u2") if self.depth == 16 else rows)
        raw = raw.view(np.uint8).reshape(rows.shape[0], -1)
        for i in range(0, raw.shape[0], 16):  # bounded temporaries
            self._idat(self.z.compress(self._filter(raw[i:i + 16]).tobytes()))

    def _filter(self, x):
        """Each row gets the PNG filter (None, Sub, Up, Average, Paeth) with the smallest sum of
        absolute signed residuals, libpng's heuristic."""
        x = x.astype(np.int16)
        up = np.vstack([self.prev[None].astype(np.int16), x[:-1]])
        self.prev = x[-1].astype(np.uint8)
        a = np.zeros_like(x)
        a[:, self.bpp:] = x[:, :-self.bpp]
        c = np.zeros_like(x)
        c[:, self.bpp:] = up[:, :-self.bpp]
        p = a + up - c
        pa, pb, pc = np.abs(p - a), np.abs(p - up), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, up, c))
        res = np.stack([x, x - a, x - up, x - (a + up) // 2, x - paeth]) & 0xFF  # filter types 0..4
        cost = np.abs(res.astype(np.uint8).view(np.int8).astype(np.int32)).sum(axis=2)
        best = cost.argmin(axis=0)
        out = np.empty((x.shape[0], x.shape[1] + 1), np.uint8)
        out[:, 0] = best
        out[:, 1:] = res[best, np.arange(x.shape[0])]
        return out

    def close(self):
        self._idat(self.z.flush(), final=True)
        self._chunk(b"IEND", b"")
