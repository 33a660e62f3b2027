"""PSNR and SSIM on the Y channel, the convention of BasicSR and the SR literature.

Convention: images are uint8 RGB (model outputs in [0, 1] are rounded, then clipped, to uint8 first);
Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1] (MATLAB rgb2ycbcr, BT.601), in float64
on the [0, 255] scale; `crop` pixels (= the scale) are removed from every border; PSNR with
data_range 255; SSIM with an 11x11 Gaussian window, sigma 1.5, population covariance, K1 0.01,
K2 0.03, data_range 255, averaged over the 'valid' region (scikit-image's structural_similarity).
The batch versions (tf_psnr_y, tf_ssim_y: keras.ops, so any Keras backend) follow the same convention
in float32 for in-training validation; they agree with the scikit-image ones to about 1e-4 dB / 1e-5 SSIM.

Argument order is Keras' `(y_true, y_pred)`: the HR reference first, then the SR image, as in
sr_keras.train.losses. An image is scorable when SSIM's window fits after the border crop
(`min_scorable_size`).
"""
import keras
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

_Y_WEIGHTS = (65.481, 128.553, 24.966)
SSIM_WINDOW = 11  # the Gaussian window's side: sigma 1.5 truncated at 3.5 sigma, as Wang et al. 2004


def min_scorable_size(scale):
    """Smallest HR side, a multiple of `scale`, that PSNR/SSIM can score at `scale`.

    SSIM's window must fit inside the image after `scale` pixels are cropped from every border, and an
    HR image is trimmed to a multiple of the scale to pair with its LR image.

    Args:
        scale: the upscaling factor, also the border crop.

    Returns:
        The side in HR pixels (20 at x4: 11 + 2 * 4 = 19, rounded up to a multiple of 4).
    """
    need = SSIM_WINDOW + 2 * scale
    return -(-need // scale) * scale


def float_to_uint8(img):
    """Float image in [0, 1] -> uint8, rounded then clipped."""
    return np.clip(np.round(np.asarray(img, np.float64) * 255.0), 0, 255).astype(np.uint8)


def rgb_to_y(img):
    """uint8 RGB -> float64 Y in [16, 235]."""
    x = np.asarray(img, np.float64) / 255.0
    return 16.0 + x[..., 0] * _Y_WEIGHTS[0] + x[..., 1] * _Y_WEIGHTS[1] + x[..., 2] * _Y_WEIGHTS[2]


def _cropped_y(img, crop):
    y = rgb_to_y(img)
    return y[crop:-crop, crop:-crop] if crop > 0 else y


def psnr_y(hr, sr, crop):
    """PSNR (dB) of uint8 RGB `sr` against the reference `hr` on Y, `crop` border pixels removed; inf if
    identical."""
    ref, test = _cropped_y(hr, crop), _cropped_y(sr, crop)
    if np.array_equal(ref, test):
        return float("inf")
    return float(peak_signal_noise_ratio(ref, test, data_range=255.0))


def ssim_y(hr, sr, crop):
    """SSIM of uint8 RGB `sr` against the reference `hr` on Y, `crop` border pixels removed.

    Raises ValueError when the window does not fit after the crop (see `min_scorable_size`).
    """
    ref, test = _cropped_y(hr, crop), _cropped_y(sr, crop)
    if min(ref.shape) < SSIM_WINDOW:
        h, w = np.shape(hr)[:2]
        raise ValueError(f"SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window needs {SSIM_WINDOW} pixels a side after "
                         f"the {crop}-pixel border crop. Received: hr of {w}x{h} with crop={crop}")
    return float(structural_similarity(ref, test, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                       win_size=SSIM_WINDOW, use_sample_covariance=False))


def _tf_y(img, crop):
    """Float [0,1] RGB batch -> Y on [0, 255] after uint8 quantisation, borders cropped."""
    q = keras.ops.clip(keras.ops.round(keras.ops.cast(img, "float32") * 255.0), 0.0, 255.0) / 255.0
    y = 16.0 + keras.ops.tensordot(q, keras.ops.convert_to_tensor(_Y_WEIGHTS, "float32"), axes=[[-1], [0]])
    return y[:, crop:-crop, crop:-crop] if crop > 0 else y


def tf_psnr_y(hr, sr, crop):
    """[N] PSNR values (dB) of float [0,1] batches, `sr` against `hr`; capped at 100 dB for identical images."""
    a, b = _tf_y(hr, crop), _tf_y(sr, crop)
    mse = keras.ops.mean(keras.ops.square(a - b), axis=[1, 2])
    ln10 = keras.ops.log(keras.ops.convert_to_tensor(10.0, "float32"))
    return 10.0 * keras.ops.log(255.0 ** 2 / keras.ops.maximum(mse, 255.0 ** 2 * 1e-10)) / ln10


def _gaussian_window(size=SSIM_WINDOW, sigma=1.5):
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return keras.ops.convert_to_tensor(np.outer(g, g)[:, :, None, None], "float32")


def tf_ssim_y(hr, sr, crop):
    """[N] SSIM values of float [0,1] batches, `sr` against `hr`, same window and constants as scikit-image.

    Images smaller than `min_scorable_size` give NaN (no window fits); check sizes before.
    """
    a, b = _tf_y(hr, crop)[..., None], _tf_y(sr, crop)[..., None]
    w = _gaussian_window()

    def filt(x):
        return keras.ops.conv(x, w, strides=1, padding="valid")

    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    # VALID filtering = scikit-image's map with (win_size - 1) // 2 pixels cropped from each border
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a * mu_a
    var_b = filt(b * b) - mu_b * mu_b
    cov = filt(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return keras.ops.mean(s, axis=[1, 2, 3])


class _MeanOverImages(keras.metrics.Mean):
    def __init__(self, crop, name, fn, **kwargs):
        super().__init__(name=name, **kwargs)
        self.crop = int(crop)
        self._fn = fn

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = self._fn(keras.ops.cast(y_true, "float32"), keras.ops.cast(y_pred, "float32"), self.crop)
        return super().update_state(values, sample_weight)

    def get_config(self):
        return {"crop": self.crop, "name": self.name}


class PSNRY(_MeanOverImages):
    """Mean Y-channel PSNR over images (uint8-quantised, `crop` border pixels removed)."""

    def __init__(self, crop, name="psnr", **kwargs):
        super().__init__(crop, name, tf_psnr_y, **kwargs)


class SSIMY(_MeanOverImages):
    """Mean Y-channel SSIM over images (11x11 Gaussian window, sigma 1.5)."""

    def __init__(self, crop, name="ssim", **kwargs):
        super().__init__(crop, name, tf_ssim_y, **kwargs)
