"""The photo corpus the shipped models train on, rebuilt offline by one command:

    python tools/build_corpus.py OUT_DIR

Sources (all installed locally, nothing downloaded):
- the Debian packages lomiri-wallpapers-16.04 and lomiri-wallpapers-20.04 (/usr/share/backgrounds),
  photographs only: the renders and abstract art they also ship are left out by name (LOMIRI_EXCLUDED);
- scikit-image's colour sample photographs, scikit-learn's two sample photographs and matplotlib's
  grace_hopper.jpg.
ukui-wallpapers is left out: its images are illustrations, not photographs.

Each photograph goes to exactly one split (SPLITS), never split by crop. Images are converted to RGB
and, like DIV2K, reduced with Pillow's Lanczos to at most 2040 pixels on the long side (which also
averages away most of the wallpapers' JPEG blocking), then written as PNG to OUT_DIR/{train,valid,test}/
(with `--train-scales`, each training photograph also reduced by the given factors)
- the HR-folder layout the training scripts read with `--data OUT_DIR`. OUT_DIR/manifest.json lists
every file with its source, licence and SHA-256, so a rebuild can be checked against a model card.
"""
import hashlib
import json
import os

import numpy as np

from sr_keras.core.errors import UserError
from sr_keras.core.imageio import atomic_file, atomic_write_text

LOMIRI_DIR = "/usr/share/backgrounds"
LOMIRI_COPYRIGHT = ("/usr/share/doc/lomiri-wallpapers-16.04/copyright",
                    "/usr/share/doc/lomiri-wallpapers-20.04/copyright")
LOMIRI_PACKAGES = ("lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")
# Shipped by those packages but not photographs (digital renders, gradients, a texture).
LOMIRI_EXCLUDED = {
    "Fossa_by_Jasper_Roks.jpg": "abstract render",
    "Infinite-Sea_by_Aury88.jpg": "digital art",
    "Painting-Colors_by__herobrine7gamer.jpg": "abstract colour bands",
    "analogpattern_by_Peter_Nerlich.jpg": "abstract texture",
    "umang_by_Abhishek_Mudgal.jpg": "abstract gradient",
}
LONG_SIDE = 2040  # DIV2K's long side

# name -> split. Test photographs are the project's held-back set (model cards report on them).
SPLITS = {
    "lomiri:Bridge_by_Sander_Klootwijk.jpg": "train",
    "lomiri:Dragonfly_by_Bolly.jpg": "train",
    "lomiri:Kleiber_by_Lukas_Baubkus.jpg": "train",
    "lomiri:Picture_0B_by_freespace.jpg": "train",
    "lomiri:Picture_1A_by_freespace.jpg": "train",
    "lomiri:Wine_by_Jakkub_Mede.jpg": "train",
    "lomiri:aitzgorri_by_Aitzol_Berasategi.jpg": "train",
    "lomiri:free_by_Peter_Nerlich.jpg": "train",
    "lomiri:greentock_by_Peter_Nerlich.jpg": "train",
    "lomiri:life_by_Aitzol_Berasategi.jpg": "train",
    "lomiri:sunset_by_Aitzol_Berasategi.jpg": "train",
    "lomiri:picosdeeuropa_by_Aitzol_Berasategi.jpg": "valid",
    "lomiri:friends_by_Aitzol_Berasategi.jpg": "test",
    "lomiri:seeding_by_Clements_Engelhardt.jpg": "test",
    "skimage:astronaut": "train",
    "skimage:coffee": "train",
    "skimage:rocket": "train",
    "skimage:chelsea": "valid",
    "skimage:stereo_motorcycle_left": "test",
    "skimage:stereo_motorcycle_right": "test",
    "sklearn:china.jpg": "train",
    "sklearn:flower.jpg": "train",
    "matplotlib:grace_hopper.jpg": "train",
}
LICENCES = {
    "skimage": "scikit-image sample data (BSD-3-Clause package; images public domain or CC0 per "
               "skimage/data/README)",
    "sklearn": "CC-BY-2.0 (scikit-learn sample images, see sklearn/datasets/images/README.txt)",
    "matplotlib": "public domain (US Navy photograph, matplotlib sample data)",
}


def lomiri_licences(paths=LOMIRI_COPYRIGHT):
    """File name -> licence, from the packages' machine-readable (DEP-5) copyright files."""
    licences = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for paragraph in f.read().split("\n\n"):
                fields = dict(line.split(":", 1) for line in paragraph.splitlines()
                              if ":" in line and not line.startswith(" "))
                if "Files" in fields and "License" in fields:
                    for name in fields["Files"].split():
                        licences[os.path.basename(name)] = fields["License"].strip()
    return licences


def _skimage(name):
    from sr_keras.data.sources import sample_images

    return sample_images()(name)


def _sklearn(name):
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        raise UserError("scikit-learn's sample photographs need scikit-learn: pip install scikit-learn")
    from PIL import Image

    path = os.path.join(os.path.dirname(spec.origin), "datasets", "images", name)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _matplotlib(name):
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data(name) as f, Image.open(f) as image:
        return np.asarray(image.convert("RGB"))


def _lomiri(name):
    from PIL import Image

    path = os.path.join(LOMIRI_DIR, name)
    if not os.path.exists(path):
        raise UserError(f"{path} not found: install the Debian packages {' and '.join(LOMIRI_PACKAGES)} "
                        "(apt-get install " + " ".join(LOMIRI_PACKAGES) + ")")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


LOADERS = {"lomiri": _lomiri, "skimage": _skimage, "sklearn": _sklearn, "matplotlib": _matplotlib}


def reduce_long_side(rgb, long_side=LONG_SIDE):
    """Lanczos-reduce an RGB uint8 image so its long side is at most long_side (never enlarged)."""
    return reduce_by(rgb, min(1.0, long_side / max(rgb.shape[:2])))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_name(key):
    source, name = key.split(":", 1)
    return f"{source}_{os.path.splitext(name)[0]}.png"


def check_train_scales(train_scales):
    """The sorted, de-duplicated tuple of train_scales, each in (0, 1]; ValueError otherwise."""
    scales = tuple(sorted({float(s) for s in train_scales}, reverse=True))
    if not scales or not all(0.0 < s <= 1.0 for s in scales):
        raise ValueError(f"train_scales must be factors in (0, 1]. Received: train_scales={train_scales!r}")
    return scales


def scaled_name(name, factor):
    """File name of a training photograph reduced by `factor` (unchanged at 1): a.png -> a_s50.png at 0.5."""
    stem, ext = os.path.splitext(name)
    return name if factor == 1.0 else f"{stem}_s{round(factor * 100):02d}{ext}"


def reduce_by(rgb, factor):
    """Lanczos-reduce an RGB uint8 image by `factor` in (0, 1] (the image itself at 1)."""
    from PIL import Image

    if factor == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def build(out_dir, progress=print, train_scales=(1.0,)):
    """Write the corpus to out_dir; returns the manifest (also written to out_dir/manifest.json).

    Args:
        out_dir: the corpus folder.
        progress: called with one line per written file.
        train_scales: factors in (0, 1]: each training photograph is also written reduced by each factor
            below 1 (Real-ESRGAN's multi-scale copies: more texture scales from few photographs, and cleaner
            HR). Validation and test photographs are written once, at full size.
    """
    from PIL import Image

    scales = check_train_scales(train_scales)
    licences = lomiri_licences()
    entries = []
    for key, split in SPLITS.items():
        source, name = key.split(":", 1)
        full = reduce_long_side(np.ascontiguousarray(LOADERS[source](name)[..., :3]))
        folder = os.path.join(out_dir, split)
        os.makedirs(folder, exist_ok=True)
        licence = licences.get(name, "see the package's copyright file") if source == "lomiri" else LICENCES[source]
        for factor in scales if split == "train" else (1.0,):
            rgb = reduce_by(full, factor)
            path = os.path.join(folder, scaled_name(output_name(key), factor))
            with atomic_file(path) as tmp:
                Image.fromarray(rgb).save(tmp, format="PNG")
            entry = {"file": os.path.join(split, os.path.basename(path)), "source": key, "split": split,
                     "size": [int(rgb.shape[1]), int(rgb.shape[0])], "licence": licence, "sha256": sha256(path)}
            if factor != 1.0:
                entry["scale"] = factor
            entries.append(entry)
            progress(f"{split:5s} {entry['file']} {rgb.shape[1]}x{rgb.shape[0]}")
    manifest = {"description": "sr-keras photo corpus (python tools/build_corpus.py)", "long_side": LONG_SIDE,
                "excluded": LOMIRI_EXCLUDED, "files": entries,
                "counts": {s: sum(e["split"] == s for e in entries) for s in ("train", "valid", "test")}}
    if scales != (1.0,):
        manifest["train_scales"] = list(scales)
    atomic_write_text(os.path.join(out_dir, "manifest.json"), json.dumps(manifest, indent=1))
    return manifest

