"""Figures of an evaluation: image comparisons with a zoomed inset (the report's Fig. 13) and training
curves with the best validation epoch marked (Figs. 7-12). PNGs are written atomically."""
import io

import numpy as np

from sr_keras import imageio


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


def comparison_figure(path, title, lr, panels, hr, scale):
    """LR | panels | HR, the full views with a red box on top and the same zoomed inset below.

    Args:
        path: the PNG to write.
        title: the figure's title.
        lr: the LR input, uint8 HxWx3.
        panels: [(label, uint8 image the size of `hr`)], e.g. bicubic and each model with its scores.
        hr: the ground truth.
        scale: the upscaling factor (the inset's window in LR pixels is the HR one divided by it).
    """
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
    _save(fig, path)
    plt.close(fig)


def _val_series(series):
    return next((name for name in series if name.startswith("val")), None)


def best_epoch(series):
    """(epoch, psnr) with the highest validation PSNR, epochs counted from 1; None without one.

    Args:
        series: sr_keras.tensorboard.read_scalars' result.
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
        series: sr_keras.tensorboard.read_scalars(run_dir).
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
