"""sr_keras.data.loaders: sources, exact splits, pairing rule, aligned crops, augmentation, errors, seeds."""
import io
import os
import random
import shutil
import socket
import struct
import zipfile
import zlib

import numpy as np
import pytest
import skimage.data
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from sr_keras.core import imageio
from sr_keras.core.errors import UserError
from sr_keras.data import imresize, loaders, sources

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


# ---------------------------------------------------------------- NumPy port of MATLAB imresize

def _cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
            + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _contributions(in_len, scale):
    """imresize.m's contributions() for a 1/scale reduction with antialiasing (kernel widened by scale)."""
    s = 1.0 / scale
    u = np.arange(1, in_len // scale + 1, dtype=np.float64) / s + 0.5 * (1 - 1 / s)
    width = 4.0 / s
    idx = np.floor(u - width / 2)[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    w = s * _cubic(s * (u[:, None] - idx))
    w /= w.sum(1, keepdims=True)
    mirror = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])  # symmetric padding
    return w, mirror[np.mod(idx.astype(np.int64) - 1, len(mirror))] - 1


def _resize_axis(a, scale, axis):
    a = np.moveaxis(a, axis, 0)
    w, idx = _contributions(a.shape[0], scale)
    out = np.clip(np.round(np.einsum("op,op...->o...", w, a[idx])), 0, 255)  # uint8 after each pass
    return np.moveaxis(out, 0, axis)


def matlab_downscale(img, scale):
    """MATLAB `imresize(img, 1/scale, 'bicubic')` of a uint8 image: rows first, then columns."""
    img = imresize.crop_to_multiple(np.asarray(img), scale).astype(np.float64)
    return _resize_axis(_resize_axis(img, scale, 0), scale, 1).astype(np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_is_close_to_matlab_imresize(scale):
    diffs = []
    for name in ("astronaut", "coffee", "rocket"):
        img = getattr(skimage.data, name)()
        ours, ref = imresize.downscale(img, scale).astype(int), matlab_downscale(img, scale).astype(int)
        assert ours.shape == ref.shape
        diffs.append(np.abs(ours - ref))
    diff = np.concatenate([d.ravel() for d in diffs])
    # measured (docs/data.md): mean 0.13-0.16 levels, >1 level on under 0.2% of values
    assert diff.mean() < 0.25 and np.mean(diff > 1) < 0.005


# ---------------------------------------------------------------- fixtures

def _photo_crop(i, h, w):
    img = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()[..., :3]
    y, x = (img.shape[0] - h) * (i % 3) // 3, (img.shape[1] - w) * (i % 2) // 2
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def _save(path, img):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path)


TRAIN_IDS, VALID_IDS, TEST_IDS = (1, 2, 3), (801, 802), (851, 852)


@pytest.fixture(scope="module")
def div2k(tmp_path_factory):
    """A small DIV2K-layout tree of real photo crops; x4 LR made with imresize.downscale."""
    root = str(tmp_path_factory.mktemp("div2k"))
    for k, i in enumerate(TRAIN_IDS + VALID_IDS + TEST_IDS):
        part = "train" if i <= 800 else "valid"
        hr = _photo_crop(k, 96 + 8 * k, 120)
        _save(f"{root}/DIV2K_{part}_HR/{i:04d}.png", hr)
        _save(f"{root}/DIV2K_{part}_LR_bicubic/X4/{i:04d}x4.png", imresize.downscale(hr, 4))
    # files that must be ignored: an id outside every split, a non-image
    _save(f"{root}/DIV2K_valid_HR/0901.png", _photo_crop(0, 96, 96))
    open(f"{root}/DIV2K_valid_HR/readme.txt", "w").close()
    return root


def _u8(x):
    return np.round(np.asarray(x) * 255).astype(np.uint8)


def _read(path):
    return np.asarray(Image.open(path).convert("RGB"))


# ---------------------------------------------------------------- training crops

def _find_window(big, small):
    """(y, x) where `small` occurs exactly in `big`, else None."""
    h, w = small.shape[:2]
    for y in range(big.shape[0] - h + 1):
        for x in range(big.shape[1] - w + 1):
            if np.array_equal(big[y:y + h, x:x + w], small):
                return y, x
    return None


def test_training_crops_are_lr_windows_with_hr_at_scale_times_position(div2k):
    lrs = [_read(f"{div2k}/DIV2K_train_LR_bicubic/X4/{i:04d}x4.png") for i in TRAIN_IDS]
    hrs = [_read(f"{div2k}/DIV2K_train_HR/{i:04d}.png") for i in TRAIN_IDS]
    ds = loaders.training_dataset(div2k, "bicubic_x4", batch_size=3, hr_crop=50, seed=0, augment_p=0.0)
    for lr, hr in ds.take(3):
        assert lr.shape == (3, 12, 12, 3) and hr.shape == (3, 48, 48, 3)  # 50 rounded down to 48
        assert lr.dtype == tf.float32 and float(tf.reduce_min(lr)) >= 0 and float(tf.reduce_max(hr)) <= 1
        seen = []
        for l, h in zip(_u8(lr), _u8(hr)):
            hits = [(k, _find_window(lrs[k], l)) for k in range(len(lrs))]
            k, (y, x) = next((k, p) for k, p in hits if p is not None)
            np.testing.assert_array_equal(h, hrs[k][4 * y:4 * y + 48, 4 * x:4 * x + 48])
            seen.append(k)
        assert sorted(seen) == [0, 1, 2]  # a batch of 3 is one pass: each image once, in a shuffled order


def _interior_psnr(hr_u8, lr_u8, scale):
    d = imresize.downscale(hr_u8, scale).astype(np.float64)[2:-2, 2:-2]
    return 10 * np.log10(255.0 ** 2 / max(np.mean((d - lr_u8[2:-2, 2:-2].astype(np.float64)) ** 2), 1e-10))


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_augmentation_keeps_alignment(div2k, p):
    ds = loaders.training_dataset(div2k, "bicubic_x4", batch_size=4, hr_crop=48, seed=1, augment_p=p)
    for lr, hr in ds.take(3):
        for l, h in zip(_u8(lr), _u8(hr)):
            assert _interior_psnr(h, l, 4) > 40  # downscaling the HR crop reproduces the LR crop


def test_augmentation_all_four_is_a_half_turn(div2k):
    """p=1 applies hflip, vflip, rot90 cw and ccw: together a 180 degree turn of an LR window."""
    lrs = [_read(f"{div2k}/DIV2K_train_LR_bicubic/X4/{i:04d}x4.png") for i in TRAIN_IDS]
    ds = loaders.training_dataset(div2k, "bicubic_x4", batch_size=2, hr_crop=48, seed=2, augment_p=1.0)
    lr, _ = next(iter(ds))
    for l in _u8(lr):
        assert any(_find_window(img, l[::-1, ::-1]) is not None for img in lrs)
        assert not any(_find_window(img, l) is not None for img in lrs)


def test_seeded_runs_repeat(div2k):
    def batches(seed):
        ds = loaders.training_dataset(div2k, "bicubic_x4", batch_size=2, hr_crop=32, seed=seed)
        return [b.numpy() for pair in ds.take(4) for b in pair]

    a, b, c = batches(7), batches(7), batches(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def _epochs(div2k, start_epoch, epochs, steps=3, cache=None):
    ds = loaders.training_dataset(div2k, "bicubic_x4", batch_size=2, hr_crop=32, seed=5, augment_p=0.5,
                               start_epoch=start_epoch, steps_per_epoch=steps, cache=cache)
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(epochs * steps)]


def test_resumed_dataset_yields_the_uninterrupted_batches_of_its_epochs(div2k):
    straight = _epochs(div2k, start_epoch=0, epochs=4)
    resumed = _epochs(div2k, start_epoch=2, epochs=2)
    assert len(resumed) == 6
    for (lr_a, hr_a), (lr_b, hr_b) in zip(straight[6:], resumed):  # epochs 2 and 3: batches 6-11
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)


def test_each_epoch_has_its_own_crops(div2k):
    first, second = _epochs(div2k, start_epoch=0, epochs=1), _epochs(div2k, start_epoch=1, epochs=1)
    for (lr_a, _), (lr_b, _) in zip(first, second):
        assert not np.array_equal(lr_a, lr_b)


def test_decoding_every_step_gives_the_cached_batches(div2k):
    for (lr_a, hr_a), (lr_b, hr_b) in zip(_epochs(div2k, 1, 1, cache="memory"), _epochs(div2k, 1, 1, cache="none")):
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)


def test_start_epoch_needs_steps_per_epoch(div2k):
    with pytest.raises(ValueError, match=r"Received: start_epoch=1, steps_per_epoch=None"):
        loaders.training_dataset(div2k, "bicubic_x4", hr_crop=32, seed=0, start_epoch=1)


# ---------------------------------------------------------------- evaluation splits

@pytest.mark.parametrize("split,ids", [("validation", VALID_IDS), ("test", TEST_IDS), ("train", TRAIN_IDS)])
def test_eval_split_membership_and_order(div2k, split, ids):
    part = "train" if split == "train" else "valid"
    pairs = list(loaders.eval_dataset(div2k, "bicubic_x4", split))
    assert len(pairs) == len(ids)
    for (lr, hr), i in zip(pairs, ids):
        assert lr.shape[0] == 1 and hr.shape[0] == 1
        np.testing.assert_array_equal(_u8(hr[0]), _read(f"{div2k}/DIV2K_{part}_HR/{i:04d}.png"))
        np.testing.assert_array_equal(_u8(lr[0]), _read(f"{div2k}/DIV2K_{part}_LR_bicubic/X4/{i:04d}x4.png"))
    assert loaders.eval_names(div2k, "bicubic_x4", split) == [f"{div2k}/DIV2K_{part}_HR/{i:04d}.png" for i in ids]


def test_pairing_rule_trims_hr_not_multiple_of_scale(tmp_path):
    """HR 100x70 at x3: LR 33x23 (floor) or 34x24 (ceil) pair with HR trimmed to 99x69; 32x23 does not."""
    root = str(tmp_path)
    hr = _photo_crop(1, 70, 100)
    floor_lr = imresize.downscale(hr, 3)
    ceil_lr = np.pad(floor_lr, ((0, 1), (0, 1), (0, 0)), mode="edge")
    for i, lr in ((801, floor_lr), (802, ceil_lr)):
        _save(f"{root}/DIV2K_valid_HR/{i:04d}.png", hr)
        _save(f"{root}/DIV2K_valid_LR_bicubic/X3/{i:04d}x3.png", lr)
    for lr, h in loaders.eval_dataset(root, "bicubic_x3", "validation"):
        assert lr.shape == (1, 23, 33, 3) and h.shape == (1, 69, 99, 3)
        np.testing.assert_array_equal(_u8(h[0]), hr[:69, :99])
        np.testing.assert_array_equal(_u8(lr[0]), floor_lr)
    _save(f"{root}/DIV2K_valid_LR_bicubic/X3/0802x3.png", floor_lr[:, :32])
    with pytest.raises(UserError, match=r"0802x3\.png: LR image is 32x23 but its HR image .*0802\.png is 100x70; "
                                        r"x3 needs LR 33x23"):
        loaders.eval_dataset(root, "bicubic_x3", "validation")


# ---------------------------------------------------------------- errors

def _copy_tree(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def _scramble_png_data(path):
    """Replace the compressed pixel data with noise, keeping every chunk CRC valid."""
    blob, out, pos = open(path, "rb").read(), bytearray(), 8
    out += blob[:8]
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, body = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + n]
        if kind == b"IDAT":
            body = bytes(np.random.RandomState(0).randint(0, 256, n, dtype=np.uint8))
        out += struct.pack(">I", n) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + n
    with open(path, "wb") as f:
        f.write(bytes(out))


def test_bad_inputs_raise_user_error_naming_them(div2k, tmp_path):
    corrupt = _copy_tree(div2k, tmp_path / "corrupt")
    with open(f"{corrupt}/DIV2K_train_HR/0002.png", "wb") as f:
        f.write(os.urandom(300))
    with pytest.raises(UserError, match=r"DIV2K_train_HR/0002\.png"):
        loaders.training_dataset(corrupt, "bicubic_x4", hr_crop=48)

    truncated = _copy_tree(div2k, tmp_path / "truncated")
    path = f"{truncated}/DIV2K_valid_HR/0852.png"
    blob = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(blob[: len(blob) // 2])
    with pytest.raises(UserError, match=r"0852\.png"):
        loaders.eval_dataset(truncated, "bicubic_x4", "test")

    mismatch = _copy_tree(div2k, tmp_path / "mismatch")
    lr_path = f"{mismatch}/DIV2K_train_LR_bicubic/X4/0003x4.png"
    Image.open(lr_path).resize((25, 25)).save(lr_path)
    with pytest.raises(UserError, match=r"0003x4\.png"):
        loaders.training_dataset(mismatch, "bicubic_x4", hr_crop=48)

    missing_lr = _copy_tree(div2k, tmp_path / "missing_lr")
    os.remove(f"{missing_lr}/DIV2K_train_LR_bicubic/X4/0001x4.png")
    with pytest.raises(UserError, match=r"0001x4\.png"):
        loaders.training_dataset(missing_lr, "bicubic_x4", hr_crop=48)

    scrambled = _copy_tree(div2k, tmp_path / "scrambled")  # valid PNG chunks and CRCs, undecodable pixels
    _scramble_png_data(f"{scrambled}/DIV2K_train_HR/0002.png")
    with pytest.raises(UserError, match=r"^cannot read image '[^']*/scrambled/DIV2K_train_HR/0002\.png': "):
        loaders.training_dataset(scrambled, "bicubic_x4", hr_crop=48)

    os.makedirs(tmp_path / "empty")
    with pytest.raises(UserError, match=r"^data folder \S*/empty is empty: expected DIV2K_train_HR"):
        loaders.training_dataset(str(tmp_path / "empty"), "bicubic_x4")
    with pytest.raises(UserError, match="nonexistent.*does not exist"):
        loaders.training_dataset(str(tmp_path / "nonexistent"), "bicubic_x4")
    with pytest.raises(UserError, match="track 'bicubic_x5'"):
        loaders.training_dataset(div2k, "bicubic_x5")
    with pytest.raises(UserError, match="split 'valid'"):
        loaders.eval_dataset(div2k, "bicubic_x4", "valid")
    with pytest.raises(UserError, match="unknown_x4"):  # the tree has no LR_unknown folder
        loaders.training_dataset(div2k, "unknown_x4")
    with pytest.raises(UserError, match="no training image is at least 400px"):
        loaders.training_dataset(div2k, "bicubic_x4", hr_crop=400)


def _bomb_png(path):
    """A valid PNG header claiming 60000x60000 RGB pixels (10.8 GB decoded), with a few bytes of data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_a_bomb_in_a_training_folder_is_refused_before_any_batch(div2k, tmp_path, cache):
    bombed = _copy_tree(div2k, tmp_path / "bombed")
    _bomb_png(f"{bombed}/DIV2K_train_HR/0002.png")
    with pytest.raises(UserError, match=r"^cannot read image '[^']*/bombed/DIV2K_train_HR/0002\.png': its header "
                                        r"claims 3,600,000,000 pixels"):
        loaders.training_dataset(bombed, "bicubic_x4", hr_crop=48, cache=cache)
    _bomb_png(f"{bombed}/DIV2K_valid_HR/0852.png")
    with pytest.raises(UserError, match=r"DIV2K_valid_HR/0852\.png': its header claims"):
        loaders.eval_dataset(bombed, "bicubic_x4", "test")


def test_a_bomb_or_a_float_image_in_an_hr_folder_is_refused_naming_it(tmp_path):
    import tifffile

    for i in range(4):
        _save(str(tmp_path / "hr" / f"img{i}.png"), _photo_crop(i, 64, 80))
    _bomb_png(str(tmp_path / "hr" / "img1.png"))
    with pytest.raises(UserError, match=r"/hr/img1\.png': its header claims 3,600,000,000 pixels"):
        loaders.training_dataset(str(tmp_path / "hr"), "bicubic_x4", hr_crop=48)
    os.remove(tmp_path / "hr" / "img1.png")
    tifffile.imwrite(tmp_path / "hr" / "img1.tif", np.full((64, 80, 3), 0.5, np.float32), photometric="rgb")
    with pytest.raises(UserError, match=r"/hr/img1\.tif': floating-point pixels are not supported"):
        loaders.training_dataset(str(tmp_path / "hr"), "bicubic_x4", hr_crop=48, degradation="mild")


# ---------------------------------------------------------------- HR-only folders and samples

def _save_rgb16(path, img):
    """A 48-bit RGB PNG (Pillow cannot write one) holding img * 256 + 100: its high byte is img."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a = (img.astype(">u2") * 256 + 100).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in a)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", img.shape[1], img.shape[0], 16, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_hr_folder_sorted_name_rule_bicubic_lr_and_mode_conversion(tmp_path, capsys):
    folder = tmp_path / "hr"
    for split in ("train", "test"):
        _save_rgb16(str(tmp_path / "one16" / split / "a.png"), _photo_crop(6, 64, 80))
    for i in range(20):  # 20 // 18 = 1: img19 is test, img18 validation, the rest train
        _save(str(folder / f"img{i}.png"), _photo_crop(i, 64, 80))
    Image.fromarray(_photo_crop(3, 64, 80)).convert("L").save(folder / "img3.png")
    Image.fromarray(_photo_crop(4, 64, 80)).convert("RGBA").save(folder / "img4.png")
    _save_rgb16(str(folder / "img6.png"), _photo_crop(6, 64, 80))
    Image.fromarray(_photo_crop(5, 16, 16)).save(folder / "img5.png")  # smaller than the crop
    assert [os.path.basename(n) for n in loaders.eval_names(str(folder), "bicubic_x4", "test")] == ["img19.png"]
    assert [os.path.basename(n) for n in loaders.eval_names(str(folder), "bicubic_x4", "validation")] == ["img18.png"]
    [(lr, hr)] = list(loaders.eval_dataset(str(folder), "bicubic_x4", "test"))
    np.testing.assert_array_equal(_u8(hr[0]), _photo_crop(19, 64, 80))
    np.testing.assert_array_equal(_u8(lr[0]), imresize.downscale(_photo_crop(19, 64, 80), 4))

    capsys.readouterr()
    ds = loaders.training_dataset(str(folder), "bicubic_x4", batch_size=4, hr_crop=48, seed=0)
    err = capsys.readouterr().err
    assert "img5.png" in err and "skipping 1" in err
    assert err.count("not 8-bit RGB") == 1 and "3 image(s)" in err and "img3.png: mode L" in err
    [(_, hr6)] = list(loaders.eval_dataset(str(tmp_path / "one16"), "bicubic_x4", "test"))
    # the 16-bit rule of sr_keras.core.imageio: v -> round(v / 257), here v = 256 * level + 100
    expected = np.round((_photo_crop(6, 64, 80).astype(np.float64) * 256 + 100) / 257).astype(np.uint8)
    np.testing.assert_array_equal(_u8(hr6[0]), expected)
    for lr, hr in ds.take(2):
        for l, h in zip(_u8(lr), _u8(hr)):
            assert _interior_psnr(h, l, 4) > 40
    with pytest.raises(UserError, match=r"^track unknown_x4 needs the dataset's own LR images but \S*/hr has HR "
                                        r"images only; use a bicubic_x\* track"):
        loaders.training_dataset(str(folder), "unknown_x4")


def test_hr_folder_subfolders(tmp_path):
    for split, n in (("train", 2), ("valid", 1)):
        for i in range(n):
            _save(str(tmp_path / split / f"{i}.png"), _photo_crop(i, 48, 48))
    assert len(loaders.eval_names(str(tmp_path), "bicubic_x2", "validation")) == 1
    with pytest.raises(UserError, match=r"has train/valid subfolders but none for the test split \(test/\)$"):
        loaders.eval_dataset(str(tmp_path), "bicubic_x2", "test")


def test_training_on_a_folder_prints_which_photographs_train_validate_and_test(tmp_path, capsys):
    """A user's folder: the run names the photographs of each split (sorted-name rule; subfolders)."""
    folder = tmp_path / "mine"
    for i in range(20):  # natural order img2 < img10; 20 // 18 = 1: img19 test, img18 validation
        _save(str(folder / f"img{i}.png"), _photo_crop(i, 32, 32))
    from sr_keras.train import loop, settings

    capsys.readouterr()
    loop.datasets(settings.TrainConfig(track="bicubic_x2", data=str(folder), out="", export="", batch_size=2,
                                         hr_crop=16, seed=0), 0)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"photographs of {folder} (sorted by name; the last n//18 are test, the n//18 before them " \
                     "validation; train/ valid/ test/ subfolders set it yourself):"
    assert out[1] == "  train (18): " + ", ".join(f"img{i}.png" for i in range(12)) + " and 6 more"
    assert out[2:4] == ["  validation (1): img18.png", "  test (1): img19.png"]

    for split, names in (("train", ("b.png", "a.png")), ("valid", ("c.png",))):
        for name in names:
            _save(str(tmp_path / "sub" / split / name), _photo_crop(0, 32, 32))
    assert sources.split_lines(str(tmp_path / "sub")) == [
        f"photographs of {tmp_path / 'sub'} (its train/ valid/ test/ subfolders):",
        f"  train (2): {os.path.join('train', 'a.png')}, {os.path.join('train', 'b.png')}",
        f"  validation (1): {os.path.join('valid', 'c.png')}",
        f"  test: none: {tmp_path / 'sub'}: has train/valid subfolders but none for the test split (test/)"]
    assert sources.split_lines("samples")[1] == "  train (6): " + ", ".join(sources.SAMPLE_SPLITS["train"])


def test_hr_folder_reads_the_extensions_every_tool_reads(tmp_path):
    """TIFF, PPM, PGM and BMP files are training images too (imageio.IMAGE_EXTENSIONS, as evaluate.py)."""
    folder = tmp_path / "hr"
    os.makedirs(folder)
    crops = [_photo_crop(i, 48, 48) for i in range(5)]
    for i, ext in enumerate((".tif", ".ppm", ".bmp", ".pgm", ".png")):
        Image.fromarray(crops[i]).convert("L" if ext == ".pgm" else "RGB").save(folder / f"img{i}{ext}")
    # 5 // 18 -> 1 test (img4.png) and 1 validation (img3.pgm); the rest train
    assert [os.path.basename(n) for n in loaders.eval_names(str(folder), "bicubic_x2", "train")] == \
        ["img0.tif", "img1.ppm", "img2.bmp"]
    [(_, hr)] = list(loaders.eval_dataset(str(folder), "bicubic_x2", "validation"))
    np.testing.assert_array_equal(_u8(hr[0]), imageio.read_rgb(folder / "img3.pgm"))
    train = [_u8(hr[0]) for _, hr in loaders.eval_dataset(str(folder), "bicubic_x2", "train")]
    for got, want in zip(train, crops):
        np.testing.assert_array_equal(got, want)


def test_exif_rotated_image_is_paired_and_read_upright(tmp_path):
    stored = _photo_crop(2, 24, 40)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # view rotated 90 degrees clockwise: 40 high, 24 wide
    os.makedirs(tmp_path / "train")
    im.save(tmp_path / "train" / "a.png", exif=exif)
    [(lr, hr)] = list(loaders.eval_dataset(str(tmp_path), "bicubic_x2", "train"))
    upright = np.rot90(stored, k=-1)
    assert hr.shape == (1, 40, 24, 3) and lr.shape == (1, 20, 12, 3)
    np.testing.assert_array_equal(_u8(hr[0]), upright)
    np.testing.assert_array_equal(_u8(lr[0]), imresize.downscale(np.ascontiguousarray(upright), 2))


def test_samples_splits_are_disjoint_photographs():
    splits = {k: set(v) for k, v in loaders.SAMPLE_SPLITS.items()}
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"]
                or splits["validation"] & splits["test"])
    pairs = list(loaders.eval_dataset("samples", "bicubic_x4", "test"))
    assert len(pairs) == 2
    left = skimage.data.stereo_motorcycle()[0]
    np.testing.assert_array_equal(_u8(pairs[0][1][0]), imresize.crop_to_multiple(left, 4))
    np.testing.assert_array_equal(_u8(pairs[0][0][0]), imresize.downscale(left, 4))


# ---------------------------------------------------------------- tensorflow-datasets

def _zip(path, members):
    """Write a zip whose members are (name, uint8 image), in the given (shuffled) order."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, img in members:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            z.writestr(name, buf.getvalue())


def test_tfds_training_through_mock_data(tmp_path, monkeypatch):
    hrs = [_photo_crop(i, 64, 64 + 8 * i) for i in range(3)]
    lrs = [imresize.downscale(h, 4) for h in hrs]

    def as_dataset(self, split, **kwargs):  # scale-consistent: LR = downscale(HR, 4)
        assert split == "train"
        examples = [{"lr": lr, "hr": h} for lr, h in zip(lrs, hrs)]
        ds = tf.data.Dataset.from_tensors(examples[0])
        for ex in examples[1:]:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(ex))
        return ds

    # zips "already downloaded" so no network is tried (mock_data makes download_and_prepare a no-op)
    manual = tmp_path / "downloads" / "manual"
    os.makedirs(manual)
    for url in sources._div2k_urls("bicubic_x4", ["train", "valid"]).values():
        (manual / url.rsplit("/", 1)[1]).touch()
    monkeypatch.setattr(socket, "create_connection", None)  # any network attempt would fail the test
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        ds = loaders.training_dataset(f"tfds:{tmp_path}", "bicubic_x4", batch_size=3, hr_crop=48, seed=0)
        for lr, hr in ds.take(2):
            assert lr.shape == (3, 12, 12, 3) and hr.shape == (3, 48, 48, 3)
            for l, h in zip(_u8(lr), _u8(hr)):
                assert _interior_psnr(h, l, 4) > 40
        lrs[1] = lrs[1][:9]  # now example #1 breaks the pairing rule
        with pytest.raises(UserError, match=r"div2k/bicubic_x4 train example #1"):
            loaders.training_dataset(f"tfds:{tmp_path}", "bicubic_x4", batch_size=3, hr_crop=48, seed=0)


def test_tfds_eval_split_is_exact_from_the_official_zips(tmp_path, monkeypatch):
    """The zips list files shuffled; validation must be 0801-0850 and test 0851-0900, by number."""
    ids = [801, 802, 803, 851, 852]
    hrs = {i: _photo_crop(i, 48, 64) for i in ids}
    order = ids[:]
    random.Random(0).shuffle(order)
    manual = tmp_path / "manual"
    _zip(str(manual / "DIV2K_valid_HR.zip"), [(f"DIV2K_valid_HR/{i:04d}.png", hrs[i]) for i in order])
    _zip(str(manual / "DIV2K_valid_LR_bicubic_X4.zip"),
         [(f"DIV2K_valid_LR_bicubic/X4/{i:04d}x4.png", imresize.downscale(hrs[i], 4)) for i in order])
    infos = sources._div2k_url_infos()
    for url in sources._div2k_urls("bicubic_x4", ["valid"]).values():  # our small zips stand in for the real ones
        infos[url] = tfds.download.checksums.compute_url_info(manual / url.rsplit("/", 1)[1])
    monkeypatch.setattr(sources, "_div2k_url_infos", lambda: infos)
    monkeypatch.setattr(socket, "create_connection", None)
    for split, want in (("validation", [801, 802, 803]), ("test", [851, 852])):
        got = [_u8(hr[0]) for _, hr in loaders.eval_dataset("tfds", "bicubic_x4", split,
                                                         data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))]
        assert len(got) == len(want)
        for g, i in zip(got, want):
            np.testing.assert_array_equal(g, hrs[i])


def test_tfds_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(UserError, match=r"cannot download or read DIV2K.*DIV2K_valid_HR\.zip.*manual"):
        loaders.eval_dataset(f"tfds:{tmp_path}", "bicubic_x4", "test")
