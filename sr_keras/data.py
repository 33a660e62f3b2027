"""DIV2K and other image sources as tf.data pipelines: exact splits, aligned crops, augmentation.

Sources (the `source` argument):
  "tfds" or "tfds:DATA_DIR"  div2k/<track> through tensorflow-datasets (docs/data.md: pre-downloaded
                             copies, the manual folder for the official zips, exact report splits);
  a DIV2K-layout folder      the official archives unpacked (DIV2K_train_HR/0001.png,
                             DIV2K_train_LR_bicubic/X4/0001x4.png, DIV2K_valid_HR/0801.png, ...);
  an HR-only folder          LR made with sr_keras.imresize.downscale (bicubic tracks only);
  "samples"                  colour photographs bundled with scikit-image (offline demos and tests).

Splits follow the report: train 0001-0800, validation 0801-0850, test 0851-0900, by file number.
Every pair is checked when a dataset is built (before any training step): files must decode and the
HR size must match the LR size (PAIRING RULE below); a bad pair raises UserError naming the file.

PAIRING RULE: an LR side of length l belongs to an HR side of length L when |s*l - L| < s (LR is
floor(L/s) or ceil(L/s), MATLAB imresize's two size conventions). The pair is then trimmed from the
top-left to LR = min(l, floor(L/s)) and HR = s times that, which keeps pixel alignment for both
conventions because imresize samples from the top-left corner.
"""
import dataclasses
import functools
import os
import re
import socket
import struct
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from sr_keras import imresize
from sr_keras.errors import UserError

TRACKS = (
    "bicubic_x2", "bicubic_x3", "bicubic_x4", "bicubic_x8",
    "unknown_x2", "unknown_x3", "unknown_x4",
    "realistic_mild_x4", "realistic_difficult_x4", "realistic_wild_x4",
)
SPLITS = {"train": (1, 800), "validation": (801, 850), "test": (851, 900)}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# scikit-image's colour photographs. Validation and test photographs never appear in train, so the
# offline demo reports on photographs it did not train on. stereo_motorcycle gives two views of one scene.
SAMPLE_SPLITS = {
    "train": ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"),
    "validation": ("chelsea",),
    "test": ("stereo_motorcycle_left", "stereo_motorcycle_right"),
}

# Environment default for the decoded-image cache of training_dataset: "memory" or "none".
CACHE_ENV = "SR_KERAS_DATA_CACHE"
# The in-memory cache may use at most this fraction of the memory available when it is built.
CACHE_MEMORY_FRACTION = 0.8

_DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
_LR_DIRS = {  # track kind -> LR folder inside DIV2K_{train,valid}_LR_*, as in the official zips
    "bicubic": "LR_bicubic/X{s}", "unknown": "LR_unknown/X{s}", "bicubic_x8": "LR_x8",
    "realistic_mild": "LR_mild", "realistic_difficult": "LR_difficult", "realistic_wild": "LR_wild",
}


def scale_of(track):
    """Upscaling factor of a track name, e.g. 4 for "bicubic_x4"; UserError for an unknown track."""
    if track not in TRACKS:
        raise UserError(f"unknown track {track!r}: choose one of {', '.join(TRACKS)}")
    return int(track.rsplit("_x", 1)[1])


def _warn(msg):
    print(f"warning: {msg}", file=sys.stderr)


def _note(msg):
    print(msg, file=sys.stderr)


# Sources whose non-RGB images were already reported: training and validation of one source say it once.
_CONVERSION_REPORTED = set()


@dataclasses.dataclass
class _Pair:
    """One LR/HR pair before decoding. hr/lr are file paths or uint8 arrays; lr None = bicubic from HR."""
    name: str
    hr: object
    lr: object = None
    hr_size: tuple = None  # (height, width), filled by _check_pairs
    lr_size: tuple = None
    mode: str = "RGB"


# ---------------------------------------------------------------- resolving a source into pairs

def _file_number(name):
    """1 for "0001.png" (a DIV2K HR file name), else None."""
    m = re.fullmatch(r"(\d{4})\.png", name, flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def _natural_key(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _images_in(folder):
    return sorted((f for f in os.listdir(folder)
                   if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f))),
                  key=_natural_key)


def _lr_index(folder, scale):
    """{file number: [LR paths]} for files named like 0001x4.png, 0001x4w1.png (any subfolder)."""
    index = {}
    pattern = re.compile(rf"^(\d{{4}})x{scale}[a-z]?\d*\.png$")
    for root, _, files in os.walk(folder):
        for f in files:
            m = pattern.match(f)
            if m:
                index.setdefault(int(m.group(1)), []).append(os.path.join(root, f))
    return {k: sorted(v) for k, v in index.items()}


def _lr_subdir(track):
    kind, s = track.rsplit("_x", 1)
    key = "bicubic_x8" if track == "bicubic_x8" else kind
    return _LR_DIRS[key].format(s=s)


def _div2k_pairs(root, split, track, label, lr_dir=None):
    """Pairs of a DIV2K-layout tree: root holds DIV2K_{train,valid}_HR (and the LR folders unless lr_dir)."""
    scale = scale_of(track)
    part = "train" if split == "train" else "valid"
    first, last = SPLITS[split]
    hr_dir = os.path.join(root, f"DIV2K_{part}_HR")
    if not os.path.isdir(hr_dir):
        raise UserError(f"{label}: no DIV2K_{part}_HR folder (needed for the {split} split)")
    hr_files = {_file_number(f): os.path.join(hr_dir, f) for f in _images_in(hr_dir) if _file_number(f)}
    ids = sorted(i for i in hr_files if first <= i <= last)
    if not ids:
        raise UserError(f"{hr_dir}: no {split} images (numbers {first:04d}-{last:04d}) in it")
    lr_dir = lr_dir or os.path.join(root, f"DIV2K_{part}_{_lr_subdir(track)}")
    if not os.path.isdir(lr_dir):
        if not track.startswith("bicubic"):
            raise UserError(f"{label}: no LR folder {lr_dir} for track {track}")
        _note(f"note: {lr_dir} not found: making the {track} LR images with MATLAB-style bicubic "
              "(sr_keras.imresize.downscale)")
        return [_Pair(hr_files[i], hr_files[i]) for i in ids]
    lr_files = _lr_index(lr_dir, scale)
    missing = [i for i in ids if i not in lr_files]
    if missing:
        raise UserError(f"{lr_dir}: no LR image for {hr_files[missing[0]]} "
                        f"(expected {missing[0]:04d}x{scale}.png; {len(missing)} missing)")
    # realistic_wild has several LR images per HR image: each is its own pair, named by its LR file
    return [_Pair(hr_files[i] if len(lr_files[i]) == 1 else lr, hr_files[i], lr) for i in ids for lr in lr_files[i]]


def _hr_folder_pairs(folder, split):
    """HR-only folder: train/ valid/ test/ subfolders when present, else the sorted-name rule."""
    subdirs = {"train": ("train",), "validation": ("valid", "validation", "val"), "test": ("test",)}
    present = {s: next((os.path.join(folder, d) for d in names if os.path.isdir(os.path.join(folder, d))), None)
               for s, names in subdirs.items()}
    if any(present.values()):
        sub = present[split]
        if sub is None:
            raise UserError(f"{folder}: has {'/'.join(os.path.basename(p) for p in present.values() if p)} "
                            f"subfolders but none for the {split} split ({' or '.join(subdirs[split])}/)")
        files = [os.path.join(sub, f) for f in _images_in(sub)]
        if not files:
            raise UserError(f"{sub}: no images ({', '.join(IMAGE_EXTENSIONS)}) in it")
    else:
        files = [os.path.join(folder, f) for f in _images_in(folder)]
        if len(files) < 3:
            raise UserError(f"{folder}: {len(files)} images; an HR folder without train/ valid/ test/ "
                            "subfolders needs at least 3 (sorted by name; the last n//18 are test, the "
                            "n//18 before them validation)")
        k = max(1, len(files) // 18)  # 50 of 900, as DIV2K's 0801-0850 / 0851-0900
        files = {"train": files[:-2 * k], "validation": files[-2 * k:-k], "test": files[-k:]}[split]
    return [_Pair(f, f) for f in files]


def _sample_images():
    import skimage.data

    left, right, _ = skimage.data.stereo_motorcycle()
    images = {"stereo_motorcycle_left": left, "stereo_motorcycle_right": right}
    return lambda name: images[name] if name in images else getattr(skimage.data, name)()


def _sample_pairs(split, scale):
    load = _sample_images()
    pairs = []
    for name in SAMPLE_SPLITS[split]:
        hr = imresize.crop_to_multiple(np.ascontiguousarray(load(name)[..., :3]), scale)
        pairs.append(_Pair(f"samples:{name}", hr, imresize.downscale(hr, scale)))
    return pairs


def _check_split(split):
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")


def _folder_kind(source):
    if not os.path.exists(source):
        raise UserError(f"data folder {source} does not exist")
    if not os.path.isdir(source):
        raise UserError(f"data source {source} is not a folder (nor 'tfds' or 'samples')")
    entries = os.listdir(source)
    if not entries:
        raise UserError(f"data folder {source} is empty: expected DIV2K_train_HR/... (DIV2K layout) "
                        "or HR images")
    return "div2k" if any(e.startswith("DIV2K_") for e in entries) else "hr"


def _resolve(source, track, split, data_dir=None, manual_dir=None):
    """(pairs, label) of a source's split; for "tfds" this fetches/extracts the official zips."""
    scale = scale_of(track)
    _check_split(split)
    if _is_tfds(source):
        hr_root, lr_root = _tfds_extract(track, split, *_tfds_dirs(source, data_dir, manual_dir))
        part = "train" if split == "train" else "valid"
        lr_dir = os.path.join(lr_root, f"DIV2K_{part}_{_lr_subdir(track)}")
        # the LR zip's inner folder as in the official layout, else anywhere in it (as tfds' builder reads it)
        lr_dir = lr_dir if os.path.isdir(lr_dir) else lr_root
        return _div2k_pairs(hr_root, split, track, f"div2k/{track}", lr_dir), f"div2k/{track}"
    kind = "samples" if source == "samples" else _folder_kind(source)
    if kind == "div2k":
        return _div2k_pairs(source, split, track, source), source
    if not track.startswith("bicubic"):
        raise UserError(f"track {track} needs the dataset's own LR images but {source} has HR images only; "
                        "use a bicubic_x* track (LR made with MATLAB-style bicubic)")
    if kind == "samples":
        return _sample_pairs(split, scale), "samples"
    return _hr_folder_pairs(source, split), source


# ---------------------------------------------------------------- tensorflow-datasets

def _is_tfds(source):
    return source == "tfds" or source.startswith("tfds:")


def _tfds_dirs(source, data_dir, manual_dir):
    from tensorflow_datasets.core import constants

    data_dir = data_dir or (source[5:] if source.startswith("tfds:") else None) or constants.get_default_data_dir()
    data_dir = os.path.expanduser(data_dir)
    manual_dir = manual_dir or os.path.join(data_dir, "downloads", "manual")
    return data_dir, manual_dir


def _div2k_url_infos():
    """DIV2K's registered checksums, read from tfds' own div2k/checksums.tsv."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.datasets import div2k

    return tfds.download.checksums.load_url_infos(os.path.join(os.path.dirname(div2k.__file__), "checksums.tsv"))


def _div2k_urls(track, parts):
    """{key: url} of the official zips tfds' div2k builder uses for `track`."""
    names = {"bicubic_x8": "LR_x8", "realistic_mild_x4": "LR_mild", "realistic_difficult_x4": "LR_difficult",
             "realistic_wild_x4": "LR_wild"}
    lr = names.get(track) or "LR_{}_X{}".format(*track.split("_x"))
    urls = {}
    for part in parts:
        urls[f"{part}_hr"] = f"{_DIV2K_URL}DIV2K_{part}_HR.zip"
        urls[f"{part}_lr"] = f"{_DIV2K_URL}DIV2K_{part}_{lr}.zip"
    return urls


def _first_line(e):
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def _offline_error(track, urls, manual_dir, reason):
    zips = " ".join(sorted(u.rsplit("/", 1)[1] for u in urls))
    return UserError(f"cannot download or read DIV2K for div2k/{track} ({reason}); put the official zips ({zips}) in "
                     f"{manual_dir}, or pass --data a DIV2K-layout folder (see docs/data.md)")


def _ensure_reachable(track, urls, data_dir, manual_dir):
    """Fail in seconds (tfds retries for minutes) when zips must be fetched and the server is unreachable."""
    from tensorflow_datasets.core.download import resource

    infos = _div2k_url_infos()
    download_dir = os.path.join(data_dir, "downloads")
    missing = []
    for url in urls:
        fname = resource.get_dl_fname(url, infos[url].checksum)
        local = [os.path.join(manual_dir, url.rsplit("/", 1)[1]), os.path.join(download_dir, "div2k", fname),
                 os.path.join(download_dir, fname)]
        if not any(os.path.exists(p) for p in local):
            missing.append(url)
    if not missing:
        return
    try:
        socket.create_connection((_DIV2K_URL.split("/")[2], 443), timeout=15).close()
    except OSError as e:
        raise _offline_error(track, missing, manual_dir, f"{_DIV2K_URL.split('/')[2]} unreachable: {e}") from None


def _tfds_extract(track, split, data_dir, manual_dir):
    """Download (or find) and extract the official zips with tfds' download manager; (hr_root, lr_root)."""
    import tensorflow_datasets as tfds

    part = "train" if split == "train" else "valid"
    urls = _div2k_urls(track, [part])
    _ensure_reachable(track, urls.values(), data_dir, manual_dir)
    manager = tfds.download.DownloadManager(
        download_dir=os.path.join(data_dir, "downloads"), manual_dir=manual_dir,
        url_infos=_div2k_url_infos(), dataset_name="div2k")
    try:
        paths = manager.download_and_extract(urls)
    except Exception as e:  # noqa: BLE001  any download/extract failure becomes one line for the user
        raise _offline_error(track, urls.values(), manual_dir, _first_line(e)) from None
    return os.fspath(paths[f"{part}_hr"]), os.fspath(paths[f"{part}_lr"])


def _tfds_train(source, track, data_dir, manual_dir):
    """div2k/<track> 'train' split (exactly 0001-0800) as a dataset of (lr, hr) uint8."""
    import tensorflow_datasets as tfds

    data_dir, manual_dir = _tfds_dirs(source, data_dir, manual_dir)
    builder = tfds.builder(f"div2k/{track}", data_dir=data_dir)
    urls = _div2k_urls(track, ["train", "valid"])
    if not builder.is_prepared():
        _ensure_reachable(track, urls.values(), data_dir, manual_dir)
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False))
    except Exception as e:  # noqa: BLE001  any download/prepare failure becomes one line for the user
        raise _offline_error(track, urls.values(), manual_dir, _first_line(e)) from None
    ds = builder.as_dataset(split="train", shuffle_files=False)
    return ds.map(lambda ex: (ex["lr"], ex["hr"]), num_parallel_calls=tf.data.AUTOTUNE)


# ---------------------------------------------------------------- checking and decoding pairs

def _header(path):
    """(height, width), mode of an image file, after a cheap integrity check (PNG chunk CRCs)."""
    try:
        with Image.open(path) as im:
            size, mode = (im.height, im.width), im.mode
            if im.tile and ";16" in str(im.tile[0][3]):  # Pillow reports 48-bit PNGs as plain "RGB"
                mode += " 16-bit"
            im.verify()
    except Image.UnidentifiedImageError:
        raise UserError(f"{path}: not an image file, or its header is corrupt; replace or remove it") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise UserError(f"{path}: corrupt image ({e}); replace or remove it") from None
    return size, mode


def _pair_ok(lr_size, hr_size, scale):
    return all(abs(scale * l - h) < scale for l, h in zip(lr_size, hr_size))


def _check_pairs(pairs, scale, source):
    """Fill sizes and modes; UserError for an unreadable file or an HR/LR size mismatch."""
    for p in pairs:
        if isinstance(p.hr, np.ndarray):
            p.hr_size = p.hr.shape[:2]
        else:
            p.hr_size, p.mode = _header(p.hr)
        if p.lr is None:
            p.lr_size = (p.hr_size[0] // scale, p.hr_size[1] // scale)
        elif isinstance(p.lr, np.ndarray):
            p.lr_size = p.lr.shape[:2]
        else:
            p.lr_size, lr_mode = _header(p.lr)
            p.mode = p.mode if p.mode != "RGB" else lr_mode
            if not _pair_ok(p.lr_size, p.hr_size, scale):
                h, w = p.hr_size
                raise UserError(
                    f"{p.lr}: LR image is {p.lr_size[1]}x{p.lr_size[0]} but its HR image {p.hr} is {w}x{h}; "
                    f"x{scale} needs LR {w // scale}x{h // scale} (within one pixel of HR/{scale})")
        if min(p.lr_size) < 1:
            raise UserError(f"{p.name}: image too small for x{scale} ({p.hr_size[1]}x{p.hr_size[0]})")
    odd = [p for p in pairs if p.mode != "RGB"]
    if odd and source not in _CONVERSION_REPORTED:
        _CONVERSION_REPORTED.add(source)
        _warn(f"{len(odd)} image(s) are not 8-bit RGB (e.g. {odd[0].name}: mode {odd[0].mode}); "
              f"converted to 8-bit RGB (alpha dropped, 16-bit reduced to the high byte), as are any others in {source}")


def _decode(contents):
    return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def _trim(lr, hr, scale):
    """The pairing rule in TF: trim to LR = min(l, L // s) and HR = s x LR from the top-left."""
    lr_shape, hr_shape = tf.shape(lr), tf.shape(hr)
    h = tf.minimum(lr_shape[0], hr_shape[0] // scale)
    w = tf.minimum(lr_shape[1], hr_shape[1] // scale)
    return lr[:h, :w], hr[: scale * h, : scale * w]


def _bicubic_lr(hr, scale):
    lr = tf.numpy_function(functools.partial(imresize.downscale, scale=scale), [hr], tf.uint8, stateful=False)
    return tf.ensure_shape(lr, [None, None, 3])


def _pairs_dataset(pairs, scale):
    """Dataset of trimmed (lr, hr) uint8 pairs in the order of `pairs` (all of one kind)."""
    if isinstance(pairs[0].hr, np.ndarray):
        ds = functools.reduce(lambda a, b: a.concatenate(b),
                              [tf.data.Dataset.from_tensors((p.lr, p.hr)) for p in pairs])
        return ds.map(lambda lr, hr: _trim(lr, hr, scale))
    hr_paths = tf.constant([p.hr for p in pairs])
    if pairs[0].lr is None:
        def load(hr_path):
            hr = _decode(tf.io.read_file(hr_path))
            return _trim(_bicubic_lr(hr, scale), hr, scale)

        return tf.data.Dataset.from_tensor_slices(hr_paths).map(load, num_parallel_calls=tf.data.AUTOTUNE)

    def load_pair(lr_path, hr_path):
        return _trim(_decode(tf.io.read_file(lr_path)), _decode(tf.io.read_file(hr_path)), scale)

    return tf.data.Dataset.from_tensor_slices((tf.constant([p.lr for p in pairs]), hr_paths)).map(
        load_pair, num_parallel_calls=tf.data.AUTOTUNE)


def _to_float(x):
    return tf.cast(x, tf.float32) / 255.0


# ---------------------------------------------------------------- public API

def eval_dataset(source, track, split, *, data_dir=None, manual_dir=None):
    """Full-size (lr, hr) float32 pairs in [0, 1], batch dim 1, in file-number order.

    split: "validation" (0801-0850), "test" (0851-0900) or "train" (0001-0800); other sources use the
    assignment in docs/data.md. HR is trimmed to scale x LR (PAIRING RULE). Files are checked here.
    """
    source, scale = os.fspath(source), scale_of(track)
    pairs, label = _resolve(source, track, split, data_dir, manual_dir)
    _check_pairs(pairs, scale, label)
    ds = _pairs_dataset(pairs, scale).map(lambda lr, hr: (_to_float(lr), _to_float(hr)))
    return ds.batch(1).prefetch(tf.data.AUTOTUNE)


def eval_names(source, track, split, *, data_dir=None, manual_dir=None):
    """Names (file paths, or "samples:<photo>") of eval_dataset's images, in the same order."""
    scale_of(track)
    return [p.name for p in _resolve(os.fspath(source), track, split, data_dir, manual_dir)[0]]


def _available_memory():
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _crop_augment(lr, hr, seeds, scale, lr_crop, p):
    """Random LR window, HR window = scale x it; the same random flips/rotations on both."""
    keys = tf.random.experimental.stateless_split(seeds, num=3)
    shape = tf.shape(lr)
    y = tf.random.stateless_uniform([], keys[0], 0, shape[0] - lr_crop + 1, dtype=tf.int32)
    x = tf.random.stateless_uniform([], keys[1], 0, shape[1] - lr_crop + 1, dtype=tf.int32)
    lr = lr[y:y + lr_crop, x:x + lr_crop]
    hr = hr[scale * y:scale * (y + lr_crop), scale * x:scale * (x + lr_crop)]
    # report 4.3: horizontal flip, vertical flip, rot90 clockwise, rot90 counter-clockwise, each with p
    flags = tf.random.stateless_uniform([4], keys[2]) < p
    transforms = (lambda t: tf.reverse(t, [1]), lambda t: tf.reverse(t, [0]),
                  lambda t: tf.image.rot90(t, k=3), lambda t: tf.image.rot90(t, k=1))
    for i, fn in enumerate(transforms):
        lr, hr = tf.cond(flags[i], lambda: (fn(lr), fn(hr)), lambda: (lr, hr))
    lr = tf.ensure_shape(_to_float(lr), [lr_crop, lr_crop, 3])
    hr = tf.ensure_shape(_to_float(hr), [scale * lr_crop, scale * lr_crop, 3])
    return lr, hr


def training_dataset(source, track, batch_size=8, hr_crop=180, seed=None, augment_p=0.2, *,
                     data_dir=None, manual_dir=None, cache=None):
    """Infinite, augmented (lr, hr) float32 batches in [0, 1] from the train split.

    hr_crop is rounded down to a multiple of the scale; the LR window (hr_crop // scale) is drawn first
    and the HR window is scale x it, so pairs are pixel-aligned. Decoded uint8 images are cached in
    memory (cache="memory", default from $SR_KERAS_DATA_CACHE) after one decoding pass that runs here,
    before training, and checks every file; cache="none" decodes on every step (files are only
    header-checked here). Images smaller than the crop are skipped with a warning naming them.
    The same seed gives the same batches.
    """
    source, scale = os.fspath(source), scale_of(track)
    cache = cache or os.environ.get(CACHE_ENV, "memory")
    if cache not in ("memory", "none"):
        raise UserError(f"cache {cache!r} (or ${CACHE_ENV}): choose memory or none")
    if int(batch_size) < 1:
        raise UserError(f"batch size {batch_size} (--batch-size): must be at least 1")
    lr_crop = int(hr_crop) // scale
    if lr_crop < 1:
        raise UserError(f"HR crop {hr_crop} (--hr-crop) is smaller than the scale {scale} of {track}: "
                        f"use a crop of at least {scale} pixels (the report: 180)")
    if not 0.0 <= float(augment_p) <= 1.0:
        raise UserError(f"augmentation probability {augment_p} must be within [0, 1]")

    if _is_tfds(source):
        names, pairs_ds = None, _tfds_train(source, track, data_dir, manual_dir)
        count = 800  # DIV2K's train split; the decoding pass below counts the real number
        pairs_ds = pairs_ds.map(lambda lr, hr: (*_trim(lr, hr, scale), _pair_flag(lr, hr, scale)))
    else:
        pairs, label = _resolve(source, track, "train")
        _check_pairs(pairs, scale, label)
        small = [p.name for p in pairs if min(p.lr_size) < lr_crop]
        if small:
            _warn(f"skipping {len(small)} training image(s) smaller than the {lr_crop * scale}px HR crop: "
                  + ", ".join(small))
        pairs = [p for p in pairs if min(p.lr_size) >= lr_crop]
        if not pairs:
            raise UserError(f"{label}: no training image is at least {lr_crop * scale}px on each side "
                            f"(the HR crop); use a smaller --hr-crop")
        names = [p.name for p in pairs]
        need = sum(3 * (p.lr_size[0] * p.lr_size[1]) * (1 + scale * scale) for p in pairs)
        avail = _available_memory()
        if cache == "memory" and avail is not None and need > CACHE_MEMORY_FRACTION * avail:
            raise UserError(f"{label}: the decoded training images need {need / 2**30:.1f} GiB but only "
                            f"{avail / 2**30:.1f} GiB of memory is available; free memory or set "
                            f"{CACHE_ENV}=none (decodes every step, slower)")
        pairs_ds = _pairs_dataset(pairs, scale).map(lambda lr, hr: (lr, hr, tf.constant(True)))
        count = len(pairs)

    if cache == "memory":
        pairs_ds = pairs_ds.cache()
        count = _decode_all(pairs_ds, names, scale, f"div2k/{track}" if names is None else None)

    ds = pairs_ds.map(lambda lr, hr, ok: (lr, hr))
    ds = ds.filter(lambda lr, hr: tf.reduce_min(tf.shape(lr)[:2]) >= lr_crop)
    ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True).repeat()
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    crop = functools.partial(_crop_augment, scale=scale, lr_crop=lr_crop, p=float(augment_p))
    ds = tf.data.Dataset.zip(ds, seeds).map(lambda pair, s: crop(pair[0], pair[1], s),
                                            num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(int(batch_size), drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _pair_flag(lr, hr, scale):
    """True when (lr, hr) satisfy the PAIRING RULE (checked in the decoding pass for tfds data)."""
    diff = tf.abs(scale * tf.shape(lr)[:2] - tf.shape(hr)[:2])
    return tf.reduce_all(diff < scale)


def _decode_all(ds, names, scale, label):
    """One pass over the cached dataset: fills the cache and names any file that fails to decode."""
    from tqdm import tqdm

    count = 0
    it = iter(ds)
    with tqdm(total=len(names) if names else None, desc="decoding training images", unit="img",
              file=sys.stderr, leave=False) as bar:
        while True:
            try:
                lr, hr, ok = next(it)
            except StopIteration:
                break
            except tf.errors.OpError as e:
                where = names[count] if names else f"{label} train example #{count}"
                raise UserError(f"{where}: cannot be decoded ({e.message.splitlines()[0]}); replace or remove it") \
                    from None
            if not bool(ok):
                raise UserError(f"{label} train example #{count}: LR {tuple(lr.shape[:2])} does not match "
                                f"HR {tuple(hr.shape[:2])} at x{scale}")
            count += 1
            bar.update()
    if count == 0:
        raise UserError(f"{label or names}: no training images")
    return count
