"""sr_keras.data.degradations and the realistic training pipeline: steps, geometry, seeds, every source."""
import os
import socket

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from sr_keras.core.errors import UserError
from sr_keras.data import degradations, imresize, loaders, pipeline, sources
from sr_keras.data.degradations import DegradationConfig

# blur, noise and JPEG off, bicubic only: the model reduces to the bicubic pipeline's downscale
CLEAN = DegradationConfig(blur_p=0.0, noise_p=0.0, jpeg_p=0.0, second_order_p=0.0,
                          resize_kernels=(("bicubic", 1.0),))


def _photo(name, h, w, y=0, x=0):
    return np.ascontiguousarray(getattr(skimage.data, name)()[y:y + h, x:x + w, :3])


def _u8(x):
    return np.round(np.asarray(x) * 255).astype(np.uint8)


def _centre_of_mass(img):
    w = img.astype(np.float64).sum(-1)
    ys, xs = np.indices(w.shape)
    return (w * ys).sum() / w.sum(), (w * xs).sum() / w.sum()


# ---------------------------------------------------------------- the steps

def test_gaussian_kernel_is_normalised_point_symmetric_with_its_sigmas_along_its_angle():
    k = degradations.gaussian_kernel(41, 2.0, 4.0, np.pi / 6)
    assert k.shape == (41, 41) and abs(k.sum() - 1) < 1e-12
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
    r = np.arange(41) - 20
    x, y = np.meshgrid(r, r)
    u, v = np.cos(np.pi / 6) * x + np.sin(np.pi / 6) * y, -np.sin(np.pi / 6) * x + np.cos(np.pi / 6) * y
    assert abs((k * u ** 2).sum() - 4.0) < 0.01 and abs((k * v ** 2).sum() - 16.0) < 0.05
    assert abs((k * u * v).sum()) < 1e-5  # uncorrelated along its axes (a wrong angle: about 5)


def test_blur_of_an_impulse_is_the_kernel_in_place():
    img = np.zeros((15, 17, 3), np.uint8)
    img[7, 9] = 255
    k = degradations.gaussian_kernel(5, 1.0, 0.5, 0.3)
    out = degradations.blur(img, k)
    expected = np.zeros((15, 17), np.float64)
    expected[5:10, 7:12] = 255 * k
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], np.round(expected).astype(np.uint8))


def test_area_resize_at_an_integer_ratio_averages_blocks():
    blocks = np.array([[10, 200], [37, 90]], np.uint8)
    img = np.repeat(np.repeat(blocks, 4, 0), 4, 1)[..., None].repeat(3, -1)
    img[0, 0], img[0, 1] = 14, 6  # mean of the first block stays 10
    out = degradations.resize(img, (2, 2), "area")
    np.testing.assert_array_equal(out[..., 0], blocks)


def test_noise_has_its_sigma_grey_noise_is_shared_by_channels():
    rng = np.random.default_rng(0)
    grey = np.full((128, 128, 3), 128, np.uint8)
    colour = degradations.gaussian_noise(grey, 10.0, rng).astype(float) - 128
    assert abs(colour.std() - 10) < 0.3 and not np.array_equal(colour[..., 0], colour[..., 1])
    mono = degradations.gaussian_noise(grey, 10.0, rng, grey=True).astype(float) - 128
    assert abs(mono.std() - 10) < 0.4 and np.array_equal(mono[..., 0], mono[..., 2])
    level = np.full((128, 128, 3), 100, np.uint8)
    shot = degradations.poisson_noise(level, 0.5, rng).astype(float) - 100
    assert abs(shot.std() - 0.5 * 10) < 0.2  # Poisson(100) has sigma 10, scaled by 0.5


def test_lower_jpeg_quality_loses_more():
    img = _photo("astronaut", 64, 64, 100, 150)
    err = [np.abs(degradations.jpeg(img, q).astype(int) - img).mean() for q in (30, 95)]
    assert degradations.jpeg(img, 30).shape == img.shape and err[0] > 2 * err[1] > 0


# ---------------------------------------------------------------- the model

def test_without_blur_noise_and_jpeg_it_is_the_bicubic_downscale():
    hr = _photo("coffee", 98, 101)  # cropped to 96x100 first, as imresize.downscale
    np.testing.assert_array_equal(degradations.degrade(hr, 4, CLEAN, 3), imresize.downscale(hr, 4))


@pytest.mark.parametrize("kernel", ["bicubic", "bilinear", "area"])
def test_first_order_keeps_an_impulse_centred_for_any_blur(kernel):
    """An HR block covering LR pixel (10, 13) stays centred on it exactly (point-symmetric kernels,
    resize sampling at pixel centres)."""
    hr = np.zeros((96, 96, 3), np.uint8)
    hr[40:44, 52:56] = 255
    config = DegradationConfig(blur_p=1.0, noise_p=0.0, jpeg_p=0.0, second_order_p=0.0, blur_sigma=(0.5, 3.0),
                               resize_kernels=((kernel, 1.0),))
    for seed in range(20):
        lr = degradations.degrade(hr, 4, config, seed)
        assert lr.shape == (24, 24, 3)
        np.testing.assert_allclose(_centre_of_mass(lr), (10, 13), atol=1e-9)


def test_second_order_keeps_an_impulse_centred_within_a_tenth_of_a_pixel():
    hr = np.zeros((96, 96, 3), np.uint8)
    hr[40:48, 52:60] = 255  # LR pixels 10-11 x 13-14: centre (10.5, 13.5)
    config = DegradationConfig(blur_p=1.0, noise_p=0.0, jpeg_p=0.0, second_order_p=1.0)
    errors = [np.abs(np.subtract(_centre_of_mass(degradations.degrade(hr, 4, config, s)), (10.5, 13.5))).max()
              for s in range(40)]
    assert max(errors) < 0.1 and np.mean(errors) < 0.03  # one HR pixel of shift would be 0.25


def test_same_seed_same_lr_other_seed_other_lr_input_untouched():
    hr = _photo("astronaut", 64, 64, 80, 180)
    copy = hr.copy()
    config = DegradationConfig()
    a, b = degradations.degrade(hr, 4, config, (7, 3, 1)), degradations.degrade(hr, 4, config, (7, 3, 1))
    others = [degradations.degrade(hr, 4, config, (7, 3, i)) for i in range(2, 6)]
    assert np.array_equal(a, b) and not any(np.array_equal(a, o) for o in others)
    assert np.array_equal(hr, copy)


def test_jpeg_comes_after_the_noise():
    """The LR is a JPEG decode, so JPEG at its quality again changes it little; noise added after the JPEG
    would stay in the LR, and a second JPEG would remove much of it."""
    hr = _photo("astronaut", 128, 128, 80, 180)
    config = DegradationConfig(blur_p=0.0, noise_p=1.0, poisson_p=0.0, noise_sigma=(20.0, 20.0), jpeg_p=1.0,
                               jpeg_quality=(40, 40), second_order_p=0.0, resize_kernels=(("bicubic", 1.0),))
    clean = degradations.jpeg(imresize.downscale(hr, 4), 40).astype(int)
    for seed in range(3):
        lr = degradations.degrade(hr, 4, config, seed)
        assert np.abs(lr.astype(int) - clean).mean() > 5  # the noise is in it
        assert np.abs(degradations.jpeg(lr, 40).astype(int) - lr).mean() < 1  # and JPEG came last (measured:
        # at most 0.4 grey levels; noise after JPEG leaves about 15)


def test_config_values_are_checked_and_presets_resolve():
    with pytest.raises(ValueError, match=r"Received: noise_p=1\.5"):
        DegradationConfig(noise_p=1.5)
    with pytest.raises(ValueError, match=r"Received: blur_sizes=\(7, 20\)"):
        DegradationConfig(blur_sizes=(7, 20))
    with pytest.raises(ValueError, match=r"Received: jpeg_quality=\(95, 30\)"):
        DegradationConfig(jpeg_quality=(95, 30))
    with pytest.raises(ValueError, match=r"Received: resize_kernels=\(\('lanczos', 1\.0\),\)"):
        DegradationConfig(resize_kernels=(("lanczos", 1.0),))
    assert degradations.resolve("bicubic") is None and degradations.resolve("realistic") == DegradationConfig()
    assert DegradationConfig().to_dict()["resize_kernels"] == [["bicubic", 0.5], ["bilinear", 0.25], ["area", 0.25]]
    with pytest.raises(UserError, match=r"^degradation 'heavy' \(--degradation\): choose one of bicubic, realistic, mild, phone$"):
        degradations.resolve("heavy")


def test_mild_preset_leaves_some_crops_clean_where_realistic_and_phone_leave_almost_none():
    hr = _photo("astronaut", 96, 96)
    clean = imresize.downscale(hr, 4)
    untouched = {name: np.mean([np.array_equal(degradations.degrade(hr, 4, degradations.resolve(name), (1, i)), clean)
                                for i in range(300)]) for name in ("mild", "realistic", "phone")}
    # mild: no blur (0.9) x bicubic (0.8) x no noise (0.3) x no JPEG (0.3) = 6.5% of crops;
    # realistic: 0.5 x 0.5 x 0.2 x 0.2 x no second round (0.8) = 0.8%; phone: 0.95 x 0.8 x 0.1 x 0.1 = 0.8%
    assert 0.03 < untouched["mild"] < 0.11 and untouched["realistic"] < 0.025 and untouched["phone"] < 0.025
    mild = degradations.resolve("mild")
    assert mild.second_order_p == 0 and mild.noise_sigma[1] <= 10 and mild.jpeg_quality == (40, 95)


# ---------------------------------------------------------------- evaluation degradation

def test_degrade_spec_parses_and_bad_values_are_one_line():
    d = degradations.parse_degrade("noise=5,jpeg=75")
    assert d == degradations.EvalDegradation(noise=5.0, jpeg=75) and d.spec() == "noise=5,jpeg=75"
    assert degradations.parse_degrade("jpeg=40").spec() == "jpeg=40"
    assert degradations.parse_degrade("noise=2.5").to_dict() == {"noise": 2.5, "jpeg": None, "spec": "noise=2.5"}
    for bad, needle in [("noise:5,jpeg=75", "expected noise=S and/or jpeg=Q"), ("blur=2", "expected noise=S"),
                        ("noise=-1", "noise=-1 must be"), ("noise=x", "noise=x must be"),
                        ("jpeg=0", "jpeg=0 must be an integer"), ("jpeg=7.5", "jpeg=7.5 must be"),
                        ("noise=1,noise=2", "noise is given twice"), ("noise=0", "degrades nothing")]:
        with pytest.raises(UserError, match=needle) as e:
            degradations.parse_degrade(bad)
        assert str(e.value).startswith(f"degrade '{bad}'") and "\n" not in str(e.value)


def test_eval_degradation_is_seeded_by_the_image_name():
    lr = _photo("chelsea", 40, 40, 100, 100)
    d = degradations.parse_degrade("noise=5,jpeg=75")
    a, b, c = d.apply(lr, "0851"), d.apply(lr, "0851"), d.apply(lr, "0852")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    noisy = degradations.parse_degrade("noise=5").apply(lr, "0851").astype(float) - lr
    assert 4 < noisy.std() < 6  # sigma 5, a little less where clipped


# ---------------------------------------------------------------- the training pipeline

@pytest.fixture(scope="module")
def div2k(tmp_path_factory):
    """DIV2K layout whose LR images are black: a degraded pipeline must not read them."""
    root = tmp_path_factory.mktemp("div2k")
    for k, (i, name) in enumerate([(1, "astronaut"), (2, "coffee"), (3, "chelsea"), (801, "rocket")]):
        part = "train" if i <= 800 else "valid"
        hr = _photo(name, 64 + 8 * k, 72, 40, 40)
        for path, img in ((f"DIV2K_{part}_HR/{i:04d}.png", hr),
                          (f"DIV2K_{part}_LR_bicubic/X4/{i:04d}x4.png", np.zeros_like(imresize.downscale(hr, 4)))):
            os.makedirs(root / os.path.dirname(path), exist_ok=True)
            Image.fromarray(img).save(root / path)
    return str(root)


def _batches(source, track, n, **kwargs):
    kwargs = {"batch_size": 3, "hr_crop": 32, "seed": 4, "augment_p": 0.5, **kwargs}
    return [(_u8(lr), _u8(hr)) for lr, hr in loaders.training_dataset(source, track, **kwargs).take(n)]


@pytest.mark.parametrize("track", ["bicubic_x4", "unknown_x4"])  # unknown_x4: no LR folder at all
def test_div2k_lr_is_made_from_the_augmented_hr_crop_not_read(div2k, track):
    for lr, hr in _batches(div2k, track, 3, degradation=CLEAN):
        assert lr.shape == (3, 8, 8, 3) and hr.shape == (3, 32, 32, 3)
        for l, h in zip(lr, hr):
            np.testing.assert_array_equal(l, imresize.downscale(h, 4))


def test_realistic_lr_is_degraded_but_aligned_with_its_hr(div2k):
    batches = _batches(div2k, "bicubic_x4", 4, hr_crop=64, degradation="realistic")
    pairs = [(l.astype(float), imresize.downscale(h, 4).astype(float)) for lr, hr in batches for l, h in zip(lr, hr)]
    assert sum(not np.array_equal(l, d) for l, d in pairs) >= 10  # of 12
    mse = {(dy, dx): sum(np.mean((l[2:-2, 2:-2] - np.roll(d, (dy, dx), (0, 1))[2:-2, 2:-2]) ** 2) for l, d in pairs)
           for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert min(mse, key=mse.get) == (0, 0)


def test_realistic_batches_repeat_and_resume_exactly(div2k):
    def epochs(start, count, seed=5, cache=None):
        return _batches(div2k, "bicubic_x4", count * 2, seed=seed, start_epoch=start, steps_per_epoch=2,
                        degradation="realistic", cache=cache)

    straight, resumed = epochs(0, 3), epochs(1, 2, cache="none")
    for (la, ha), (lb, hb) in zip(straight[2:], resumed):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(ha, hb)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(straight, epochs(0, 3, seed=6)))


def test_every_batch_and_example_draws_its_own_degradation():
    # one image exactly one crop in size, no augmentation: every example's HR crop is the same, so only
    # the degradation's seed (seed, batch, example) tells the LRs apart
    hr = _photo("astronaut", 32, 32, 100, 180)
    ds = pipeline.training_pipeline(lambda ks: [(None, hr) for _ in ks], [(8, 8)], scale=4, batch_size=2,
                                    lr_crop=8, augment_p=0.0, seed=3, start_batch=0,
                                    degradation=degradations.resolve("realistic"))
    batches = [(_u8(lr), _u8(hr_batch)) for lr, hr_batch in ds.take(3)]
    assert all(np.array_equal(h, hr) for _, hrs in batches for h in hrs)
    lrs = [lr for lr_batch, _ in batches for lr in lr_batch]  # batch 0 example 0, 0/1, 1/0, ...
    assert not any(np.array_equal(lrs[i], lrs[j]) for i in range(len(lrs)) for j in range(i))


def test_samples_and_hr_folders_take_a_degradation(tmp_path):
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(_photo(name, 48, 48, 60, 60)).save(tmp_path / f"{name}.png")
    for source in (str(tmp_path), "samples"):
        for lr, hr in _batches(source, "bicubic_x2", 2, degradation=CLEAN):
            assert lr.shape == (3, 16, 16, 3)
            for l, h in zip(lr, hr):
                np.testing.assert_array_equal(l, imresize.downscale(h, 2))


def test_tfds_lr_is_made_from_hr(tmp_path, monkeypatch):
    hrs = [_photo(n, 48, 56, 30, 30) for n in ("astronaut", "coffee")]

    def as_dataset(self, split, **kwargs):  # black LR images: only the HR may be used
        ds = None
        for h in hrs:
            one = tf.data.Dataset.from_tensors({"lr": np.zeros_like(imresize.downscale(h, 4)), "hr": h})
            ds = one if ds is None else ds.concatenate(one)
        return ds

    manual = tmp_path / "downloads" / "manual"
    os.makedirs(manual)
    for url in sources._div2k_urls("bicubic_x4", ["train", "valid"]).values():
        (manual / url.rsplit("/", 1)[1]).touch()
    monkeypatch.setattr(socket, "create_connection", None)
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        for lr, hr in _batches(f"tfds:{tmp_path}", "bicubic_x4", 2, batch_size=2, degradation=CLEAN):
            for l, h in zip(lr, hr):
                np.testing.assert_array_equal(l, imresize.downscale(h, 4))
