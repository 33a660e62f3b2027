"""The web page's work: uploads checked at once, then upscaled one at a time by one worker thread.

Every picture, from every browser, goes through one queue to one thread, the only one that calls a
model, so two pages never interleave their tiles in one model call and the model's work (its
memory, its cores) is that of one picture at a time. Pictures go through
sr_keras.infer.pictures.upscale_pixels with upscale.py's tiling (Tiling()'s defaults), so a result is
upscale.py's output pixel for pixel; the PNG is written by the same PngStream. Uploads are kept in
memory, never written to disk; a finished job keeps its result until newer results push it over
RESULT_BUDGET (the oldest go first; their page says to upscale again).
"""
import collections
import dataclasses
import io
import math
import os
import queue
import re
import secrets
import tempfile
import threading
import time
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from sr_keras.core.errors import UserError, first_line, one_line
from sr_keras.infer.loading import known_models, load_generator_config
from sr_keras.infer.metadata import output_metadata
from sr_keras.infer.pictures import FORMATS as PIL_FORMATS, MAX_SIDE, Output, Tiling, model_errors, upscale_pixels
from sr_keras.infer.tiling import tile_side

# The PSNR model and its GAN fine-tuning: when both are shipped, the page offers a slider between them.
INTERPOLATION_PAIR = ("srresnet_x4", "srgan_x4")
# Bytes of finished results (pixels and one encoding) kept for their pages; the newest always stays.
RESULT_BUDGET = 3 * 2 ** 30
FORMATS = ("png", "jpg", "webp")
_MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_BLENDS_KEPT = 3  # blended models (one per slider position) kept loaded


class Cancelled(Exception):
    """Raised between two tiles of a job whose page asked to stop it."""


class Upload(io.BytesIO):
    """An uploaded file held in memory; printed as its name, so the readers' one-line messages
    ("cannot read image 'cat.png': ...") name the picture as the user chose it."""

    def __init__(self, data, label):
        super().__init__(data)
        self.label = label

    def __str__(self):
        return self.label


def model_scales():
    """{name: scale} of the shipped models, the scale from the export's generator.json, else from a
    name ending in _x<s>; None when neither tells."""
    scales = {}
    for name, path in known_models().items():
        try:
            config = load_generator_config(path)
        except UserError:
            config = None
        found = re.search(r"_x(\d+)$", name)
        scales[name] = config.scale if config else int(found.group(1)) if found else None
    return scales


@dataclasses.dataclass(eq=False)
class Job:
    """One picture's trip through the queue; `changed` is notified on every progress or state change."""

    id: str
    name: str
    model: str
    strength: float  # the interpolation slider's alpha; None: the model alone
    pixels: np.ndarray  # dropped once the work is over
    alpha_channel: object
    metadata: dict  # {format: (what upscale.py would save with it (output_metadata), its warnings)}
    width: int
    height: int
    state: str = "queued"
    tiles: int = 0
    total: int = 1
    scale: int = 0
    error: str = ""
    result: np.ndarray = None
    encoded: tuple = None  # (format, bytes) of the last encoding asked for
    seconds: float = 0.0
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    changed: threading.Condition = dataclasses.field(default_factory=threading.Condition)

    @property
    def finished(self):
        return self.state in ("done", "error", "cancelled")

    def set(self, **fields):
        with self.changed:
            for k, v in fields.items():
                setattr(self, k, v)
            self.changed.notify_all()

    def wait(self, seconds, state, tiles):
        """Block until the job has left `state` with `tiles` done, or `seconds` pass (a long poll)."""
        with self.changed:
            self.changed.wait_for(lambda: (self.state, self.tiles) != (state, tiles), timeout=seconds)

    def result_name(self, scale, ext):
        return f"{os.path.splitext(self.name)[0] or 'picture'}_x{scale}.{ext}"


class _Counted:
    """An Upscaler that reports each tile to its job and stops between tiles once the job is cancelled."""

    def __init__(self, upscaler, job):
        self._upscaler, self._job = upscaler, job

    def __getattr__(self, name):
        return getattr(self._upscaler, name)

    def batch(self, lrs):
        if self._job.cancel.is_set():
            raise Cancelled()
        out = self._upscaler.batch(lrs)
        self._job.set(tiles=self._job.tiles + len(lrs))
        if self._job.cancel.is_set():
            raise Cancelled()
        return out


def _load(name):
    """The Upscaler of a model name, loaded once (sr_keras.load's cache); the tests replace it."""
    import sr_keras

    return sr_keras.load(name)


class Worker:
    """The queue and its one thread. `submit` runs in the request's thread: it checks the upload (a
    known model, a readable header within the size limit) and decodes it, so a bad file is answered at
    once; only the worker thread calls a model.

    Args:
        default_model: the model name a request without one gets.
        max_megapixels: the largest picture accepted, in millions of pixels.
        pair: (A, B) names for the interpolation slider, offered when both are known models.
        tiling: sr_keras.infer.pictures.Tiling; upscale.py's defaults unless changed.
    """

    def __init__(self, default_model, max_megapixels, pair=INTERPOLATION_PAIR, tiling=None):
        self.scales = model_scales()
        if default_model not in self.scales:
            raise UserError(f"'{default_model}' is not a shipped model (known names: "
                            f"{', '.join(self.scales) or 'none'})", argument="default_model")
        self.default_model, self.max_megapixels = default_model, max_megapixels
        self.pair = pair if all(name in self.scales for name in pair) else None
        self.tiling = tiling or Tiling()
        self.jobs, self.queue, self.lock = collections.OrderedDict(), queue.Queue(), threading.Lock()
        self._blends = collections.OrderedDict()  # alpha -> Upscaler of the blended pair
        self._thread = None

    def start(self, before=None):
        """Start the worker thread: it calls `before` (e.g. hiding TensorFlow's banner), loads the
        default model so the first picture does not wait for it, then takes jobs in turn."""
        self._thread = threading.Thread(target=self._run, args=(before,), name="sr-web-worker", daemon=True)
        self._thread.start()

    def stop(self):
        self.queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def models(self):
        """What the page's model chooser shows."""
        pair = {"a": self.pair[0], "b": self.pair[1]} if self.pair else None
        return {"models": [{"name": n, "scale": s} for n, s in self.scales.items()], "default": self.default_model,
                "interpolation": pair, "max_megapixels": self.max_megapixels}

    def submit(self, data, name, model=None, strength=None):
        """Check an upload and queue it; returns the Job. Raises UserError (one line naming the file,
        the model or the limit) for what is refused before any work."""
        model = model or self.default_model
        if model not in self.scales:
            raise UserError(f"model '{model}' is not one of this server's models ({', '.join(self.scales)})")
        if strength is not None:
            if self.pair is None or model not in self.pair:
                raise UserError(f"model '{model}' has no interpolation strength; only "
                                f"{' and '.join(INTERPOLATION_PAIR)} together have one")
            if not 0.0 <= strength <= 1.0:
                raise UserError(f"interpolation strength {strength:g} is outside [0, 1]")
            model, strength = self.pair[0], round(strength, 2)
        name = one_line(os.path.basename(name or "picture")) or "picture"
        width, height = _header_size(data, name)
        if width * height > self.max_megapixels * 1e6:
            raise UserError(f"'{name}' is {width}x{height}, {width * height / 1e6:.3g} megapixels: over this "
                            f"server's limit of {self.max_megapixels:g} (--max-megapixels)")
        from sr_keras.core.imageio import read_image

        pixels, alpha_channel, info = read_image(Upload(data, name))
        metadata = {}
        for ext in FORMATS:  # now, while the upload is at hand: only the pixels are kept
            notes = []
            metadata[ext] = (output_metadata(Upload(data, name), info, Output(ext=ext), notes.append), notes)
        job = Job(secrets.token_urlsafe(12), name, model, strength, pixels, alpha_channel, metadata, width, height)
        with self.lock:
            self.jobs[job.id] = job
        self.queue.put(job)
        return job

    def get(self, job_id):
        with self.lock:
            return self.jobs.get(job_id)

    def cancel(self, job):
        """Stop a job: a queued one never starts, a running one stops after its current tile."""
        with job.changed:  # the worker starts a job under the same lock: never both
            job.cancel.set()
            if job.state == "queued":
                job.state = "cancelled"
            job.changed.notify_all()

    def status(self, job):
        """The job as the page polls it: state, tiles done of total, place in the queue, the message."""
        with self.lock:
            jobs = list(self.jobs.values())
        waiting = [j for j in jobs if j.state == "queued"]
        ahead = waiting.index(job) + any(j.state == "running" for j in jobs) if job in waiting else 0
        out = {"id": job.id, "name": job.name, "state": job.state, "tiles": job.tiles, "total": job.total,
               "ahead": ahead, "error": job.error, "seconds": round(job.seconds, 2), "width": job.width,
               "height": job.height}
        result = job.result
        if job.state == "done":
            out.update(kept=result is not None, scale=job.scale)
        return out

    def encoded(self, job, ext, quality=95):
        """(bytes, mime type, file name, warnings) of a finished job's result in format `ext`, with the
        metadata upscale.py would save (warnings: what was dropped); the last encoding is kept, so the
        page's picture and its PNG download are encoded once. UserError when the format cannot hold the
        picture (16-bit in JPEG/WebP, alpha in JPEG) or the result was dropped."""

        if ext not in FORMATS:
            raise UserError(f"format '{ext}' is not one of {', '.join(FORMATS)}")
        result = job.result
        if result is None:
            raise UserError(f"the result of '{job.name}' is no longer kept: upscale it again")
        if result.dtype == np.uint16 and ext != "png":
            raise UserError(f"'{job.name}' is 16-bit and {PIL_FORMATS[ext]} holds 8 bits: download it as PNG")
        if job.alpha_channel is not None and ext == "jpg":
            raise UserError(f"'{job.name}' has an alpha channel, which JPEG cannot hold: download it as PNG or WebP")
        if max(result.shape[:2]) > MAX_SIDE[ext]:
            raise UserError(f"'{job.name}' became {result.shape[1]}x{result.shape[0]}, over "
                            f"{PIL_FORMATS[ext]}'s largest side of {MAX_SIDE[ext]} pixels: download it as PNG")
        cached = job.encoded
        if cached is None or cached[0] != ext:
            cached = (ext, _encode(result, ext, quality, job.metadata[ext][0]))
            job.encoded = cached
            self._trim()
        return cached[1], _MIME[ext], job.result_name(job.scale, ext), job.metadata[ext][1]

    def _run(self, before):
        if before is not None:
            before()
        try:
            _load(self.default_model)
        except UserError as e:  # the page reports it on the first picture that needs the model
            print(f"error: {one_line(e)}", flush=True)
        while True:
            job = self.queue.get()
            if job is None:
                return
            with job.changed:
                started = not job.cancel.is_set()
                job.state = "running" if started else job.state
                job.changed.notify_all()
            if started:
                self._work(job)
            job.set(pixels=None)
            self._trim()

    def _upscaler(self, job):
        if job.strength is None or job.strength == 0.0:
            return _load(job.model)
        if job.strength == 1.0:
            return _load(self.pair[1])
        if job.strength not in self._blends:
            self._blends[job.strength] = _blend(*self.pair, job.strength)
            while len(self._blends) > _BLENDS_KEPT:
                self._blends.popitem(last=False)
        self._blends.move_to_end(job.strength)
        return self._blends[job.strength]

    def _work(self, job):

        start = time.perf_counter()
        shown = f"'{job.name}'"
        try:
            with model_errors(shown, job.width, job.height, "picture (or --max-megapixels)"):
                upscaler = self._upscaler(job)
                t = self.tiling
                side = tile_side(upscaler, t.tile, t.overlap, t.max_tile_mb or None)
                h, w = job.pixels.shape[:2]
                job.set(total=math.ceil(h / side) * math.ceil(w / side) if side else 1)
                counted = _Counted(upscaler, job)
                channels = job.pixels.shape[2:] if job.alpha_channel is None else (
                    (job.pixels.shape[2] if job.pixels.ndim == 3 else 1) + 1,)
                s = upscaler.scale
                out = np.empty((h * s, w * s) + channels, job.pixels.dtype)
                for row, band in upscale_pixels(counted, job.pixels, job.alpha_channel, t.tile, t.overlap,
                                                t.max_tile_mb or None, batch=t.batch):
                    out[row:row + band.shape[0]] = band
            job.set(state="done", result=out, scale=s, seconds=time.perf_counter() - start)
            print(f"upscaled {shown} {w}x{h} -> {w * s}x{h * s} with {_shown_model(job)} in "
                  f"{job.seconds:.1f} s", flush=True)
        except Cancelled:
            job.set(state="cancelled", seconds=time.perf_counter() - start)
        except UserError as e:
            job.set(state="error", error=one_line(e), seconds=time.perf_counter() - start)
        except Exception as e:  # noqa: BLE001  the server keeps serving: the page shows the one line
            job.set(state="error", error=f"{shown}: {type(e).__name__}: {one_line(first_line(e))}")

    def _trim(self):
        """Drop the oldest results beyond RESULT_BUDGET; the newest stays whatever its size."""
        with self.lock:
            done = [j for j in self.jobs.values() if j.result is not None]
        used = sum(_held(j) for j in done)
        for job in done[:-1]:
            if used <= RESULT_BUDGET:
                break
            used -= _held(job)
            job.set(result=None, encoded=None)


def _held(job):
    return (job.result.nbytes if job.result is not None else 0) + (len(job.encoded[1]) if job.encoded else 0)


def _shown_model(job):
    return job.model if job.strength is None else f"{job.model} blended at {job.strength:g}"


def _header_size(data, name):
    """(width, height) from the upload's header, decoding nothing: not an image, a decompression bomb
    (Pillow's limit) or an empty file is a UserError naming it."""
    if not data:
        raise UserError(f"'{name}' is empty: choose a picture file")
    from sr_keras.core.imageio import RASTER_FORMATS

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=RASTER_FORMATS) as im:
                return im.width, im.height
    except UnidentifiedImageError:
        raise UserError(f"cannot read image '{name}': not an image, or its header is corrupt (formats read: "
                        f"{', '.join(RASTER_FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"cannot read image '{name}': its header claims more pixels than Pillow's "
                        "decompression-bomb limit") from None
    except Exception as e:  # noqa: BLE001  Pillow raises many types for broken headers
        raise UserError(f"cannot read image '{name}': {first_line(e)}") from None


def _blend(name_a, name_b, alpha):
    """The Upscaler of (1 - alpha) * A + alpha * B (sr_keras.exports.interpolation), as `interpolate.py A B
    --alpha` then `upscale.py` would run it: the blended model goes through a .keras file in a
    temporary folder, removed once loaded."""
    from sr_keras.exports.interpolation import check_same_architecture, interpolate
    from sr_keras.infer.inference import load_upscaler
    from sr_keras.infer.loading import load_keras_model

    a, b = load_keras_model(name_a), load_keras_model(name_b)
    check_same_architecture(a, b, name_a, name_b)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        interpolate(a, b, alpha).save(path)
        return load_upscaler(path)


def _encode(result, ext, quality, extra):
    """A result's bytes as upscale.py writes them: PNG by its PngStream, JPEG/WebP by Pillow, with
    `extra` (output_metadata's ICC profile and EXIF)."""
    from sr_keras.core.imageio import PngStream

    buf = io.BytesIO()
    channels = 1 if result.ndim == 2 else result.shape[2]
    pixels = result[..., 0] if channels == 1 and result.ndim == 3 else result
    if ext == "png":
        png = PngStream(buf, result.shape[1], result.shape[0], channels, result.dtype, extra.get("icc_profile"))
        png.write(pixels)
        png.close()
    else:
        Image.fromarray(pixels).save(buf, format=PIL_FORMATS[ext], quality=quality, **extra)
    return buf.getvalue()
