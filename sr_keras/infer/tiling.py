"""Run an upscaler on images of any size, tile by tile, seamlessly and in bounded memory.

`upscale_image(upscaler, img)` splits the LR image into tiles, gives each tile a margin of real
neighbouring pixels, and writes only the tile's core into a preallocated output of the input's dtype
(`upscale_bands` yields it one row of tiles at a time, for streaming writers). The margin is at least
the model's receptive-field radius (sr_keras.infer.reach), so every core pixel sees exactly what it would in
a whole-image pass and tiles are seamless; memory is the output plus one tile's activations, whatever
the image size.

By default (`tile=None`, `max_tile_mb="auto"`) a tile is as large as an activation budget allows, and
that budget is a share of the memory left (sr_keras.infer.memory.auto_tile_mb): a picture that fits runs in
one pass, which on a CPU is fastest (every tile repeats its margin's work); a larger one is cut into
as few tiles as the budget allows.
"""
import math

import numpy as np
from tqdm import tqdm

from sr_keras.infer.memory import ACT_OVERHEAD, auto_tile_mb, check_call_memory

# ITU-R BT.601 luma, as PIL's convert("L"): how a grey input comes back to one channel.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
# The tile side of an upscaler whose activation size is unknown (a SavedModel, a TFLite model) when
# none is given.
DEFAULT_TILE = 256
AUTO = "auto"


def _splits(n, tile):
    """Even tile edges along one axis: ceil(n / tile) tiles, none larger than `tile`."""
    k = max(1, math.ceil(n / tile))
    return [n * i // k for i in range(k + 1)]


def _windows(n, tile, margin):
    """(window length, [(core start, core end, window start)]) along one axis.

    The cores are _splits(n, tile); every window has the same length (the largest core plus a margin
    each side, at most n) and is shifted to lie inside the image, so each core keeps at least `margin`
    pixels of real context wherever the image has them, and every tile of a picture has one shape:
    tiles can be batched, and a fixed-shape runtime (TFLite) never re-allocates within a picture.
    """
    edges = _splits(n, tile) if tile and tile > 0 else [0, n]
    cores = list(zip(edges[:-1], edges[1:]))
    length = min(n, max(b - a for a, b in cores) + 2 * margin)
    return length, [(a, b, min(max(0, a - margin), n - length)) for a, b in cores]


def tile_side(upscaler, tile, overlap, max_tile_mb, size=None):
    """The core tile side actually used (0 = one pass).

    Args:
        upscaler: the loaded model (its `radius`, `act_bytes`, `whole_image`).
        tile: the largest core side in LR pixels; None: as large as the budget allows; 0: one pass,
            as asked.
        overlap: the margin asked for (raised to the model's radius).
        max_tile_mb: MB one tile's activations (margins included) may take; "auto": a share of the
            memory left (sr_keras.infer.memory.auto_tile_mb); None or 0: no limit.
        size: (height, width) of the picture, when known: with `tile` None, a picture whose one pass
            fits the budget runs in one pass (a square tile would cut a wide one that fits).

    Returns:
        int: `tile`, or smaller when one tile would exceed the budget; 0 for an upscaler whose seamless
        margin is unknown (`whole_image`); DEFAULT_TILE (or `tile`) when its activation size is unknown.
    """
    if upscaler.whole_image or tile == 0:
        return 0
    budget = auto_tile_mb() if max_tile_mb == AUTO else max_tile_mb
    if not upscaler.act_bytes:
        return tile or DEFAULT_TILE
    if not budget:
        return tile or 0
    per_pixel = ACT_OVERHEAD * upscaler.act_bytes
    if not tile and size is not None and per_pixel * size[0] * size[1] <= budget * 2 ** 20:
        return 0
    margin = max(int(overlap), upscaler.radius or 0)
    fits = max(16, int(math.sqrt(budget * 2 ** 20 / per_pixel)) - 2 * margin)
    return min(tile, fits) if tile else fits


def upscale_bands(upscaler, img, tile=None, overlap=16, max_tile_mb=AUTO, progress=False, batch=1):
    """Yield (row, band): the upscaled image one row of tiles at a time, top to bottom, so a caller
    can write it out without ever holding the whole output. Arguments as upscale_image."""
    if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"upscale takes an HxW or HxWx3 uint8/uint16 image. "
                         f"Received: shape={img.shape}, dtype={img.dtype}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1. Received: batch={batch}")
    s = upscaler.scale
    h, w = img.shape[:2]
    margin = max(int(overlap), upscaler.radius or 0)
    tile = tile_side(upscaler, tile, overlap, max_tile_mb, (h, w))
    (wy, rows), (wx, cols) = _windows(h, tile, margin), _windows(w, tile, margin)
    top = np.iinfo(img.dtype).max
    jobs = [(r, c) for r in range(len(rows)) for c in range(len(cols))]  # raster order: rows finish in turn
    bar = tqdm(total=len(jobs), desc="tiles", unit="tile", leave=False, delay=2, disable=not progress)
    band, left = None, 0
    for i in range(0, len(jobs), batch):
        chunk = jobs[i:i + batch]
        check_call_memory(upscaler, len(chunk), wy, wx)
        parts = np.stack([img[rows[r][2]:rows[r][2] + wy, cols[c][2]:cols[c][2] + wx] for r, c in chunk])
        if img.ndim == 2:
            parts = np.repeat(parts[..., None], 3, axis=3)
        for (r, c), sr in zip(chunk, upscaler.batch(parts)):
            (y0, y1, ya), (x0, x1, xa) = rows[r], cols[c]
            if band is None:
                band, left = np.empty(((y1 - y0) * s, w * s) + img.shape[2:], img.dtype), len(cols)
            core = sr[(y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
            if img.ndim == 2:
                core = np.clip(np.round(core.astype(np.float32) @ _LUMA), 0, top).astype(img.dtype)
            band[:, x0 * s:x1 * s] = core
            bar.update()
            left -= 1
            if not left:
                yield y0 * s, band
                band = None
    bar.close()


def upscale_image(upscaler, img, tile=None, overlap=16, max_tile_mb=AUTO, progress=False, batch=1):
    """Upscale one image (HxW grey or HxWx3 RGB, uint8 or uint16) -> same layout and dtype, s times larger.

    `tile` is the largest core tile side in LR pixels (0 = whole image in one pass, None = as large as
    the budget allows); tiles shrink so that one tile's activations stay under `max_tile_mb` ("auto":
    a share of the memory left, sr_keras.infer.memory.auto_tile_mb; None: no limit). See tile_side.
    `overlap` is the margin of neighbouring pixels given to each tile, raised to the model's receptive
    radius when that is larger so that tiled and whole-image results agree. Grey images run through the
    model as replicated RGB and come back as BT.601 luma. Tiles are written straight into the one uint8/uint16
    output array; no float copy of the full-size image is ever made. `batch` tiles (all of one shape)
    go through the model per call: the same pixels as one per call, faster on a GPU, `batch` times the
    activation memory.
    """
    s = upscaler.scale
    out = np.empty((img.shape[0] * s, img.shape[1] * s) + img.shape[2:], img.dtype)
    for row, band in upscale_bands(upscaler, img, tile, overlap, max_tile_mb, progress, batch):
        out[row:row + band.shape[0]] = band
    return out
