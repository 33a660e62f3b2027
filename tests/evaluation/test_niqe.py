"""sr_keras.niqe (sr_keras.evaluation.perception): a pinned value, the vectorised fits against a per-block loop
written out as the MATLAB release does it, MATLAB's Y and imresize, and the errors."""
import fnmatch
import os
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import skimage.data
from scipy.ndimage import gaussian_filter
from scipy.special import gamma

from sr_keras.evaluation import perception
import sr_keras


def test_pinned_value_on_astronaut():
    # sr_keras.niqe gives 5.72957 on Set14's baboon (MATLAB R2021a: 5.72957338); this pins the same
    # code on an image every checkout has.
    assert sr_keras.niqe(skimage.data.astronaut()) == pytest.approx(3.0644638, abs=1e-6)


def test_blur_raises_niqe():
    img = skimage.data.astronaut()
    blurred = np.clip(np.round(gaussian_filter(img.astype(float), (2, 2, 0))), 0, 255).astype(np.uint8)
    assert sr_keras.niqe(blurred) > sr_keras.niqe(img) + 2


def test_grey_is_the_y_path():
    rgb = skimage.data.coffee()
    y = perception.matlab_y(rgb).astype(np.uint8)
    assert sr_keras.niqe(y) == sr_keras.niqe(rgb)
    assert sr_keras.niqe(y[..., None]) == sr_keras.niqe(rgb)


@pytest.mark.parametrize("rgb,y", [((0, 0, 0), 16), ((255, 255, 255), 235), ((255, 0, 0), 81),
                                   ((0, 255, 0), 145), ((0, 0, 255), 41), ((10, 200, 30), 122)])
def test_matlab_y_is_rounded_rgb2ycbcr(rgb, y):
    # e.g. (10, 200, 30): 16 + (654.81 + 25710.6 + 748.98) / 255 = 122.33 -> 122
    assert perception.matlab_y(np.array(rgb, np.uint8).reshape(1, 1, 3))[0, 0] == y


def test_imresize_half_keeps_a_ramp_at_matlab_sample_positions():
    # MATLAB samples output pixel j (0-based) at input coordinate 2j + 0.5; the cubic kernel keeps a
    # linear ramp exactly away from the mirrored borders, so a wrong offset or kernel width shows.
    ramp = np.tile(np.arange(40, dtype=float), (6, 1))
    out = perception.imresize_matlab(ramp, 0.5)
    assert out.shape == (3, 20)
    np.testing.assert_allclose(out[:, 2:-2], np.tile(2 * np.arange(2, 18) + 0.5, (3, 1)), atol=1e-12)
    # the 8-tap antialiased kernel: the first output mixes mirrored pixels (0 is used twice)
    assert out[0, 0] == pytest.approx(ref_resize_row(np.arange(40, dtype=float))[0], abs=1e-12)


def ref_resize_row(x):
    """MATLAB imresize(x, 0.5) of one row, pixel by pixel as its `contributions` function writes it."""
    n = len(x)
    out = []
    for j in range(1, n // 2 + 1):
        u = 2 * j - 0.5
        taps = np.arange(np.floor(u - 4), np.floor(u - 4) + 10)
        t = np.abs(u - taps) / 2
        k = np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1, np.where(t <= 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0)) / 2
        mirrored = [int(i) - 1 if 1 <= i <= n else (-int(i) if i < 1 else 2 * n - int(i)) for i in taps]
        out.append(np.dot(k / k.sum(), x[mirrored]))
    return np.array(out)


def test_imresize_matches_the_pixel_loop():
    x = np.random.default_rng(0).uniform(0, 255, 34)
    np.testing.assert_allclose(perception.imresize_matlab(x[None], 0.5)[0][:17], ref_resize_row(x), atol=1e-10)


# ---- the MATLAB release's per-block loop (estimateaggdparam, computefeature), for the vectorised fits
GAM = np.arange(0.2, 10.0005, 0.001)
R_GAM = gamma(2 / GAM) ** 2 / (gamma(1 / GAM) * gamma(3 / GAM))


def loop_aggd(vec):
    left = np.sqrt(np.mean(vec[vec < 0] ** 2))
    right = np.sqrt(np.mean(vec[vec > 0] ** 2))
    g = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
    rnorm = rhat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = GAM[np.argmin((R_GAM - rnorm) ** 2)]
    ratio = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return alpha, left * ratio, right * ratio


def loop_features(block):
    a, bl, br = loop_aggd(block.ravel())
    feat = [a, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
        a, bl, br = loop_aggd((block * np.roll(block, shift, axis=(0, 1))).ravel())
        feat += [a, (br - bl) * gamma(2 / a) / gamma(1 / a), bl, br]
    return feat


def test_vectorised_fits_equal_the_block_loop():
    y = perception.matlab_y(skimage.data.coffee()[:192, :288])
    _, _, window = perception.pristine_model()
    for side, img in ((96, y), (48, perception.imresize_matlab(y / 255.0, 0.5) * 255.0)):
        sd = perception.mscn(img, window)
        blocks = [sd[r:r + side, c:c + side] for r in range(0, sd.shape[0], side)
                  for c in range(0, sd.shape[1], side)]
        np.testing.assert_allclose(perception.block_features(sd, side), [loop_features(b) for b in blocks],
                                   rtol=1e-12, atol=1e-12)


def test_one_block_is_enough():
    assert np.isfinite(sr_keras.niqe(skimage.data.astronaut()[:96, :150]))


@pytest.mark.parametrize("shape", [(95, 300, 3), (300, 95), (40, 40, 3)])
def test_smaller_than_one_block_is_one_clear_error(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with pytest.raises(ValueError, match=r"needs at least one 96x96 block; the image is \d+x\d+$"):
        sr_keras.niqe(img)


@pytest.mark.parametrize("value", [0, 128])
def test_flat_image_is_one_clear_error(value):
    with pytest.raises(ValueError, match="NIQE is undefined for this image.*flat image"):
        sr_keras.niqe(np.full((200, 200, 3), value, np.uint8))


@pytest.mark.parametrize("img,what", [(np.zeros((100, 100, 3), np.float32), "uint8"),
                                      (np.zeros((100, 100, 4), np.uint8), "shape")])
def test_other_arrays_are_refused(img, what):
    with pytest.raises(ValueError, match=what):
        sr_keras.niqe(img)


def test_top_level_niqe_imports_no_tensorflow():
    code = ("import sys, numpy as np, sr_keras; from sr_keras import niqe; "
            "img = np.random.default_rng(0).integers(0, 256, (100, 100), dtype=np.uint8); "
            "assert niqe is sr_keras.niqe and np.isfinite(sr_keras.niqe(img)); "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_constant_neighbourhoods_give_exactly_zero():
    # a float64 filter leaves +-1e-14 there, which the AGGD fits would count as signed samples
    y = np.random.default_rng(0).uniform(0, 255, (60, 60)).round()
    y[20:40, 20:40] = 100
    sd = perception.mscn(y, perception.pristine_model()[2])
    assert (sd[23:37, 23:37] == 0).all() and (sd[:15, :15] != 0).all()


def test_the_pristine_model_is_installed_with_the_package():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        globs = tomllib.load(f)["tool"]["setuptools"]["package-data"]["sr_keras.evaluation"]
    assert any(fnmatch.fnmatch(os.path.basename(perception._PARAMS), g) for g in globs)
    mu, cov, window = perception.pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36) and window.shape == (7, 7)
