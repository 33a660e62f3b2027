"""sr_keras.evaluation.metrics against hand-computed values: the Y formula, PSNR/SSIM on Y, border crop, rounding."""
import math

import numpy as np
import pytest
import tensorflow as tf

from sr_keras.evaluation import metrics

Y_SPAN = 65.481 + 128.553 + 24.966  # = 219: Y moves 219/255 per grey level


def grey(value, size=32):
    return np.full((size, size, 3), value, np.uint8)


def photo(size=48, seed=0):
    """A textured uint8 image (smooth gradient plus noise), away from 0 and 255 so offsets do not clip."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    base = 60 + 80 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None] + 40
    return np.clip(base + rng.normal(0, 10, (size, size, 3)), 20, 220).astype(np.uint8)


@pytest.mark.parametrize("rgb,y", [
    ((0, 0, 0), 16.0), ((255, 255, 255), 235.0), ((255, 0, 0), 16 + 65.481),
    ((0, 255, 0), 16 + 128.553), ((0, 0, 255), 16 + 24.966), ((128, 128, 128), 16 + 219 * 128 / 255),
])
def test_y_formula_on_pure_colours(rgb, y):
    img = np.array(rgb, np.uint8).reshape(1, 1, 3)
    out = metrics.rgb_to_y(img)
    assert out.dtype == np.float64
    assert out[0, 0] == pytest.approx(y, abs=1e-9)


def test_identical_images_give_infinite_psnr_and_ssim_one():
    img = photo()
    assert metrics.psnr_y(img, img.copy(), 4) == math.inf
    assert metrics.ssim_y(img, img.copy(), 4) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("offset", [1, 3, 10])
def test_constant_grey_offset_gives_closed_form_psnr(offset):
    hr = photo()
    sr = hr + np.uint8(offset)
    # every pixel's Y differs by offset * 219 / 255, so MSE = that squared
    expected = 20 * math.log10(255.0 / (offset * Y_SPAN / 255.0))
    assert metrics.psnr_y(hr, sr, 4) == pytest.approx(expected, abs=1e-9)


def test_offset_in_one_channel_uses_that_channels_weight():
    hr = photo()
    sr = hr.copy()
    sr[..., 1] += 5  # green only: Y moves 5 * 128.553 / 255
    expected = 20 * math.log10(255.0 / (5 * 128.553 / 255.0))
    assert metrics.psnr_y(hr, sr, 2) == pytest.approx(expected, abs=1e-9)


def test_single_pixel_error_hand_computed():
    hr = grey(100, 20)
    sr = hr.copy()
    sr[10, 10] = (110, 110, 110)
    n = (20 - 2 * 3) ** 2  # 3-pixel crop leaves a 14x14 region
    mse = (10 * Y_SPAN / 255.0) ** 2 / n
    assert metrics.psnr_y(hr, sr, 3) == pytest.approx(10 * math.log10(255.0 ** 2 / mse), abs=1e-9)


def test_ssim_of_constant_images_is_the_luminance_term():
    # With zero variance the contrast/structure term is c2/c2 = 1, leaving (2ab + c1) / (a^2 + b^2 + c1).
    a, b = 16 + 100 * Y_SPAN / 255, 16 + 130 * Y_SPAN / 255
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim_y(grey(130), grey(100), 4) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("crop", [2, 4])
def test_border_crop_really_excludes_the_border(crop):
    hr = photo()
    sr = hr.copy()
    # wreck exactly `crop` pixels on every side
    sr[:crop] = 255 - sr[:crop]
    sr[-crop:] = 255 - sr[-crop:]
    sr[:, :crop] = 255 - sr[:, :crop]
    sr[:, -crop:] = 255 - sr[:, -crop:]
    assert metrics.psnr_y(hr, sr, crop) == math.inf
    assert metrics.ssim_y(hr, sr, crop) == pytest.approx(1.0, abs=1e-12)
    # one pixel less of crop and the wrecked ring is scored
    assert metrics.psnr_y(hr, sr, crop - 1) < 30
    assert metrics.ssim_y(hr, sr, crop - 1) < 0.999


def test_ssim_orders_by_degradation():
    hr = photo()
    rng = np.random.default_rng(1)
    light = np.clip(hr + rng.normal(0, 3, hr.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(hr + rng.normal(0, 25, hr.shape), 0, 255).astype(np.uint8)
    assert 1 > metrics.ssim_y(hr, light, 4) > metrics.ssim_y(hr, heavy, 4) > 0
    assert metrics.psnr_y(hr, light, 4) > metrics.psnr_y(hr, heavy, 4)


def test_float_to_uint8_rounds_and_clips():
    x = np.array([0.4, 0.6, 127.5 - 0.01, 127.5 + 0.01, 254.6, 300.0, -5.0]) / 255.0
    assert metrics.float_to_uint8(x).tolist() == [0, 1, 127, 128, 255, 255, 0]
    assert metrics.float_to_uint8(x).dtype == np.uint8


def test_tf_versions_match_scikit_image():
    hr = photo(48, 2)
    rng = np.random.default_rng(3)
    srs = [np.clip(hr + rng.normal(0, s, hr.shape), 0, 255).astype(np.uint8) for s in (2, 8, 20)]
    sr_f = tf.constant(np.stack(srs).astype(np.float32) / 255.0)
    hr_f = tf.constant(np.stack([hr] * 3).astype(np.float32) / 255.0)
    p = metrics.tf_psnr_y(hr_f, sr_f, 4).numpy()
    s = metrics.tf_ssim_y(hr_f, sr_f, 4).numpy()
    for i, sr in enumerate(srs):
        assert p[i] == pytest.approx(metrics.psnr_y(hr, sr, 4), abs=1e-3)
        assert s[i] == pytest.approx(metrics.ssim_y(hr, sr, 4), abs=1e-4)


def test_tf_psnr_quantises_like_evaluation():
    # 0.3/255 off everywhere rounds back to the same uint8 levels: identical after quantisation
    hr = photo(32, 4).astype(np.float32) / 255.0
    sr = hr + 0.3 / 255.0
    assert metrics.tf_psnr_y(tf.constant(hr[None]), tf.constant(sr[None]), 2).numpy()[0] >= 99.0


def test_keras_metrics_average_over_images():
    hr = photo(32, 5)
    sr1, sr2 = hr + np.uint8(2), hr + np.uint8(6)
    m = metrics.PSNRY(2)
    assert m.name == "psnr"
    m.update_state(tf.constant(np.stack([hr, hr]) / 255.0), tf.constant(np.stack([sr1, sr2]) / 255.0))
    want = (metrics.psnr_y(hr, sr1, 2) + metrics.psnr_y(hr, sr2, 2)) / 2
    assert float(m.result()) == pytest.approx(want, abs=1e-3)
    assert metrics.SSIMY(2).name == "ssim"


def test_numpy_metrics_take_the_reference_first(monkeypatch):
    # PSNR and SSIM are symmetric, so only the calls into scikit-image show which image is the reference
    hr, sr = photo(32, 6), photo(32, 7)
    seen = {}

    def reference_of(name):
        def record(ref, test, **kwargs):
            seen[name] = ref
            return 0.0
        return record

    monkeypatch.setattr(metrics, "peak_signal_noise_ratio", reference_of("psnr"))
    monkeypatch.setattr(metrics, "structural_similarity", reference_of("ssim"))
    metrics.psnr_y(hr=hr, sr=sr, crop=4)
    metrics.ssim_y(hr=hr, sr=sr, crop=4)
    want = metrics.rgb_to_y(hr)[4:-4, 4:-4]
    np.testing.assert_array_equal(seen["psnr"], want)
    np.testing.assert_array_equal(seen["ssim"], want)


def test_keras_metric_passes_y_true_then_y_pred(monkeypatch):
    calls = []

    def spy(hr, sr, crop):
        calls.append((float(hr[0, 0, 0, 0]), float(sr[0, 0, 0, 0]), crop))
        return tf.zeros([1])

    monkeypatch.setattr(metrics, "tf_psnr_y", spy)
    metrics.PSNRY(3).update_state(y_true=tf.fill([1, 8, 8, 3], 0.25), y_pred=tf.fill([1, 8, 8, 3], 0.75))
    assert calls == [(0.25, 0.75, 3)]


@pytest.mark.parametrize("scale,side", [(1, 13), (2, 16), (3, 18), (4, 20), (8, 32)])
def test_min_scorable_size_fits_the_ssim_window_after_the_crop(scale, side):
    # 11 + 2 * scale pixels, rounded up to a multiple of the scale (x4: 19 -> 20)
    assert metrics.min_scorable_size(scale) == side


def test_ssim_refuses_images_the_window_does_not_fit():
    big, small = photo(19, 8), photo(18, 8)  # at crop 4: 11x11 (one window) and 10x10 (none)
    assert 0 < metrics.ssim_y(big, big // 2, 4) < 1
    with pytest.raises(ValueError, match=r"needs 11 pixels a side after the 4-pixel border crop\. "
                                         r"Received: hr of 18x18 with crop=4"):
        metrics.ssim_y(small, small // 2, 4)


def test_tf_ssim_is_finite_at_the_minimum_size():
    hr = photo(metrics.min_scorable_size(4), 9)
    sr = hr // 2
    s = metrics.tf_ssim_y(tf.constant(hr[None] / 255.0), tf.constant(sr[None] / 255.0), 4).numpy()[0]
    assert s == pytest.approx(metrics.ssim_y(hr, sr, 4), abs=1e-4)
