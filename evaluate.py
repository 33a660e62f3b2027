#!/usr/bin/env python3
"""Score SR models against bicubic on DIV2K or a folder of photographs (PSNR/SSIM on Y, as Table 2).

Convention (sr_keras.metrics): Y of BT.601 from uint8 RGB, `scale` border pixels cropped, PSNR with
data range 255, SSIM with an 11x11 Gaussian window (sigma 1.5); model outputs are rounded and clipped
to uint8 before scoring. Writes results.json/.csv/.md, per_image.csv and figures/ under --out.
"""
import argparse
import csv
import glob
import io
import json
import math
import os
import sys

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from sr_keras.errors import UserError, cli_entry

REPORT_TRACKS = ("bicubic_x2", "bicubic_x3", "bicubic_x4", "unknown_x2", "unknown_x3", "unknown_x4")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
BASELINE = "bicubic"
CENTER = 180  # the report scored 180x180 centre crops


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                   help="a model to score (repeatable): SavedModel folder from --export or a .keras file; "
                        "PATH may contain {track} to pick one model per track")
    g = p.add_argument_group("DIV2K mode")
    g.add_argument("--data", default="tfds", help="'tfds', a DIV2K-layout folder, or an HR folder "
                   "(see docs/data.md); may contain {track}")
    g.add_argument("--track", default="all", help="a DIV2K track (e.g. bicubic_x4), or 'all' = the report's six")
    g.add_argument("--split", default="test", choices=("test", "validation"),
                   help="test = images 0851-0900, validation = 0801-0850 (the report's split)")
    f = p.add_argument_group("folder mode")
    f.add_argument("--hr-dir", help="folder of HR images; switches to folder mode")
    f.add_argument("--lr-dir", help="folder of LR images matched by file stem (0801.png or 0801x4.png); "
                   "without it, LR is made from the HR with MATLAB-compatible bicubic")
    f.add_argument("--scale", type=int, help="upscaling factor (folder mode)")
    p.add_argument("--protocol", default="full", choices=("full", "center180"),
                   help="full = whole images; center180 = the report's 180x180 HR centre crop (model run on "
                        "the matching LR crop)")
    p.add_argument("--out", default=os.path.join("runs", "eval"), help="output folder")
    p.add_argument("--figures", type=int, default=4,
                   help="comparison figures for the first N images of each track (-1 = all)")
    p.add_argument("--logs", nargs="+", default=[], metavar="RUN_DIR",
                   help="training run folders whose TensorBoard logs are plotted as curves")
    p.add_argument("--tile", type=int, default=256, help="inference tile side in LR pixels (0 = whole image)")
    p.add_argument("--tile-overlap", type=int, default=16,
                   help="LR pixels of context around each tile (raised to the model's receptive radius when larger)")
    a = p.parse_args(argv)
    if a.hr_dir is None and (a.lr_dir is not None or a.scale is not None):
        p.error("--lr-dir and --scale belong to folder mode: give --hr-dir too")
    if a.hr_dir is not None and a.scale is None:
        p.error("folder mode needs --scale (e.g. --scale 4)")
    if a.scale is not None and a.scale < 1:
        p.error(f"--scale must be >= 1, got {a.scale}")
    if a.tile < 0:
        p.error(f"--tile must be >= 0 (0 = whole image), got {a.tile}")
    if a.tile_overlap < 0:
        p.error(f"--tile-overlap must be >= 0, got {a.tile_overlap}")
    return a


def parse_models(values):
    models = []
    for v in values:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--model '{v}' must be NAME=PATH, e.g. --model srresnet=saved_models/srresnet_x4")
        if name.lower() == BASELINE:
            raise UserError(f"--model '{v}': the name '{BASELINE}' is the baseline row; choose another")
        if name in (m[0] for m in models):
            raise UserError(f"--model '{v}': the name '{name}' is given twice")
        models.append((name, path))
    return models


# ---------------------------------------------------------------- images in

_converted = []


def read_rgb(path):
    """uint8 RGB pixels of an image file; grey, palette, alpha and 16-bit images are converted (the
    first conversion is reported once), unreadable files raise UserError naming the file."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode.startswith("I"):  # 16-bit grey: 8-bit levels by rounding, not clipping at 255
                grey = np.clip(np.round(np.asarray(im, np.float64) / 257.0), 0, 255).astype(np.uint8)
                rgb = np.repeat(grey[..., None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError as e:
        raise UserError(f"cannot read image '{path}': not an image, or its header is corrupt") from e
    except Exception as e:  # truncated data, decoder errors: one line naming the file
        raise UserError(f"cannot read image '{path}': {str(e).strip() or type(e).__name__}") from e
    if mode != "RGB" and not _converted:
        _converted.append(path)
        tqdm.write(f"note: '{path}' is {mode}; it is scored as 8-bit RGB (as are any other non-RGB images)",
                   file=sys.stderr)
    return rgb


def list_images(folder, flag):
    if not os.path.isdir(folder):
        raise UserError(f"{flag} '{folder}' is not a folder")
    files = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS))
    if not files:
        raise UserError(f"{flag} '{folder}' holds no images ({', '.join(IMAGE_EXTS)})")
    return files


def folder_pairs(hr_dir, lr_dir, scale):
    """-> (count, iterator of (name, lr_u8, hr_u8)); LR by stem from lr_dir, else made by downscale."""
    from sr_keras import imresize

    hr_files = list_images(hr_dir, "--hr-dir")
    lr_by_stem = {}
    if lr_dir is not None:
        for n in list_images(lr_dir, "--lr-dir"):
            lr_by_stem.setdefault(os.path.splitext(n)[0].lower(), n)
        missing = [n for n in hr_files if _lr_name(n, scale, lr_by_stem) is None]
        if missing:
            raise UserError(f"--lr-dir '{lr_dir}' has no LR image for {len(missing)} HR file(s), e.g. "
                            f"'{missing[0]}' (looked for the same stem, or the stem + 'x{scale}')")

    def pairs():
        for n in hr_files:
            hr_path = os.path.join(hr_dir, n)
            hr = read_rgb(hr_path)
            if lr_dir is None:
                hr = imresize.crop_to_multiple(hr, scale)
                if hr.shape[0] == 0 or hr.shape[1] == 0:
                    raise UserError(f"HR image '{hr_path}' is smaller than the scale {scale}")
                lr = imresize.downscale(hr, scale)
            else:
                lr_path = os.path.join(lr_dir, _lr_name(n, scale, lr_by_stem))
                lr = read_rgb(lr_path)
                (lh, lw), (hh, hw) = lr.shape[:2], hr.shape[:2]
                # the pairing rule of sr_keras.data: LR side = floor or ceil of HR side / s
                if abs(scale * lh - hh) >= scale or abs(scale * lw - hw) >= scale:
                    raise UserError(f"LR '{lr_path}' is {lw}x{lh} but HR '{hr_path}' is {hw}x{hh}: "
                                    f"not a x{scale} pair (check --scale)")
                lh, lw = min(lh, hh // scale), min(lw, hw // scale)
                lr, hr = lr[:lh, :lw], hr[:scale * lh, :scale * lw]
                if lh == 0 or lw == 0:
                    raise UserError(f"HR image '{hr_path}' is smaller than the scale {scale}")
            yield os.path.splitext(n)[0], lr, hr

    return len(hr_files), pairs()


def _lr_name(hr_name, scale, lr_by_stem):
    stem = os.path.splitext(hr_name)[0].lower()
    return lr_by_stem.get(stem) or lr_by_stem.get(f"{stem}x{scale}")


def div2k_pairs(source, track, split, names):
    """-> (count or None, iterator of (name, lr_u8, hr_u8)) from sr_keras.data.eval_dataset; `names` are
    sr_keras.data.eval_names of the same split, in the same order."""
    from sr_keras import data, metrics

    ds = data.eval_dataset(source, track, split)
    names = [_image_name(n) for n in names]

    def pairs():
        for name, (lr, hr) in zip(names, ds.as_numpy_iterator()):
            yield name, metrics.to_uint8(lr[0]), metrics.to_uint8(hr[0])

    return len(names), pairs()


def _image_name(name):
    """'.../DIV2K_valid_HR/0851.png' -> '0851'; 'samples:chelsea' -> 'chelsea'."""
    return os.path.splitext(os.path.basename(str(name).split(":")[-1]))[0]


def center_crop(lr, hr, scale, size=CENTER):
    """The report's protocol: a size x size HR centre window and the LR window it comes from."""
    side = size // scale
    lh, lw = lr.shape[:2]
    ch, cw = min(side, lh), min(side, lw)
    y, x = (lh - ch) // 2, (lw - cw) // 2
    return lr[y:y + ch, x:x + cw], hr[y * scale:(y + ch) * scale, x * scale:(x + cw) * scale]


# ---------------------------------------------------------------- scoring

class Scores:
    """Per-image scores; means per (model, track)."""

    def __init__(self):
        self.per_image = []

    def add(self, image, track, scale, model, psnr, ssim):
        self.per_image.append({"image": image, "track": track, "scale": scale, "model": model,
                               "psnr": psnr, "ssim": ssim})

    def rows(self):
        keys = list(dict.fromkeys((r["model"], r["track"], r["scale"]) for r in self.per_image))
        out = []
        for model, track, scale in keys:
            sel = [r for r in self.per_image if (r["model"], r["track"], r["scale"]) == (model, track, scale)]
            out.append({"model": model, "track": track, "scale": scale,
                        "psnr": float(np.mean([r["psnr"] for r in sel])),
                        "ssim": float(np.mean([r["ssim"] for r in sel])), "images": len(sel)})
        return out


def score(sr, hr, scale, image):
    from sr_keras import metrics

    if min(hr.shape[:2]) - 2 * scale < 7:  # SSIM's 11x11 Gaussian window needs 7 pixels after the crop
        raise UserError(f"image '{image}' is {hr.shape[1]}x{hr.shape[0]} (HR): too small to score at x{scale} "
                        f"(needs at least {7 + 2 * scale} pixels a side)")
    return metrics.psnr_y(sr, hr, scale), metrics.ssim_y(sr, hr, scale)


def _finite(v):
    return v if isinstance(v, float) and math.isfinite(v) else None


# ---------------------------------------------------------------- outputs

def _atomic_write(path, text_or_bytes):
    tmp = f"{path}.{os.getpid()}.tmp"
    mode = "wb" if isinstance(text_or_bytes, bytes) else "w"
    with open(tmp, mode, **({} if mode == "wb" else {"newline": ""})) as f:
        f.write(text_or_bytes)
    os.replace(tmp, path)


def _csv(rows, fields):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.4f}" if isinstance(r[k], float) else ("" if r[k] is None else r[k]))
                    for k in fields})
    return buf.getvalue()


def results_markdown(rows, protocol):
    """Table 2 shape: models as rows, tracks as columns, PSNR/SSIM cells."""
    cols = list(dict.fromkeys(r["track"] or f"x{r['scale']}" for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["model"], r["track"] or f"x{r['scale']}"): f"{r['psnr']:.2f}/{r['ssim']:.4f}" for r in rows}
    lines = [f"PSNR (dB) / SSIM on Y, {scale_note(protocol)}", "",
             "| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += ["| " + m + " | " + " | ".join(cell.get((m, c), "-") for c in cols) + " |" for m in models]
    n = sorted({r["images"] for r in rows})
    lines += ["", f"images per track: {', '.join(map(str, n))}"]
    return "\n".join(lines) + "\n"


def scale_note(protocol):
    return ("whole images, `scale` border pixels cropped" if protocol == "full"
            else "180x180 HR centre crops, `scale` border pixels cropped")


def write_results(out, protocol, scores):
    rows = scores.rows()
    doc = {"protocol": protocol,
           "rows": [{**r, "psnr": _finite(r["psnr"]), "ssim": _finite(r["ssim"])} for r in rows]}
    _atomic_write(os.path.join(out, "results.json"), json.dumps(doc, indent=2) + "\n")
    _atomic_write(os.path.join(out, "results.csv"),
                  _csv(rows, ["model", "track", "scale", "psnr", "ssim", "images"]))
    md = results_markdown(rows, protocol)
    _atomic_write(os.path.join(out, "results.md"), md)
    _atomic_write(os.path.join(out, "per_image.csv"),
                  _csv(scores.per_image, ["image", "track", "scale", "model", "psnr", "ssim"]))
    return md


# ---------------------------------------------------------------- figures

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def detail_window(hr, side):
    """Top-left corner of the side x side HR window with the most gradient energy (the inset)."""
    g = hr.astype(np.float32).mean(axis=2)
    e = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = e.shape
    side = min(side, h, w)
    sums = ii[side:, side:] - ii[:-side, side:] - ii[side:, :-side] + ii[:-side, :-side]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x), side


def comparison_figure(path, title, lr, panels, hr, scale):
    """LR | bicubic | models | HR, full view with a box on top and the same zoomed inset below."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    h, w = hr.shape[:2]
    y, x, side = detail_window(hr, max(16, min(h, w) // 4))
    cols = [("LR (input)", lr)] + panels + [("HR (ground truth)", hr)]
    fig, axes = plt.subplots(2, len(cols), figsize=(2.6 * len(cols), 2.6 * (h / w) + 2.9), squeeze=False,
                             gridspec_kw={"height_ratios": [h / w, 1]})
    for i, (label, img) in enumerate(cols):
        is_lr = img.shape[:2] != hr.shape[:2]
        top, bottom = axes[0][i], axes[1][i]
        top.imshow(img, extent=(0, w, h, 0), interpolation="nearest" if is_lr else "antialiased")
        top.add_patch(Rectangle((x, y), side, side, fill=False, edgecolor="red", linewidth=1.2))
        top.set_title(label, fontsize=8)
        if is_lr:
            zoom = img[y // scale:(y + side) // scale, x // scale:(x + side) // scale]
        else:
            zoom = img[y:y + side, x:x + side]
        bottom.imshow(zoom, interpolation="nearest")
        for a in (top, bottom):
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _atomic_write(path, buf.getvalue())


def read_scalars(run_dir):
    """TensorBoard scalars under run_dir -> {series: {tag: {step: value}}}; series = the event file's
    folder (Keras: 'train', 'validation'). A file cut short by a crash keeps what was read."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(glob.escape(run_dir), "**", "events.out.tfevents.*"), recursive=True))
    if not files:
        raise UserError(f"--logs '{run_dir}' holds no TensorBoard event files (events.out.tfevents.*)")
    series = {}
    for f in files:
        name = os.path.basename(os.path.dirname(f))
        try:
            for record in tf.data.TFRecordDataset(f).as_numpy_iterator():
                ev = tf.compat.v1.Event.FromString(record)
                for v in ev.summary.value:
                    if v.HasField("simple_value"):
                        val = float(v.simple_value)
                    elif v.HasField("tensor") and v.metadata.plugin_data.plugin_name in ("scalars", ""):
                        arr = tf.make_ndarray(v.tensor)
                        if arr.size != 1 or arr.dtype.kind not in "fiu":
                            continue
                        val = float(arr.reshape(()))
                    else:
                        continue
                    series.setdefault(name, {}).setdefault(v.tag, {})[int(ev.step)] = val
        except tf.errors.DataLossError:
            continue
    return series


def _val_series(series):
    for name in series:
        if name.startswith("val"):
            return name
    return None


def best_epoch(series):
    """(epoch, psnr) with the highest validation PSNR, epochs counted from 1; None without PSNR."""
    v = _val_series(series)
    tags = series.get(v, {}) if v else {}
    psnr = next((tags[t] for t in sorted(tags, key=lambda t: not t.startswith("epoch_")) if t.endswith("psnr")), None)
    if not psnr:
        for tags in series.values():  # validation metrics logged as val_psnr into the train series
            psnr = next((tags[t] for t in tags if "val" in t and t.endswith("psnr")), None)
            if psnr:
                break
    if not psnr:
        return None
    step = max(psnr, key=lambda s: (psnr[s], -s))
    return step + 1, psnr[step]


def curves_figure(path, run_dir, series):
    """Loss curves, validation PSNR and SSIM per epoch, the best validation PSNR epoch marked (Figs. 7-12)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = [("loss", lambda t: "loss" in t), ("PSNR (dB)", lambda t: t.endswith("psnr")),
              ("SSIM", lambda t: t.endswith("ssim"))]
    best = best_epoch(series)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, (label, keep) in zip(axes, panels):
        for name in sorted(series):
            # Keras also logs per-iteration "evaluation_*_vs_iterations" tags; the curves are per epoch
            epoch_tags = [t for t in series[name] if t.startswith("epoch_")] or list(series[name])
            for tag in sorted(t for t in epoch_tags if keep(t)):
                pts = sorted(series[name][tag].items())
                ax.plot([s + 1 for s, _ in pts], [v for _, v in pts], marker="." if len(pts) < 40 else None,
                        label=f"{name}/{tag}")
        if best:
            ax.axvline(best[0], color="grey", linestyle="--", linewidth=1,
                       label=f"best val PSNR, epoch {best[0]}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        if ax.lines:
            ax.legend(fontsize=7)
        values = [v for ln in ax.lines[:-1 if best else None] for v in ln.get_ydata()]
        if label == "loss" and values and min(values) > 0:  # losses of very different size share a panel
            ax.set_yscale("log")
    fig.suptitle(f"{run_dir}" + (f" (best validation PSNR {best[1]:.2f} dB at epoch {best[0]})" if best else ""),
                 fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---------------------------------------------------------------- main

class ModelCache:
    """One load per model path, shared by the tracks that use it."""

    def __init__(self):
        self.loaded = {}

    def get(self, path):
        from sr_keras.inference import load_upscaler

        if path not in self.loaded:
            self.loaded[path] = load_upscaler(path)
        return self.loaded[path]


def track_models(track, scale, models, cache):
    """[(name, upscaler)] for one track ({track} filled in), each checked against the track's scale."""
    ups = []
    for name, template in models:
        path = template.replace("{track}", track) if track else template
        up = cache.get(path)
        if up.scale != scale:
            where = f"track {track}" if track else f"--scale {scale}"
            raise UserError(f"--model '{name}={template}': '{path}' upscales x{up.scale} but {where} needs x{scale}"
                            + ("" if "{track}" in template or not track else "; put {track} in the path"))
        ups.append((name, up))
    return ups


def evaluate_track(track, scale, pairs, count, ups, args, scores, fig_dir):
    from sr_keras import imresize
    from sr_keras.inference import upscale_image

    label = track or f"x{scale}"
    for i, (image, lr, hr) in enumerate(tqdm(pairs, total=count, desc=f"evaluate {label}", unit="img")):
        if args.protocol == "center180":
            lr, hr = center_crop(lr, hr, scale)
        panels = []
        bic = imresize.upscale_bicubic(lr, scale)
        p, s = score(bic, hr, scale, image)
        scores.add(image, track, scale, BASELINE, p, s)
        panels.append((f"{BASELINE}\n{p:.2f} dB / {s:.4f}", bic))
        for name, up in ups:
            sr = upscale_image(up, lr, tile=args.tile, overlap=args.tile_overlap)
            p, s = score(sr, hr, scale, image)
            scores.add(image, track, scale, name, p, s)
            panels.append((f"{name}\n{p:.2f} dB / {s:.4f}", sr))
        if args.figures < 0 or i < args.figures:
            comparison_figure(os.path.join(fig_dir, f"{_safe(label)}_{_safe(image)}.png"),
                              f"{image}, {label}, {args.protocol}", lr, panels, hr, scale)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    models = parse_models(args.model)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out '{args.out}' exists and is not a folder")
    if args.hr_dir is not None and any("{track}" in p for _, p in models):
        raise UserError("{track} in a --model path needs DIV2K mode (--data/--track), not --hr-dir")
    for run in args.logs:
        if not os.path.isdir(run):
            raise UserError(f"--logs '{run}' is not a folder: give a training run folder (its --out)")
    if args.hr_dir is not None:
        count, pairs = folder_pairs(args.hr_dir, args.lr_dir, args.scale)
        jobs = [(None, args.scale, lambda c=count, p=pairs: (c, p))]
    else:
        from sr_keras import data

        tracks = REPORT_TRACKS if args.track == "all" else (args.track,)
        jobs = []
        for t in tracks:
            source = args.data.replace("{track}", t)
            names = data.eval_names(source, t, args.split)  # a track the source lacks fails before any scoring
            jobs.append((t, data.scale_of(t), lambda s=source, t=t, n=names: div2k_pairs(s, t, args.split, n)))
    fig_dir = os.path.join(args.out, "figures")
    try:
        os.makedirs(fig_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out '{args.out}': {e.strerror or e}") from e
    logs = [(run, read_scalars(run)) for run in args.logs]
    cache = ModelCache()
    # every model is loaded and checked before the first image, so a bad path fails in seconds
    ups = [track_models(track, scale, models, cache) for track, scale, _ in jobs]
    scores = Scores()
    for (track, scale, open_pairs), track_ups in zip(jobs, ups):
        count, pairs = open_pairs()
        evaluate_track(track, scale, pairs, count, track_ups, args, scores, fig_dir)
    for i, (run, series) in enumerate(logs):
        name = _safe(os.path.basename(os.path.normpath(run)) or f"run{i}")
        curves_figure(os.path.join(fig_dir, f"curves_{i:02d}_{name}.png"), run, series)
    md = write_results(args.out, args.protocol, scores)
    print(md, end="")
    print(f"results in {args.out}/ (results.json, results.csv, results.md, per_image.csv, figures/)")


if __name__ == "__main__":
    sys.exit(main())
