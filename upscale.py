#!/usr/bin/env python3
"""Upscale pictures with a trained model: files or folders in, <stem>_x<s>.png out.

Large images are processed tile by tile and written to the PNG as the tiles come out, so memory
stays bounded (one tile's activations and one row of tiles) whatever the image size. Grey images come
back grey, RGBA keeps its alpha (upscaled with bicubic), 16-bit grey PNGs come back 16-bit. Files that
cannot be read are named and skipped; the exit status is then non-zero.
"""
import argparse
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from sr_keras.errors import UserError, cli_entry, first_line

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True,
                   help="SavedModel folder written by --export, or a .keras file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--tile", type=int, default=256,
                   help="tile side in LR pixels; 0 = the whole image in one pass")
    p.add_argument("--tile-overlap", type=int, default=16,
                   help="LR pixels of context around each tile (raised to the model's receptive radius when larger)")
    p.add_argument("--tile-memory", type=int, default=768, metavar="MB",
                   help="largest activation memory of one tile; tiles shrink below --tile to stay within it (0 = no limit)")
    args = p.parse_args(argv)
    if args.tile < 0:
        p.error(f"--tile must be >= 0, got {args.tile}")
    if args.tile_overlap < 0:
        p.error(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
    if args.tile_memory < 0:
        p.error(f"--tile-memory must be >= 0, got {args.tile_memory}")
    return args


def collect_inputs(inputs):
    """Expand folders (their image files, sorted); returns (files, problems): problems are
    (input as given, message) for inputs that yield no image."""
    files, problems = [], []
    for given in inputs:
        if os.path.isdir(given):
            found = sorted(os.path.join(given, n) for n in os.listdir(given)
                           if n.lower().endswith(IMAGE_EXTS) and os.path.isfile(os.path.join(given, n)))
            if not found:
                problems.append((given, f"no image files ({', '.join(IMAGE_EXTS)}) in folder '{given}'"))
            files += found
        elif os.path.isfile(given):
            files.append(given)
        else:
            problems.append((given, f"input '{given}' not found"))
    return files, problems


def read_image(path):
    """-> (pixels, alpha or None, info): pixels HxWx3 / HxW uint8 or HxW uint16; alpha a PIL 'L' image."""
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
    except UnidentifiedImageError as e:
        raise UserError(f"cannot read image '{path}': not an image, or its header is corrupt") from e
    except Exception as e:  # PIL raises many types for broken files; each is a clean per-file error
        raise UserError(f"cannot read image '{path}': {first_line(e)}") from e
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
        if mode == "F":
            raise UserError(f"cannot read image '{path}': floating-point images are not supported")
        im = im.convert("RGB")
    alpha = im.getchannel("A") if im.mode in ("LA", "RGBA") else None
    base = im.convert("L" if im.mode in ("L", "LA") else "RGB")
    return np.asarray(base), alpha, info


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


def output_name(path, scale):
    """'photos/cat.jpg', 4 -> 'cat_x4.png'."""
    return f"{os.path.splitext(os.path.basename(path))[0]}_x{scale}.png"


def upscale_file(upscaler, path, out_dir, tile, overlap, max_tile_mb):
    from sr_keras.inference import upscale_bands

    pixels, alpha, info = read_image(path)
    s = upscaler.scale
    h, w = pixels.shape[0] * s, pixels.shape[1] * s
    if alpha is not None:  # bicubic, as the issue asks; the model only sees colour
        alpha = np.asarray(alpha.resize((w, h), Image.BICUBIC))
        if pixels.dtype == np.uint16:
            alpha = alpha.astype(np.uint16) * 257
    channels = (1 if pixels.ndim == 2 else 3) + (alpha is not None)
    name = output_name(path, s)
    dest = os.path.join(out_dir, name)
    tmp = os.path.join(out_dir, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            png = PngStream(f, w, h, channels, pixels.dtype, info.get("icc_profile"))
            for row, band in upscale_bands(upscaler, pixels, tile, overlap, max_tile_mb, progress=True):
                if alpha is not None:
                    a = alpha[row:row + band.shape[0], :, None]
                    band = np.concatenate([band if band.ndim == 3 else band[..., None], a], axis=2)
                png.write(band)
            png.close()
        os.replace(tmp, dest)
    except OSError as e:
        raise UserError(f"cannot write '{dest}': {e.strerror or e}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    files, problems = collect_inputs(args.inputs)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out '{args.out}' exists and is not a folder: give a folder path")
    if not files:  # one line naming every input that gave nothing
        raise UserError(f"nothing to upscale: {'; '.join(msg for _, msg in problems)}; "
                        "give image files or folders that hold images")
    for _, msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out '{args.out}': {e.strerror or e}") from e

    import tensorflow as tf  # loaded only once the arguments are sound

    from sr_keras.inference import load_upscaler

    upscaler = load_upscaler(args.model)
    failed = [f"'{given}'" for given, _ in problems]
    written = 0
    claimed = {}  # output name -> the input that produced it
    for path in tqdm(files, desc=f"upscale x{upscaler.scale}", unit="img"):
        try:
            name = output_name(path, upscaler.scale)
            if name in claimed:
                raise UserError(f"'{path}' would overwrite {name}, the output of '{claimed[name]}' (same file stem)")
            claimed[name] = path
            try:
                upscale_file(upscaler, path, args.out, args.tile, args.tile_overlap, args.tile_memory)
            except (MemoryError, tf.errors.ResourceExhaustedError) as e:
                raise UserError(f"out of memory on '{path}': use a smaller --tile or --tile-memory") from e
            written += 1
        except UserError as e:
            tqdm.write(f"error: {e} (skipped)", file=sys.stderr)
            failed.append(f"'{path}'")
    print(f"wrote {written} image(s) to {args.out}")
    if failed:
        shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise UserError(f"{len(failed)} input(s) failed: {shown} (reasons above); the other {written} were written")


if __name__ == "__main__":
    main()
