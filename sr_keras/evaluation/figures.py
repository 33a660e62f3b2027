"""Figures of an evaluation: image comparisons with a zoomed inset (the report's Fig. 13), the
perception-distortion plane (PSNR-Y against NIQE, as the PIRM 2018 challenge) and training curves
with the best validation epoch marked (Figs. 7-12). PNGs are written atomically."""
import io
import math

import numpy as np

from sr_keras.core import imageio


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def safe_name(name):
    """`name` with every character that is not alphanumeric or one of "-_." replaced by "_" (file names)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def detail_window(hr, side):
    """(top, left, side) of the side x side HR window with the most gradient energy (the inset)."""
    g = hr.astype(np.float32).mean(axis=2)
    e = np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1, :]
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    h, w = e.shape
    side = min(side, h, w)
    sums = ii[side:, side:] - ii[:-side, side:] - ii[side:, :-side] + ii[:-side, :-side]
    y, x = np.unravel_index(np.argmax(sums), sums.shape)
    return int(y), int(x), side


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    imageio.atomic_write_bytes(path, buf.getvalue())


# Layout of comparison figures, in inches: fixed rows (titles, overview, zoom) placed explicitly, so
# no panel can cover another whatever the photograph's aspect ratio.
_COL, _GAP, _MARGIN, _TITLE, _LABEL = 2.6, 0.15, 0.1, 0.4, 0.55


def comparison_figure(path, title, lr, panels, hr, scale, hr_label="HR (ground truth)"):
    """LR | panels | HR, the full views with a red box on top and the same zoomed inset below.

    Every panel has its own row and column (nothing overlaps): the overview row is as tall as the
    photograph's aspect ratio needs (at most 3 columns wide, portraits included), the zoom row square.

    Args:
        path: the PNG to write.
        title: the figure's title.
        lr: the LR input, uint8 HxWx3.
        panels: [(label, uint8 image the size of `hr`)], e.g. bicubic and each model with its scores.
        hr: the ground truth.
        scale: the upscaling factor (the inset's window in LR pixels is the HR one divided by it).
        hr_label: the HR panel's title (e.g. with its NIQE).
    """
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    h, w = hr.shape[:2]
    y, x, side = detail_window(hr, max(16, min(h, w) // 4))
    cols = [("LR (input)", lr)] + panels + [(hr_label, hr)]
    top_h = _COL * min(h / w, 3.0)
    fig_w = 2 * _MARGIN + len(cols) * _COL + (len(cols) - 1) * _GAP
    fig_h = _TITLE + _LABEL + top_h + _GAP + _COL + _MARGIN
    fig = plt.figure(figsize=(fig_w, fig_h))
    for i, (label, img) in enumerate(cols):
        left = (_MARGIN + i * (_COL + _GAP)) / fig_w
        top = fig.add_axes((left, (_MARGIN + _COL + _GAP) / fig_h, _COL / fig_w, top_h / fig_h))
        bottom = fig.add_axes((left, _MARGIN / fig_h, _COL / fig_w, _COL / fig_h))
        is_lr = img.shape[:2] != hr.shape[:2]
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
    fig.suptitle(title, fontsize=9, y=1 - 0.08 / fig_h, va="top")
    _save(fig, path)
    plt.close(fig)


def perception_distortion_figure(path, rows, baseline, reference):
    """PSNR-Y (x) against NIQE (y) of every row, one panel per track, as the PIRM 2018 plots: the
    baseline and the models as points, the HR images' own NIQE as a dashed line (they have no PSNR).

    Args:
        path: the PNG to write.
        rows: sr_keras.evaluation.results.Scores.rows() with "psnr" and "niqe".
        baseline: the bicubic row's model name (marked apart).
        reference: the HR row's model name.
    """
    plt = _pyplot()
    tracks = list(dict.fromkeys(r["track"] or f"x{r['scale']}" for r in rows))
    fig, axes = plt.subplots(1, len(tracks), figsize=(5.2 * len(tracks), 4.2), squeeze=False)
    for ax, track in zip(axes[0], tracks):
        sel = [r for r in rows if (r["track"] or f"x{r['scale']}") == track and r["niqe"] is not None]
        for r in sel:
            if r["model"] == reference:
                ax.axhline(r["niqe"], color="green", linestyle="--", linewidth=1,
                           label=f"{reference} (ground truth), NIQE {r['niqe']:.2f}")
            elif r["psnr"] is not None and math.isfinite(r["psnr"]):
                is_base = r["model"] == baseline
                ax.scatter(r["psnr"], r["niqe"], s=60, marker="s" if is_base else "o",
                           color="grey" if is_base else None, zorder=3)
                ax.annotate(r["model"], (r["psnr"], r["niqe"]), textcoords="offset points", xytext=(6, 4),
                            fontsize=8)
        ax.set_xlabel("PSNR-Y (dB), higher = less distortion")
        ax.set_ylabel("NIQE, lower = more natural")
        ax.set_title(f"perception-distortion, {track}", fontsize=9)
        ax.margins(0.15)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def score_label(name, values):
    """A figure panel's title: the row's name and its scores, one metric family a line."""
    lines = [name]
    if "psnr" in values or "ssim" in values:
        lines.append(" / ".join(f.format(values[m]) for m, f in (("psnr", "{:.2f} dB"), ("ssim", "{:.4f}"))
                                if m in values))
    if "niqe" in values:
        lines.append("NIQE " + ("-" if math.isnan(values["niqe"]) else f"{values['niqe']:.3f}"))
    return "\n".join(lines)


def _val_series(series):
    return next((name for name in series if name.startswith("val")), None)


def best_epoch(series):
    """(epoch, psnr) with the highest validation PSNR, epochs counted from 1; None without one.

    Args:
        series: sr_keras.evaluation.tensorboard.read_scalars' result.
    """
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


def _is_loss(tag):
    return "loss" in tag


def _is_psnr(tag):
    return tag.endswith("psnr")


def _is_ssim(tag):
    return tag.endswith("ssim")


def curves_figure(path, run_dir, series):
    """Loss curves, PSNR and SSIM per epoch of every series, the best validation PSNR epoch marked.

    Args:
        path: the PNG to write.
        run_dir: the training run folder, for the title.
        series: sr_keras.evaluation.tensorboard.read_scalars(run_dir).
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    panels = [("loss", _is_loss), ("PSNR (dB)", _is_psnr), ("SSIM", _is_ssim)]
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
    _save(fig, path)
    plt.close(fig)
