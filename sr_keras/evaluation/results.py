"""The scores of an evaluation and its result files: results.json/.csv/.md and per_image.csv.

Metrics (`METRICS`, chosen with evaluate.py --metrics): PSNR and SSIM on Y against the HR image
(sr_keras.evaluation.metrics), and NIQE of the whole output (sr_keras.evaluation.perception, no
reference needed; lower = more natural). With NIQE the HR images get a row of their own (`REFERENCE`,
NIQE only: the value a perfect model would reach). NIQE needs a 96x96 block: an image below it (or a
flat one) has no NIQE, and a row's NIQE is the mean over the images that have one (None when none has).
"""
import csv
import io
import json
import math
import os

import numpy as np

from sr_keras.core import imageio
from sr_keras.core.errors import UserError
from sr_keras.evaluation import perception

METRICS = ("psnr", "ssim", "niqe")
REFERENCE = "HR"  # the row of the HR images themselves
_CELL = {"psnr": "{:.2f}", "ssim": "{:.4f}", "niqe": "{:.3f}"}


def parse_metrics(spec):
    """'psnr,ssim,niqe' (any non-empty subset, any order) -> the metrics in METRICS order; ValueError
    for an unknown name or none."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names or any(n not in METRICS for n in names):
        raise ValueError(f"--metrics {spec!r}: choose a comma-separated subset of {','.join(METRICS)}")
    return tuple(m for m in METRICS if m in names)


def too_small(image, width, height, scale):
    """The one-line UserError for an image that SSIM's window cannot score at `scale`."""
    from sr_keras.evaluation import metrics

    side = metrics.min_scorable_size(scale)
    win = metrics.SSIM_WINDOW
    return UserError(f"{image}: {width}x{height} is too small to score at x{scale}: SSIM's {win}x{win} window "
                     f"needs at least {side}x{side} pixels ({win} after the {scale}-pixel border crop, "
                     f"HR trimmed to a multiple of {scale})")


def score(hr, sr, scale, image, chosen=METRICS):
    """{metric: value} of uint8 `sr` for the `chosen` metrics: PSNR and SSIM on Y against `hr`
    (UserError naming `image` when it is too small), NIQE of `sr` alone (NaN when it has none:
    smaller than 96x96, or flat). `sr` None scores `hr` itself: NIQE only."""
    from sr_keras.evaluation import metrics  # Keras: imported when scoring, so parsing --metrics stays light

    if sr is None:
        return {"niqe": niqe_or_nan(hr)} if "niqe" in chosen else {}
    if ("psnr" in chosen or "ssim" in chosen) and min(hr.shape[:2]) < metrics.min_scorable_size(scale):
        raise too_small(image, hr.shape[1], hr.shape[0], scale)
    fns = {"psnr": lambda: metrics.psnr_y(hr, sr, scale), "ssim": lambda: metrics.ssim_y(hr, sr, scale),
           "niqe": lambda: niqe_or_nan(sr)}
    return {m: fns[m]() for m in chosen}


def niqe_or_nan(img):
    """sr_keras.evaluation.perception.niqe, NaN where it is undefined (smaller than one 96x96 block, or flat)."""
    try:
        return perception.niqe(img)
    except ValueError:
        return math.nan


class Scores:
    """Per-image scores (a value is None where a metric does not apply or is undefined); means per
    (model, track, scale)."""

    def __init__(self, chosen=METRICS):
        self.metrics, self.per_image = tuple(chosen), []

    def add(self, image, track, scale, model, values):
        self.per_image.append({"image": image, "track": track, "scale": scale, "model": model,
                               **{m: values.get(m) for m in self.metrics}})

    def rows(self):
        keys = list(dict.fromkeys((r["model"], r["track"], r["scale"]) for r in self.per_image))
        out = []
        for model, track, scale in keys:
            sel = [r for r in self.per_image if (r["model"], r["track"], r["scale"]) == (model, track, scale)]
            row = {"model": model, "track": track, "scale": scale}
            for m in self.metrics:
                vals = [r[m] for r in sel if r[m] is not None and not math.isnan(r[m])]
                row[m] = float(np.mean(vals)) if vals else None
            out.append({**row, "images": len(sel)})
        return out


def _finite(v):
    return v if isinstance(v, float) and math.isfinite(v) else None


def _csv(rows, fields):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.4f}" if isinstance(r[k], float) and not math.isnan(r[k])
                        else ("" if r[k] is None or isinstance(r[k], float) else r[k])) for k in fields})
    return buf.getvalue()


def scale_note(protocol):
    return ("whole images, `scale` border pixels cropped" if protocol == "full"
            else "180x180 HR centre crops, `scale` border pixels cropped")


_NAMES = {"psnr": "PSNR (dB)", "ssim": "SSIM", "niqe": "NIQE"}


def _heading(metrics, protocol, degrade):
    """'PSNR (dB) / SSIM / NIQE: ...': the cells' order, then how each metric was taken."""
    parts = []
    if "psnr" in metrics or "ssim" in metrics:
        parts.append(f"{' and '.join(_NAMES[m] for m in metrics if m != 'niqe')} on Y, {scale_note(protocol)}")
    if "niqe" in metrics:
        parts.append(f"NIQE of the {'whole image' if protocol == 'full' else 'HR crop'}, lower = more natural "
                     f"(row {REFERENCE}: the ground truth's own)")
    degraded = f"; LR degraded with --degrade {degrade.spec()} ({degrade.describe()})" if degrade else ""
    return " / ".join(_NAMES[m] for m in metrics) + ": " + "; ".join(parts) + degraded


def results_markdown(rows, metrics, protocol, degrade=None):
    """Table 2 shape: models as rows, tracks as columns, cells the chosen metrics joined by '/'."""
    cols = list(dict.fromkeys(r["track"] or f"x{r['scale']}" for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["model"], r["track"] or f"x{r['scale']}"):
            "/".join("-" if r[m] is None else _CELL[m].format(r[m]) for m in metrics) for r in rows}
    lines = [_heading(metrics, protocol, degrade), "",
             "| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += ["| " + m + " | " + " | ".join(cell.get((m, c), "-") for c in cols) + " |" for m in models]
    n = sorted({r["images"] for r in rows})
    note = "; '-' = no value (the HR row has no PSNR/SSIM; NIQE needs 96x96 pixels)" if "niqe" in metrics else ""
    lines += ["", f"images per track: {', '.join(map(str, n))}{note}"]
    return "\n".join(lines) + "\n"


def write_results(out, protocol, scores, degrade=None):
    """results.json/.csv/.md and per_image.csv in `out`, each written atomically; returns the Markdown.

    The CSV files name the track in folder mode too (x<scale>); results.json keeps it null there. With
    `degrade` (an EvalDegradation), results.json's "degradation" holds it (else null), the CSV files
    end with a "degradation" column (its --degrade value) and results.md names it.
    """
    rows, metrics = scores.rows(), scores.metrics
    doc = {"protocol": protocol, "metrics": list(metrics), "degradation": degrade.to_dict() if degrade else None,
           "rows": [{**r, **{m: _finite(r[m]) for m in metrics}} for r in rows]}
    imageio.atomic_write_text(os.path.join(out, "results.json"), json.dumps(doc, indent=2) + "\n")
    extra = ["degradation"] if degrade else []

    def tag(rs):
        return [{**r, "track": r["track"] or f"x{r['scale']}", **({"degradation": degrade.spec()} if degrade else {})}
                for r in rs]

    imageio.atomic_write_text(os.path.join(out, "results.csv"),
                              _csv(tag(rows), ["model", "track", "scale", *metrics, "images"] + extra))
    md = results_markdown(rows, metrics, protocol, degrade)
    imageio.atomic_write_text(os.path.join(out, "results.md"), md)
    imageio.atomic_write_text(os.path.join(out, "per_image.csv"),
                              _csv(tag(scores.per_image), ["image", "track", "scale", "model", *metrics] + extra))
    return md
