"""Where training and evaluation images come from: a source and a split resolved into LR/HR pairs.

Sources (the `source` argument of sr_keras.data.loaders):
  "tfds" or "tfds:DATA_DIR"  div2k/<track> through tensorflow-datasets (docs/data.md: pre-downloaded
                             copies, the manual folder for the official zips, exact report splits);
  a DIV2K-layout folder      the official archives unpacked (DIV2K_train_HR/0001.png,
                             DIV2K_train_LR_bicubic/X4/0001x4.png, DIV2K_valid_HR/0801.png, ...);
  an HR-only folder          LR made with sr_keras.data.imresize.downscale (bicubic tracks only); train/
                             valid/ test/ subfolders when present, else split by sorted name;
  "samples"                  colour photographs bundled with scikit-image (offline demos and tests).

Splits follow the report: train 0001-0800, validation 0801-0850, test 0851-0900, by file number.
Images are the files with an extension of sr_keras.core.imageio.IMAGE_EXTENSIONS (the list every tool uses).
"""
import dataclasses
import functools
import os
import re
import socket
import sys

import numpy as np

from sr_keras.core import imageio
from sr_keras.core.errors import UserError, first_line
from sr_keras.data import imresize

TRACKS = (
    "bicubic_x2", "bicubic_x3", "bicubic_x4", "bicubic_x8",
    "unknown_x2", "unknown_x3", "unknown_x4",
    "realistic_mild_x4", "realistic_difficult_x4", "realistic_wild_x4",
)
SPLITS = {"train": (1, 800), "validation": (801, 850), "test": (851, 900)}

# scikit-image's colour photographs. Validation and test photographs never appear in train, so the
# offline demo reports on photographs it did not train on. stereo_motorcycle gives two views of one scene.
SAMPLE_SPLITS = {
    "train": ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina"),
    "validation": ("chelsea",),
    "test": ("stereo_motorcycle_left", "stereo_motorcycle_right"),
}

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


@dataclasses.dataclass
class Pair:
    """One LR/HR pair before decoding. hr/lr are file paths or uint8 arrays; lr None = bicubic from HR."""
    name: str
    hr: object
    lr: object = None
    hr_size: tuple = None  # (height, width) as read (EXIF orientation applied), set by pairing.check_pairs
    lr_size: tuple = None  # LR (height, width) after the PAIRING RULE's trim, set by pairing.check_pairs
    mode: str = "RGB"


def _note(msg):
    print(msg, file=sys.stderr)


# ---------------------------------------------------------------- resolving a source into pairs

def _file_number(name):
    """1 for "0001.png" (a DIV2K HR file name), else None."""
    m = re.fullmatch(r"(\d{4})\.png", name, flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


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


def _div2k_pairs(root, split, track, label, lr_dir=None, hr_only=False):
    """Pairs of a DIV2K-layout tree: root holds DIV2K_{train,valid}_HR (and the LR folders unless lr_dir);
    with hr_only, HR images only (LR None), the LR folders are not looked at."""
    scale = scale_of(track)
    part = "train" if split == "train" else "valid"
    first, last = SPLITS[split]
    hr_dir = os.path.join(root, f"DIV2K_{part}_HR")
    if not os.path.isdir(hr_dir):
        raise UserError(f"{label}: no DIV2K_{part}_HR folder (needed for the {split} split)")
    hr_files = {_file_number(f): os.path.join(hr_dir, f) for f in imageio.list_images(hr_dir) if _file_number(f)}
    ids = sorted(i for i in hr_files if first <= i <= last)
    if not ids:
        raise UserError(f"{hr_dir}: no {split} images (numbers {first:04d}-{last:04d}) in it")
    if hr_only:
        return [Pair(hr_files[i], hr_files[i]) for i in ids]
    lr_dir = lr_dir or os.path.join(root, f"DIV2K_{part}_{_lr_subdir(track)}")
    if not os.path.isdir(lr_dir):
        if not track.startswith("bicubic"):
            raise UserError(f"{label}: no LR folder {lr_dir} for track {track}")
        _note(f"note: {lr_dir} not found: making the {track} LR images with MATLAB-style bicubic "
              "(sr_keras.data.imresize.downscale)")
        return [Pair(hr_files[i], hr_files[i]) for i in ids]
    lr_files = _lr_index(lr_dir, scale)
    missing = [i for i in ids if i not in lr_files]
    if missing:
        raise UserError(f"{lr_dir}: no LR image for {hr_files[missing[0]]} "
                        f"(expected {missing[0]:04d}x{scale}.png; {len(missing)} missing)")
    # realistic_wild has several LR images per HR image: each is its own pair, named by its LR file
    return [Pair(hr_files[i] if len(lr_files[i]) == 1 else lr, hr_files[i], lr) for i in ids for lr in lr_files[i]]


_SUBDIRS = {"train": ("train",), "validation": ("valid", "validation", "val"), "test": ("test",)}
_SORTED_RULE = "sorted by name; the last n//18 are test, the n//18 before them validation"


def _split_subfolders(folder):
    """{split: its subfolder of an HR-only folder, or None}."""
    return {s: next((os.path.join(folder, d) for d in names if os.path.isdir(os.path.join(folder, d))), None)
            for s, names in _SUBDIRS.items()}


def _hr_folder_pairs(folder, split):
    """HR-only folder: train/ valid/ test/ subfolders when present, else the sorted-name rule."""
    present = _split_subfolders(folder)
    if any(present.values()):
        sub = present[split]
        if sub is None:
            raise UserError(f"{folder}: has {'/'.join(os.path.basename(p) for p in present.values() if p)} "
                            f"subfolders but none for the {split} split ({' or '.join(_SUBDIRS[split])}/)")
        files = [os.path.join(sub, f) for f in imageio.list_images(sub)]
        if not files:
            raise UserError(f"{sub}: no images ({', '.join(imageio.IMAGE_EXTENSIONS)}) in it")
    else:
        files = [os.path.join(folder, f) for f in imageio.list_images(folder)]
        if len(files) < 3:
            raise UserError(f"{folder}: {len(files)} images; an HR folder without train/ valid/ test/ "
                            f"subfolders needs at least 3 ({_SORTED_RULE})")
        k = max(1, len(files) // 18)  # 50 of 900, as DIV2K's 0801-0850 / 0851-0900
        files = {"train": files[:-2 * k], "validation": files[-2 * k:-k], "test": files[-k:]}[split]
    return [Pair(f, f) for f in files]


# Names shown per split before "and N more": a personal folder fits, a DIV2K-sized one stays readable.
SPLIT_NAMES_SHOWN = 12


def _shown(names):
    if not names:
        return "none"
    more = len(names) - SPLIT_NAMES_SHOWN
    return ", ".join(names[:SPLIT_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def split_lines(source):
    """Which photographs of an HR-only folder (or of "samples") go to train, validation and test, as
    lines to print when training starts, so that a user knows which pictures each score is on. None for
    "tfds" and DIV2K-layout folders, whose file numbers fix the splits (docs/data.md)."""
    if is_tfds(source):
        return None
    if source == "samples":
        rule, splits = "scikit-image's photographs, a fixed split", {s: list(n) for s, n in SAMPLE_SPLITS.items()}
    elif _folder_kind(source) == "div2k":
        return None
    else:
        rule = ("its train/ valid/ test/ subfolders" if any(_split_subfolders(source).values()) else
                f"{_SORTED_RULE}; train/ valid/ test/ subfolders set it yourself")
        splits = {}
        for split in SPLITS:
            try:
                splits[split] = [os.path.relpath(p.name, source) for p in _hr_folder_pairs(source, split)]
            except UserError as e:  # a missing split subfolder: named again where training needs that split
                splits[split] = f"none: {first_line(e)}"
    lines = [f"photographs of {source} ({rule}):"]
    for split, names in splits.items():
        lines.append(f"  {split}: {names}" if isinstance(names, str) else f"  {split} ({len(names)}): {_shown(names)}")
    return lines


def print_split(source):
    """Print split_lines(source) when it has any (the start of a training run)."""
    for line in split_lines(source) or ():
        print(line)


def sample_images():
    """name -> scikit-image sample photograph (stereo_motorcycle as its _left and _right views)."""
    import skimage.data

    left, right, _ = skimage.data.stereo_motorcycle()
    images = {"stereo_motorcycle_left": left, "stereo_motorcycle_right": right}
    return lambda name: images[name] if name in images else getattr(skimage.data, name)()


def _sample_pairs(split, scale):
    load = sample_images()
    pairs = []
    for name in SAMPLE_SPLITS[split]:
        hr = imresize.crop_to_multiple(np.ascontiguousarray(load(name)[..., :3]), scale)
        pairs.append(Pair(f"samples:{name}", hr, imresize.downscale(hr, scale)))
    return pairs


def check_split(split):
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


def resolve(source, track, split, data_dir=None, manual_dir=None, hr_only=False):
    """(pairs, label) of a source's split; for "tfds" this fetches/extracts the official zips.

    hr_only: pairs of HR images only (LR None, not looked for): their LR is made on the fly by a
    training degradation. The track still sets the scale, and HR-only sources still need a bicubic
    track (their validation split is bicubic).
    """
    scale = scale_of(track)
    check_split(split)
    if is_tfds(source):
        hr_root, lr_root = _tfds_extract(track, split, *_tfds_dirs(source, data_dir, manual_dir))
        part = "train" if split == "train" else "valid"
        lr_dir = os.path.join(lr_root, f"DIV2K_{part}_{_lr_subdir(track)}")
        # the LR zip's inner folder as in the official layout, else anywhere in it (as tfds' builder reads it)
        lr_dir = lr_dir if os.path.isdir(lr_dir) else lr_root
        return _div2k_pairs(hr_root, split, track, f"div2k/{track}", lr_dir, hr_only), f"div2k/{track}"
    kind = "samples" if source == "samples" else _folder_kind(source)
    if kind == "div2k":
        return _div2k_pairs(source, split, track, source, hr_only=hr_only), source
    if not track.startswith("bicubic"):
        raise UserError(f"track {track} needs the dataset's own LR images but {source} has HR images only; "
                        "use a bicubic_x* track (LR made with MATLAB-style bicubic)")
    if kind == "samples":
        pairs = _sample_pairs(split, scale)
        return ([Pair(p.name, p.hr) for p in pairs] if hr_only else pairs), "samples"
    return _hr_folder_pairs(source, split), source


# ---------------------------------------------------------------- tensorflow-datasets

def is_tfds(source):
    return source == "tfds" or source.startswith("tfds:")


def _tfds_dirs(source, data_dir, manual_dir):
    from tensorflow_datasets.core import constants

    data_dir = data_dir or (source[5:] if source.startswith("tfds:") else None) or constants.get_default_data_dir()
    data_dir = os.path.expanduser(data_dir)
    manual_dir = manual_dir or os.path.join(data_dir, "downloads", "manual")
    return data_dir, manual_dir


@functools.lru_cache(maxsize=None)  # read once: both the reachability check and the download use it
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
        raise _offline_error(track, urls.values(), manual_dir, f"{type(e).__name__}: {first_line(e)}") from None
    return os.fspath(paths[f"{part}_hr"]), os.fspath(paths[f"{part}_lr"])


def tfds_train(source, track, data_dir, manual_dir):
    """div2k/<track> 'train' split (exactly 0001-0800) as a dataset of (lr, hr) uint8."""
    import tensorflow as tf
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
        raise _offline_error(track, urls.values(), manual_dir, f"{type(e).__name__}: {first_line(e)}") from None
    ds = builder.as_dataset(split="train", shuffle_files=False)
    return ds.map(lambda ex: (ex["lr"], ex["hr"]), num_parallel_calls=tf.data.AUTOTUNE)
