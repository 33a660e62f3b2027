"""Scoring SR models against bicubic (PSNR/SSIM on Y, the report's Table 2; NIQE) and the result files.

Pairs come from a folder of HR photographs (LR given by file stem or made with MATLAB-style bicubic)
or from a DIV2K track (sr_keras.data.loaders), optionally degraded (`Options.degrade`: noise and JPEG added
to each LR, sr_keras.data.degradations.EvalDegradation). Each image is scored against its clean HR for the
bicubic baseline and for every model by sr_keras.evaluation.scoring.score_pair (the scorer of the training
scripts' table, `bicubic_vs_model`, and of tools/model_card.py too), and with NIQE the HR image gets its own
row (sr_keras.evaluation.results: `Scores` keeps the per-image values and the means per (model, track),
`write_results` writes results.json/.csv/.md and per_image.csv). The metric conventions are
sr_keras.evaluation.metrics' and sr_keras.evaluation.perception's; the perception-distortion figure is
sr_keras.evaluation.figures'.

What headers tell (unreadable, bomb, floating point, too small to score, LR/HR not a pair) fails
before any model loads. Later failures are per image: an image a model cannot take (non-finite
output, out of memory, too small for its borders) is named in one line and left out of EVERY row (the
means stay over one set of images); the rest is scored. A failed write (a full disk) stops once, in one
line; atomic writes leave no partial file.
"""
import contextlib
import dataclasses
import errno
import functools
import math
import os
import sys

from tqdm import tqdm

from sr_keras.core import imageio
from sr_keras.core.errors import UserError, naming, one_line
from sr_keras.data import imresize, loaders, pairing
from sr_keras.evaluation import figures, metrics, results, tensorboard
from sr_keras.evaluation.results import too_small
from sr_keras.evaluation.scoring import BASELINE, score_pair
from sr_keras.infer.inference import ModelCache, load_upscaler

REPORT_TRACKS = ("bicubic_x2", "bicubic_x3", "bicubic_x4", "unknown_x2", "unknown_x3", "unknown_x4")
CENTER = 180  # the report scored 180x180 centre crops
PD_FIGURE = "perception_distortion.png"  # in --out: PSNR-Y against NIQE, one point per row


# ---------------------------------------------------------------- pairs

def check_scorable(image, width, height, scale):
    """UserError naming `image`, width x height HR, when too small to score at `scale` (trimmed to its multiple)."""
    if min(width // scale, height // scale) * scale < metrics.min_scorable_size(scale):
        raise too_small(image, width, height, scale)


def _image_files(folder, argument):
    """The images of `folder`; UserError about `argument` (FolderTrack's hr_dir or lr_dir) when there are none."""
    if not os.path.isdir(folder):
        raise UserError(f"'{folder}' is not a folder", argument=argument)
    files = imageio.list_images(folder)
    if not files:
        raise UserError(f"'{folder}' holds no images ({', '.join(imageio.IMAGE_EXTENSIONS)})", argument=argument)
    return files


class FolderTrack:
    """Folder mode: every image of `hr_dir`, its LR image found in `lr_dir` by file stem (0801.png or
    0801x4.png) or, without `lr_dir`, made from it with MATLAB-compatible bicubic.

    The constructor checks what file headers can tell (LR files present, every image large enough to
    score, see sr_keras.evaluation.metrics.min_scorable_size), so bad input fails before a model is loaded; the
    HR/LR size match is checked as each pair is read.
    """

    track = None

    def __init__(self, hr_dir, lr_dir, scale):
        self.hr_dir, self.lr_dir, self.scale = hr_dir, lr_dir, scale
        self.label = f"x{scale}"
        self.hr_files = _image_files(hr_dir, "hr_dir")
        self.count = len(self.hr_files)
        self.lr_files = {}
        if lr_dir is not None:
            by_stem = {}
            for n in _image_files(lr_dir, "lr_dir"):
                by_stem.setdefault(os.path.splitext(n)[0].lower(), n)
            for n in self.hr_files:
                stem = os.path.splitext(n)[0].lower()
                self.lr_files[n] = by_stem.get(stem) or by_stem.get(f"{stem}x{scale}")
            missing = [n for n, lr in self.lr_files.items() if lr is None]
            if missing:
                raise UserError(f"'{lr_dir}' has no LR image for {len(missing)} HR file(s), e.g. "
                                f"'{missing[0]}' (looked for the same stem, or the stem + 'x{scale}')",
                                argument="lr_dir")
        self._check_headers()

    def _check_headers(self):
        odd = None
        for n in self.hr_files:
            files = [os.path.join(self.hr_dir, n)]
            hw, hh, mode = imageio.check_header(files[0])
            check_scorable(files[0], hw, hh, self.scale)
            modes = [mode]
            if n in self.lr_files:
                files.append(os.path.join(self.lr_dir, self.lr_files[n]))
                lw, lh, lr_mode = imageio.check_header(files[1])
                # sizes before EXIF orientation: a pair in neither orientation is no pair
                if not (pairing.sizes_pair((lh, lw), (hh, hw), self.scale)
                        or pairing.sizes_pair((lw, lh), (hh, hw), self.scale)):
                    raise self._not_a_pair(files[1], lw, lh, files[0], hw, hh)
                modes.append(lr_mode)
            odd = odd or next(((f, m) for f, m in zip(files, modes) if m != "RGB"), None)
        if odd:
            tqdm.write(f"note: '{odd[0]}' is {odd[1]}; it is scored as 8-bit RGB (as are any other non-RGB "
                       "images)", file=sys.stderr)

    def _not_a_pair(self, lr_path, lw, lh, hr_path, hw, hh):
        return UserError(f"LR '{lr_path}' is {lw}x{lh} but HR '{hr_path}' is {hw}x{hh}: "
                         f"not a x{self.scale} pair (check the scale)")

    def _read(self, n):
        s = self.scale
        hr_path = os.path.join(self.hr_dir, n)
        hr = imageio.read_rgb(hr_path)
        if self.lr_dir is None:
            hr = imresize.crop_to_multiple(hr, s)
            return imresize.downscale(hr, s), hr
        lr_path = os.path.join(self.lr_dir, self.lr_files[n])
        lr = imageio.read_rgb(lr_path)
        if not pairing.sizes_pair(lr.shape[:2], hr.shape[:2], s):  # the PAIRING RULE, as read (EXIF applied)
            raise self._not_a_pair(lr_path, lr.shape[1], lr.shape[0], hr_path, hr.shape[1], hr.shape[0])
        return pairing.trim(lr, hr, s)

    def items(self):
        """Yields (name, read) per HR file: read() -> (lr_u8, hr_u8), HR trimmed to `scale` times LR
        from the top-left; UserError naming a file that cannot be read or is not a pair."""
        for n in self.hr_files:
            yield printable(os.path.splitext(n)[0]), functools.partial(self._read, n)


class Div2kTrack:
    """DIV2K mode: the pairs of one track and split from sr_keras.data.loaders.eval_pairs, their headers and
    sizes checked here (a source the track is missing from fails here, before any scoring)."""

    def __init__(self, source, track, split):
        self.source, self.track, self.split, self.label = source, track, split, track
        self.scale = loaders.scale_of(track)
        self.pairs = loaders.eval_pairs(source, track, split)
        for p in self.pairs:
            check_scorable(p.hr if isinstance(p.hr, str) else p.name, p.hr_size[1], p.hr_size[0], self.scale)
        self.names = [image_name(p.name) for p in self.pairs]
        self.count = len(self.names)

    def items(self):
        """Yields (name, read) per image of the split, in eval_names' order: read() -> (lr_u8, hr_u8),
        decoded when called, so a file that cannot be decoded fails alone (pairing.read_pair)."""
        for name, pair in zip(self.names, self.pairs):
            yield name, functools.partial(pairing.read_pair, pair, self.scale)


def printable(name):
    """A file name as text that any file and terminal take: the bytes of a name that is not UTF-8
    (kept by Python as surrogates) written as escapes, 'caf\\xe9'."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def image_name(name):
    """'.../DIV2K_valid_HR/0851.png' -> '0851'; 'samples:chelsea' -> 'chelsea'."""
    return printable(os.path.splitext(os.path.basename(str(name).split(":")[-1]))[0])


def center_crop(lr, hr, scale, size=CENTER):
    """The report's protocol: a size x size HR centre window (aligned to the scale) and the LR window it
    comes from; a smaller image is kept whole along that side.

    Args:
        lr: LR image, HxW(xC).
        hr: its HR image, `scale` times larger.
        scale: the upscaling factor.
        size: the HR window side; floored to a multiple of `scale` (176 at x8).
    """
    side = size // scale
    lh, lw = lr.shape[:2]
    ch, cw = min(side, lh), min(side, lw)
    y, x = (lh - ch) // 2, (lw - cw) // 2
    return lr[y:y + ch, x:x + cw], hr[y * scale:(y + ch) * scale, x * scale:(x + cw) * scale]


# ---------------------------------------------------------------- scoring

def bicubic_vs_model(export_dir, pairs, scale):
    """Mean (PSNR-Y, SSIM-Y) of bicubic and of the export on (lr, hr) float [0, 1] pairs, scored by
    sr_keras.evaluation.scoring.score_pair: {"bicubic": (psnr, ssim), "model": (psnr, ssim)}."""
    with naming(model="export"):  # errors about the export just written
        up = load_upscaler(export_dir)
    scores = results.Scores(("psnr", "ssim"))
    for i, (lr, hr) in enumerate(tqdm(pairs, desc="scoring test images", unit="img")):
        image = f"test image {i + 1}"
        lr8, hr8 = metrics.float_to_uint8(lr), metrics.float_to_uint8(hr)
        for name, _, values in score_pair(lr8, hr8, scale, [("model", up)], image, scores.metrics):
            scores.add(image, None, scale, name, values)
    return {row["model"]: (row["psnr"], row["ssim"]) for row in scores.rows()}


def format_table(scores, n, scale):
    """bicubic_vs_model's scores as the few lines the training scripts print."""
    (bp, bs), (mp, ms) = scores["bicubic"], scores["model"]
    return "\n".join([
        f"x{scale} on {n} test image(s) never seen in training (Y channel, {scale}-pixel border cropped):",
        f"  {'':8s} {'PSNR-Y':>8s} {'SSIM-Y':>8s}",
        f"  {'bicubic':8s} {bp:8.2f} {bs:8.4f}",
        f"  {'model':8s} {mp:8.2f} {ms:8.4f}",
        f"  {'gain':8s} {mp - bp:+8.2f} {ms - bs:+8.4f}",
    ])


# ---------------------------------------------------------------- the evaluation loop

def track_models(track, models, cache, trust_model=False):
    """[(name, upscaler)] for one track ({track} filled in), each checked against the track's scale
    (cache: an inference.ModelCache; trust_model: as load_upscaler's)."""
    ups = []
    for name, template in models:
        path = template.replace("{track}", track.track) if track.track else template
        up = cache.get(path, trust_model)
        if up.scale != track.scale:
            where = f"track {track.track}" if track.track else f"scale {track.scale}"
            raise UserError(f"'{name}={template}': '{path}' upscales x{up.scale} but {where} needs x{track.scale}"
                            + ("" if "{track}" in template or not track.track else "; put {track} in the path"),
                            argument="model")
        ups.append((name, up))
    return ups


@dataclasses.dataclass(frozen=True)
class Options:
    """How images are scored and shown.

    Args:
        protocol: "full" (whole images) or "center180" (the report's HR centre window).
        figures: comparison figures for the first N images of each track (-1 = all).
        tile: inference tile side in LR pixels (0 = whole image).
        tile_overlap: LR pixels of context around each tile.
        degrade: a degradations.EvalDegradation added to every LR image (seeded by the image's name)
            before the centre crop and any model, or None; scores are against the clean HR.
        trust_model: vouch for SavedModels without model.keras; their graphs are still checked
            (sr_keras.infer.inference.load_upscaler).
        metrics: the metrics to compute (sr_keras.evaluation.results.METRICS order); with "niqe" the HR images
            get a row of their own.
    """

    protocol: str = "full"
    figures: int = 4
    tile: int = 256
    tile_overlap: int = 16
    degrade: object = None
    trust_model: bool = False
    metrics: tuple = results.METRICS


def _score_image(image, read, track, ups, options):
    """(lr, hr, score_pair's rows) of one image, its LR degraded and cropped as `options` say;
    UserError naming the image when it cannot be read or a model cannot take it."""
    lr, hr = read()
    if options.degrade:
        lr = options.degrade.apply(lr, image)
    if options.protocol == "center180":
        lr, hr = center_crop(lr, hr, track.scale)
    return lr, hr, score_pair(lr, hr, track.scale, ups, image, options.metrics, tile=options.tile,
                              overlap=options.tile_overlap, where=f"image {image} of {track.label}")


def evaluate_track(track, ups, options, scores, out):
    """Scores the bicubic baseline, every (name, upscaler) and (with NIQE) the HR images on each pair
    of `track`; writes the comparison figures of the first `options.figures` images to `out`/figures.
    Returns the images left out (each named on stderr)."""
    scale, fig_dir = track.scale, os.path.join(out, "figures")
    failed = []
    bar = tqdm(track.items(), total=track.count, desc=f"evaluate {track.label}", unit="img")
    for i, (image, read) in enumerate(bar):
        try:
            lr, hr, scored = _score_image(image, read, track, ups, options)
        except UserError as e:
            tqdm.write(f"error: {one_line(e)} (left out of every row)", file=sys.stderr)
            failed.append(f"{image} ({track.label})")
            continue
        panels, hr_label = [], "HR (ground truth)"
        for name, sr, values in scored:
            scores.add(image, track.track, scale, name, values)
            if sr is None:
                hr_label = figures.score_label(hr_label, values)
            else:
                panels.append((figures.score_label(name, values), sr))
        if options.figures < 0 or i < options.figures:
            path = os.path.join(fig_dir, f"{figures.safe_name(track.label)}_{figures.safe_name(image)}.png")
            title = f"{image}, {track.label}, {options.protocol}" + (
                f", {options.degrade.spec()}" if options.degrade else "")
            with _writing(out):
                figures.comparison_figure(path, title, lr, panels, hr, scale, hr_label=hr_label)
    return failed


@contextlib.contextmanager
def _writing(out):
    """A failed write under `out` as one line about `out`; a full disk says so."""
    try:
        yield
    except OSError as e:
        what = f" '{e.filename}'" if e.filename else ""
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        raise UserError(f"'{out}': cannot write{what}: {e.strerror or e}"
                        + ("; free space and run again (no partial file is left)" if full else ""),
                        argument="out") from e


def evaluate(tracks, models, out, options, logs=()):
    """Scores `models` and bicubic on every track and writes the results and figures under `out`.

    Every model is loaded and checked against each track's scale before the first image or folder.

    Args:
        tracks: FolderTrack / Div2kTrack objects.
        models: [(name, path)], a path may contain {track}.
        out: the output folder (created).
        options: an `Options`.
        logs: training run folders whose TensorBoard curves are drawn.

    Returns:
        (markdown, failed): the results table in Markdown (results.md), and the images left out of
        it ("name (track)"; each was named on stderr when it failed).

    Raises:
        UserError: one line: bad input found up front, no image scored, a write that failed.
    """
    fig_dir = os.path.join(out, "figures")
    series = [(run, tensorboard.read_scalars(run)) for run in logs]
    cache = ModelCache()
    ups = [track_models(track, models, cache, options.trust_model) for track in tracks]
    with _writing(out):  # after the models: a refused one leaves no folder made
        os.makedirs(fig_dir, exist_ok=True)
    scores, failed = results.Scores(options.metrics), []
    for track, track_ups in zip(tracks, ups):
        failed += evaluate_track(track, track_ups, options, scores, out)
    if not scores.per_image:
        raise UserError(f"no image could be scored: {len(failed)} left out (reasons above)")
    _note_missing_niqe(scores)
    rows = scores.rows()
    with _writing(out):
        for i, (run, scalars) in enumerate(series):
            name = figures.safe_name(os.path.basename(os.path.normpath(run)) or f"run{i}")
            figures.curves_figure(os.path.join(fig_dir, f"curves_{i:02d}_{name}.png"), run, scalars)
        if {"psnr", "niqe"} <= set(options.metrics) and any(r["niqe"] is not None for r in rows):
            figures.perception_distortion_figure(os.path.join(out, PD_FIGURE), rows, BASELINE, results.REFERENCE)
        return results.write_results(out, options.protocol, scores, options.degrade), failed


def _note_missing_niqe(scores):
    """One note on stderr naming the images without NIQE (smaller than 96x96, or flat)."""
    if "niqe" not in scores.metrics:
        return
    missing = list(dict.fromkeys(r["image"] for r in scores.per_image if math.isnan(r["niqe"])))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        tqdm.write(f"note: no NIQE for {len(missing)} image(s) ({shown}): NIQE needs at least one 96x96 block "
                   "with texture; left blank", file=sys.stderr)
