"""Realistic degradations: how a training HR crop becomes its LR (blur, downscaling, noise, JPEG).

The model (after Real-ESRGAN, Wang et al. 2021, simplified so that the LR/HR geometry stays exact) runs
one round, or two with probability `second_order_p`. Each round, on uint8 images (as if the image
were saved between steps):
  1. blur, with probability `blur_p`: a Gaussian kernel of odd side in `blur_sizes`, isotropic or
     (probability `anisotropic_p`) anisotropic with two sigmas and a random rotation, sigmas in
     `blur_sigma` pixels of the image being blurred;
  2. resize with a kernel drawn from `resize_kernels` (Pillow's antialiased bicubic, bilinear, or box
     = area averaging). One round goes straight to HR/scale; two rounds go first to HR/m (m uniform in
     [1, scale]), then to HR/scale. Area is drawn only at integer ratios (a box at a non-integer
     ratio moves sharp edges by up to a third of a pixel), so second-order resizes are bicubic or bilinear;
  3. noise, with probability `noise_p`: Poisson (probability `poisson_p`; a pixel of v grey levels
     gets (Poisson(v) - v) x a scale in `poisson_scale`), else Gaussian with a sigma in `noise_sigma`
     grey levels; the same noise on the three channels with probability `grey_noise_p`, else per channel;
  4. JPEG, with probability `jpeg_p`, at a quality in `jpeg_quality` (Pillow, 4:2:0 chroma).

Geometry: Pillow maps output pixel i to input position (i + 0.5) * in / out - 0.5 (pixel centres, as
MATLAB imresize), so two resizes compose to the single HR -> HR/scale map, and every blur kernel is
point-symmetric: the LR stays aligned with its HR crop exactly as bicubic's does. With blur, noise
and JPEG off and the bicubic kernel, `degrade` is sr_keras.data.imresize.downscale.

Every draw comes from numpy.random.default_rng(seed): the LR is a pure function of the HR, the scale,
the config and the seed (training derives the seed from its own seed, the batch and the example).

`EvalDegradation` is the fixed degradation of `evaluate.py --degrade noise=S,jpeg=Q`.
"""
import dataclasses
import io
import zlib

import numpy as np
from PIL import Image
from scipy import signal

from sr_keras.core.errors import UserError
from sr_keras.data import imresize

RESIZE_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "area": Image.BOX}
# BT.601 luma weights: grey Poisson noise follows the brightness, not each channel's level
_LUMA = np.array([0.299, 0.587, 0.114])


def _check_range(name, value, low, high):
    lo, hi = value
    if not low <= lo <= hi <= high:
        raise ValueError(f"{name} must be a (low, high) range within [{low}, {high}]. Received: {name}={value!r}")


@dataclasses.dataclass(frozen=True)
class DegradationConfig:
    """The random degradation of training crops (module docstring); the defaults are the "realistic"
    preset (docs/degradations.md), milder than Real-ESRGAN's so that nearly clean LR stays in the
    training distribution (3% of crops get neither noise nor JPEG).

    Args:
        blur_p: probability of a Gaussian blur before each resize.
        blur_sizes: (smallest, largest) odd kernel side in pixels.
        blur_sigma: (low, high) Gaussian sigma in pixels of the image being blurred.
        anisotropic_p: probability that a blur kernel is anisotropic (two sigmas, rotated).
        resize_kernels: ((name, weight), ...) of the resize kernels, names from RESIZE_FILTERS.
        noise_p: probability of noise after each resize.
        noise_sigma: (low, high) Gaussian noise sigma in grey levels (of 255).
        poisson_p: probability that the noise is Poisson rather than Gaussian.
        poisson_scale: (low, high) factor on Poisson noise (1: a pixel of v grey levels gets sigma sqrt(v)).
        grey_noise_p: probability that the noise is the same on all channels.
        jpeg_p: probability of JPEG compression at the end of each round.
        jpeg_quality: (low, high) JPEG quality, integers in [1, 100].
        second_order_p: probability of a second round (Real-ESRGAN's second-order degradation).
    """

    blur_p: float = 0.5
    blur_sizes: tuple = (7, 21)
    blur_sigma: tuple = (0.2, 1.5)
    anisotropic_p: float = 0.5
    resize_kernels: tuple = (("bicubic", 0.5), ("bilinear", 0.25), ("area", 0.25))
    noise_p: float = 0.8
    noise_sigma: tuple = (1.0, 12.0)
    poisson_p: float = 0.3
    poisson_scale: tuple = (0.05, 0.8)
    grey_noise_p: float = 0.4
    jpeg_p: float = 0.8
    jpeg_quality: tuple = (30, 95)
    second_order_p: float = 0.2

    def __post_init__(self):
        for name in ("blur_p", "anisotropic_p", "noise_p", "poisson_p", "grey_noise_p", "jpeg_p", "second_order_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]. Received: {name}={getattr(self, name)!r}")
        _check_range("blur_sizes", self.blur_sizes, 1, 99)
        if any(s % 2 == 0 for s in self.blur_sizes):
            raise ValueError(f"blur_sizes must be odd (a centred kernel). Received: blur_sizes={self.blur_sizes!r}")
        _check_range("blur_sigma", self.blur_sigma, 0.01, 50.0)
        _check_range("noise_sigma", self.noise_sigma, 0.0, 255.0)
        _check_range("poisson_scale", self.poisson_scale, 0.0, 10.0)
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        names = [k for k, _ in self.resize_kernels]
        weights = [w for _, w in self.resize_kernels]
        if not names or any(k not in RESIZE_FILTERS for k in names) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"resize_kernels must be (name, weight) pairs with names from {tuple(RESIZE_FILTERS)} "
                             f"and a positive total weight. Received: resize_kernels={self.resize_kernels!r}")

    def to_dict(self):
        """JSON-ready values (lists for the tuples), e.g. for a model card."""
        return _json_ready(dataclasses.asdict(self))


# --degradation's names: bicubic (None: the data's own LR), realistic (the defaults above) and mild: the
# light noise and JPEG of phone photographs, rare weak blur, mostly bicubic downscaling and one round, so
# that clean and nearly clean LR stay common (about 1 crop in 11 gets neither noise nor JPEG) and a model
# fine-tuned on it keeps its gain on clean bicubic LR (docs/degradations.md)
PRESETS = {
    "bicubic": None,
    "realistic": DegradationConfig(),
    "mild": DegradationConfig(blur_p=0.1, blur_sigma=(0.2, 1.0), noise_p=0.7, noise_sigma=(0.0, 10.0),
                              resize_kernels=(("bicubic", 0.8), ("bilinear", 0.1), ("area", 0.1)),
                              poisson_p=0.2, poisson_scale=(0.05, 0.5), grey_noise_p=0.3, jpeg_p=0.7,
                              jpeg_quality=(40, 95), second_order_p=0.0),
    # phone: nearly every crop carries sensor noise and JPEG (1 in 100 gets neither), for models that are
    # meant for shared photographs first; it trades some of the gain on clean LR for denoising
    "phone": DegradationConfig(blur_p=0.05, blur_sigma=(0.2, 1.0), noise_p=0.9, noise_sigma=(1.0, 12.0),
                               resize_kernels=(("bicubic", 0.8), ("bilinear", 0.1), ("area", 0.1)),
                               poisson_p=0.1, poisson_scale=(0.05, 0.5), grey_noise_p=0.2, jpeg_p=0.9,
                               jpeg_quality=(30, 95), second_order_p=0.0),
}


def _json_ready(value):
    if isinstance(value, (tuple, list)):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    return value


def resolve(degradation):
    """None (LR from the data, today's bicubic pipeline) or a DegradationConfig, from None, a preset
    name of PRESETS ("bicubic" -> None, "realistic" -> DegradationConfig(), "mild", "phone") or a DegradationConfig."""
    if degradation is None or isinstance(degradation, DegradationConfig):
        return degradation
    if degradation in PRESETS:
        return PRESETS[degradation]
    raise UserError(f"degradation {degradation!r} (--degradation): choose one of {', '.join(PRESETS)}")


# ---------------------------------------------------------------- the steps (uint8 in, uint8 out)

def _u8(x):
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def gaussian_kernel(size, sigma_x, sigma_y=None, angle=0.0):
    """Normalised size x size Gaussian, sigma_x along `angle` (radians from the x axis), sigma_y across;
    point-symmetric about its centre, so blurring moves no image content."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    r = np.arange(size, dtype=np.float64) - size // 2
    x, y = np.meshgrid(r, r)
    u = np.cos(angle) * x + np.sin(angle) * y
    v = -np.sin(angle) * x + np.cos(angle) * y
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def blur(img, kernel):
    """uint8 HxWxC convolved with an odd square kernel, borders reflected. By FFT in float32: direct
    convolution of a 21x21 kernel takes ~20x longer on a 180-pixel crop, float64 FFT twice as long."""
    p = kernel.shape[0] // 2
    x = np.pad(img.astype(np.float32), ((p, p), (p, p), (0, 0)), mode="reflect")
    return _u8(signal.fftconvolve(x, kernel.astype(np.float32)[..., None], mode="valid", axes=(0, 1)))


def resize(img, size, kernel="bicubic"):
    """uint8 HxWx3 resized to (height, width) with Pillow's antialiased kernel of RESIZE_FILTERS."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(size[::-1], RESIZE_FILTERS[kernel]))


def gaussian_noise(img, sigma, rng, grey=False):
    """uint8 image plus Gaussian noise of `sigma` grey levels, per channel or (grey) the same on all."""
    shape = img.shape[:2] + (1,) if grey else img.shape
    return _u8(img + rng.normal(0.0, sigma, shape))


def poisson_noise(img, scale, rng, grey=False):
    """uint8 image plus (Poisson(v) - v) * scale at each level v (of the luma with grey)."""
    x = img.astype(np.float64)
    v = (x @ _LUMA)[..., None] if grey else x
    return _u8(x + (rng.poisson(v) - v) * scale)


def jpeg(img, quality):
    """uint8 RGB image through a JPEG round trip at `quality` (Pillow's encoder, 4:2:0 chroma)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------- the random model

def _uniform(rng, bounds):
    return rng.uniform(bounds[0], bounds[1])


def _random_kernel(config, rng):
    lo, hi = config.blur_sizes
    size = 2 * rng.integers(lo // 2, hi // 2 + 1) + 1
    sigma_x = _uniform(rng, config.blur_sigma)
    if rng.random() < config.anisotropic_p:
        return gaussian_kernel(size, sigma_x, _uniform(rng, config.blur_sigma), rng.uniform(0.0, np.pi))
    return gaussian_kernel(size, sigma_x)


def _round(img, size, config, rng):
    """One round of the model: blur, resize to `size`, noise, JPEG (each drawn from `rng`)."""
    if rng.random() < config.blur_p:
        img = blur(img, _random_kernel(config, rng))
    exact = img.shape[0] % size[0] == 0 and img.shape[1] % size[1] == 0
    kernels = [(k, w) for k, w in config.resize_kernels if exact or k != "area"] or [("bicubic", 1.0)]
    weights = np.array([w for _, w in kernels], np.float64)
    img = resize(img, size, kernels[rng.choice(len(kernels), p=weights / weights.sum())][0])
    if rng.random() < config.noise_p:
        grey = rng.random() < config.grey_noise_p
        if rng.random() < config.poisson_p:
            img = poisson_noise(img, _uniform(rng, config.poisson_scale), rng, grey)
        else:
            img = gaussian_noise(img, _uniform(rng, config.noise_sigma), rng, grey)
    if rng.random() < config.jpeg_p:
        img = jpeg(img, rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    return img


def degrade(hr, scale, config, seed):
    """The LR of an HR image under a DegradationConfig.

    Args:
        hr: uint8 HxWx3; cropped at the bottom/right to a multiple of `scale` first.
        scale: the downscaling factor; the LR is (H // scale) x (W // scale), aligned with the HR.
        config: a DegradationConfig.
        seed: an int or a sequence of ints (numpy.random.SeedSequence entropy); the LR is a pure
            function of (hr, scale, config, seed).

    Returns:
        uint8 LR image.
    """
    rng = np.random.default_rng(seed)
    img = imresize.crop_to_multiple(np.asarray(hr, np.uint8), scale)
    h, w = img.shape[:2]
    sizes = [(h // scale, w // scale)]
    if rng.random() < config.second_order_p:
        m = rng.uniform(1.0, scale)
        sizes.insert(0, (max(h // scale, round(h / m)), max(w // scale, round(w / m))))
    for size in sizes:
        img = _round(img, size, config, rng)
    return img


# ---------------------------------------------------------------- evaluation: --degrade noise=S,jpeg=Q

@dataclasses.dataclass(frozen=True)
class EvalDegradation:
    """A fixed degradation of evaluation LR images: Gaussian noise of sigma `noise` grey levels (per
    channel), then JPEG at quality `jpeg` (None: no JPEG). Seeded per image by its name.

    Args:
        noise: Gaussian noise sigma in grey levels (0: none).
        jpeg: JPEG quality in [1, 100], or None.
    """

    noise: float = 0.0
    jpeg: int | None = None

    def spec(self):
        """The --degrade value that gives this degradation, e.g. "noise=5,jpeg=75"."""
        parts = [f"noise={self.noise:g}"] if self.noise else []
        return ",".join(parts + ([f"jpeg={self.jpeg}"] if self.jpeg is not None else []))

    def describe(self):
        parts = [f"Gaussian noise sigma {self.noise:g} grey levels"] if self.noise else []
        return ", then ".join(parts + ([f"JPEG quality {self.jpeg}"] if self.jpeg is not None else []))

    def to_dict(self):
        return {"noise": self.noise, "jpeg": self.jpeg, "spec": self.spec()}

    def apply(self, lr, name):
        """The degraded uint8 LR of the image called `name` (its seed is crc32 of the name)."""
        rng = np.random.default_rng(zlib.crc32(str(name).encode("utf-8")))
        if self.noise:
            lr = gaussian_noise(lr, self.noise, rng)
        return lr if self.jpeg is None else jpeg(lr, self.jpeg)


def parse_degrade(spec):
    """EvalDegradation of "noise=S,jpeg=Q" (either part may be left out); UserError about `degrade`
    ("degrade 'blur=2': expected ...")."""
    example = "e.g. noise=5,jpeg=75"
    values = {}
    for part in str(spec).split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in ("noise", "jpeg"):
            raise UserError(f"'{spec}': expected noise=S and/or jpeg=Q, comma-separated ({example})",
                            argument="degrade")
        if key in values:
            raise UserError(f"'{spec}': {key} is given twice", argument="degrade")
        values[key] = value
    try:
        noise = float(values.get("noise", 0))
    except ValueError:
        noise = -1.0
    if not 0.0 <= noise <= 255.0:
        raise UserError(f"'{spec}': noise={values['noise']} must be a number of grey levels in [0, 255]",
                        argument="degrade")
    quality = values.get("jpeg")
    if quality is not None and not (quality.isdigit() and 1 <= int(quality) <= 100):
        raise UserError(f"'{spec}': jpeg={quality} must be an integer quality in [1, 100]", argument="degrade")
    if not noise and quality is None:
        raise UserError(f"'{spec}' degrades nothing: give noise above 0 or a jpeg quality ({example})",
                        argument="degrade")
    return EvalDegradation(noise=noise, jpeg=None if quality is None else int(quality))
