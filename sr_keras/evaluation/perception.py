"""NIQE (Mittal, Soundararajan, Bovik 2013), numerically the authors' MATLAB release.

`niqe(image)` scores how far an image's local statistics are from those of pristine photographs
(lower = more natural); it needs no reference image. The conventions are the MATLAB release's as
BasicSR checks them: Y of MATLAB `rgb2ycbcr` rounded to integers (a grey image is taken as Y), no
border crop, the image cropped to whole 96x96 blocks without overlap, two scales (the second made by
MATLAB's antialiased bicubic `imresize` at 0.5, written out here in float64), the AGGD fits over the
gamma grid 0.2:0.001:10, and the pristine model shipped beside this file (niqe_pris_params.npz;
provenance in docs/evaluation.md). Every block is fitted at once (numpy arrays over blocks).
Only numpy and scipy: importing this module imports no TensorFlow.
"""
import functools
import os

import numpy as np
from scipy.ndimage import correlate, maximum_filter, minimum_filter
from scipy.special import gamma

BLOCK = 96
_PARAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "niqe_pris_params.npz")
# The MATLAB release's search grid for the generalized Gaussian shape (gam = 0.2:0.001:10).
_GAM = np.round(np.arange(0.2, 10.0005, 0.001), 3)
_R_GAM = gamma(2 / _GAM) ** 2 / (gamma(1 / _GAM) * gamma(3 / _GAM))
# Horizontal, vertical and both diagonal neighbours (MATLAB circshift by [0 1], [1 0], [1 1], [-1 1]).
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


@functools.lru_cache(maxsize=1)
def pristine_model():
    """(mu 36, cov 36x36, window 7x7) of the authors' pristine-image model (modelparameters.mat)."""
    with np.load(_PARAMS) as p:
        return p["mu_pris_param"].ravel(), p["cov_pris_param"], p["gaussian_window"]


def matlab_y(rgb):
    """Y of MATLAB's rgb2ycbcr on uint8 RGB: 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded
    half away from zero as MATLAB's uint8 conversion does; float64 HxW."""
    x = rgb.astype(np.float64)
    return np.floor(16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0 + 0.5)


def _cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
            + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(n_in, scale):
    """MATLAB imresize's `contributions` for bicubic along one axis: (weights, indices), both
    (n_out, taps); the kernel widened by 1/scale when shrinking (antialiasing), borders mirrored."""
    n_out = int(np.ceil(n_in * scale))
    width = 4.0 / scale if scale < 1 else 4.0
    kernel = (lambda t: scale * _cubic(scale * t)) if scale < 1 else _cubic
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    idx = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    w = kernel(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    return w, mirror[(idx.astype(np.int64) - 1) % (2 * n_in)]


def _resize_rows(img, scale):
    w, idx = _contributions(img.shape[0], scale)
    out = np.zeros((len(w),) + img.shape[1:])
    for k in range(w.shape[1]):  # tap by tap: n_out x width work each, no dense matrix
        out += w[:, k, None] * img[idx[:, k]]
    return out


def imresize_matlab(img, scale):
    """MATLAB `imresize(img, scale)` (bicubic, antialiasing on) of a float 2-D array, in float64:
    rows first, then columns, as MATLAB orders equal scales."""
    return _resize_rows(_resize_rows(np.asarray(img, np.float64), scale).T, scale).T


def _aggd(x):
    """Asymmetric generalized Gaussian fits of each row of `x` (blocks x samples): (alpha, beta_l,
    beta_r), NaN where a row has no negative or no positive sample (a flat block)."""
    neg, pos = x < 0, x > 0
    sq = x * x
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((sq * neg).sum(1) / neg.sum(1))
        right = np.sqrt((sq * pos).sum(1) / pos.sum(1))
        g = left / right
        rhat = np.abs(x).mean(1) ** 2 / sq.mean(1)
        rnorm = rhat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = np.full(len(x), np.nan)
    ok = np.isfinite(rnorm)
    alpha[ok] = _GAM[_nearest(rnorm[ok])]
    with np.errstate(invalid="ignore"):
        ratio = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * ratio, right * ratio


def _nearest(r):
    """argmin over the grid of (_R_GAM - r)**2 for each r, the first index on a tie (MATLAB's min);
    _R_GAM increases along the grid, so only the two grid values around r can be nearest."""
    hi = np.clip(np.searchsorted(_R_GAM, r), 1, len(_R_GAM) - 1)
    lo = hi - 1
    return np.where((_R_GAM[hi] - r) ** 2 < (_R_GAM[lo] - r) ** 2, hi, lo)


def block_features(structdis, side):
    """The 18 NIQE features of every side x side block of a normalised image, (blocks, 18)."""
    h, w = structdis.shape
    blocks = structdis.reshape(h // side, side, w // side, side).transpose(0, 2, 1, 3).reshape(-1, side, side)
    flat = blocks.reshape(len(blocks), -1)
    a, bl, br = _aggd(flat)
    feats = [a, (bl + br) / 2]
    for shift in _SHIFTS:
        pair = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(len(blocks), -1)
        a, bl, br = _aggd(pair)
        with np.errstate(invalid="ignore"):
            mean = (br - bl) * gamma(2 / a) / gamma(1 / a)
        feats += [a, mean, bl, br]
    return np.stack(feats, axis=1)


def mscn(y, window):
    """(y - mu) / (sigma + 1), mu and sigma the local mean and deviation under `window` (MATLAB's
    imfilter with 'replicate' borders).

    Where the 7x7 neighbourhood is constant the coefficient is exactly 0, as in exact arithmetic:
    the stored window sums to 1 - 1e-16, so a float64 filter leaves +-1e-14 there, and the AGGD fits
    count such values as negative or positive samples (on Set14's baboon that moves NIQE by 4e-4,
    away from MATLAB's 5.72957338).
    """
    mu = correlate(y, window, mode="nearest")
    sigma = np.sqrt(np.abs(correlate(y * y, window, mode="nearest") - mu * mu))
    side = window.shape[0]
    flat = maximum_filter(y, side, mode="nearest") == minimum_filter(y, side, mode="nearest")
    return np.where(flat, 0.0, (y - mu) / (sigma + 1))


def _y_plane(image):
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"NIQE needs a uint8 image (got {img.dtype})")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim == 3 and img.shape[2] == 3:
        return matlab_y(img)
    raise ValueError(f"NIQE needs an HxW grey or HxWx3 RGB image (got shape {img.shape})")


def niqe(image):
    """NIQE of a uint8 RGB (HxWx3) or grey (HxW) image: a float, lower = more natural.

    Raises:
        ValueError: one line, when the image is not uint8 grey/RGB, is smaller than one 96x96 block,
            or is too flat for the fit (fewer than two blocks with local contrast of both signs;
            an image of a single block needs that one).
    """
    y = _y_plane(image)
    h, w = y.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh == 0 or nw == 0:
        raise ValueError(f"NIQE needs at least one {BLOCK}x{BLOCK} block; the image is {w}x{h}")
    y = y[:nh * BLOCK, :nw * BLOCK]
    mu_p, cov_p, window = pristine_model()
    feats = []
    for scale in (1, 2):
        feats.append(block_features(mscn(y, window), BLOCK // scale))
        if scale == 1:
            y = imresize_matlab(y / 255.0, 0.5) * 255.0
    return _quality(np.concatenate(feats, axis=1), mu_p, cov_p)


def _quality(feat, mu_p, cov_p):
    """Eq. 10: the distance between the pristine MVG and the image's (nanmean, nancov as MATLAB)."""
    complete = feat[~np.isnan(feat).any(axis=1)]
    if len(feat) == 1 and len(complete) == 1:
        # one block: MATLAB's nancov of a row vector is the variance of its 36 values (a scalar)
        cov = np.var(complete[0], ddof=1)
    elif len(complete) >= 2:
        cov = np.cov(complete, rowvar=False)
    else:
        raise ValueError(f"NIQE is undefined for this image: {len(complete)} of its {len(feat)} blocks have "
                         "local contrast of both signs (a flat image?)")
    d = mu_p - np.nanmean(feat, axis=0)
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d))
