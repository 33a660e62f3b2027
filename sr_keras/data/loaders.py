"""DIV2K and other image sources as tf.data pipelines: exact splits, aligned crops, augmentation.

The public face of the data side (docs/data.md):
  training_dataset   infinite seeded crops of the train split, resumable at any epoch;
  eval_dataset       full images of a split; eval_names their names, in the same order;
  eval_pairs         the checked pairs behind eval_dataset, each read on its own (pairing.read_pair);
  scale_of, TRACKS, SPLITS, SAMPLE_SPLITS, CACHE_ENV.
Behind it: sr_keras.data.sources (tfds, DIV2K folders, HR-only folders, samples -> pairs),
sr_keras.data.pairing (the PAIRING RULE, checks, reading a pair with sr_keras.core.imageio),
sr_keras.data.pipeline (the tf.data pipelines and how crops follow from the seed and the epoch) and
sr_keras.data.degradations (training LR made from each HR crop on the fly, docs/degradations.md). On a Keras
backend other than TensorFlow the same datasets are keras.utils.PyDataset objects of sr_keras.data.pydata.
"""
import concurrent.futures
import os
import random
import sys

from sr_keras.core import backend
from sr_keras.core.errors import UserError
from sr_keras.data import degradations, pairing, pipeline, sources
from sr_keras.data.sources import SAMPLE_SPLITS, SPLITS, TRACKS, scale_of

__all__ = ["CACHE_ENV", "CACHE_MEMORY_FRACTION", "SAMPLE_SPLITS", "SPLITS", "TRACKS", "eval_dataset",
           "eval_names", "eval_pairs", "scale_of", "training_dataset"]

# Environment default for the decoded-image cache of training_dataset: "memory" or "none".
CACHE_ENV = "SR_KERAS_DATA_CACHE"
# The in-memory cache may use at most this fraction of the memory available when it is built.
CACHE_MEMORY_FRACTION = 0.8


def eval_pairs(source, track, split, *, data_dir=None, manual_dir=None):
    """The sources.Pair objects of eval_dataset, in its order, checked (pairing.check_pairs: headers,
    decompression bombs, sizes) but not decoded: pairing.read_pair(pair, scale_of(track)) reads one.

    Args:
        source, track, split, data_dir, manual_dir: as eval_dataset's.
    """
    source, scale = os.fspath(source), scale_of(track)
    if sources.is_tfds(source):
        backend.require_tensorflow(f"--data {source} (tensorflow-datasets)")
    pairs, label = sources.resolve(source, track, split, data_dir, manual_dir)
    pairing.check_pairs(pairs, scale, label)
    return pairs


def eval_dataset(source, track, split, *, data_dir=None, manual_dir=None):
    """Full-size (lr, hr) float32 pairs in [0, 1], batch dim 1, in file-number order.

    split: "validation" (0801-0850), "test" (0851-0900) or "train" (0001-0800); other sources use the
    assignment in docs/data.md. HR is trimmed to scale x LR (PAIRING RULE). Files are checked here.
    """
    pairs = eval_pairs(source, track, split, data_dir=data_dir, manual_dir=manual_dir)
    if not backend.is_tensorflow():
        from sr_keras.data.pydata import EvalSequence

        return EvalSequence(pairs, scale_of(track))
    return pipeline.eval_pipeline(pairs, scale_of(track))


def eval_names(source, track, split, *, data_dir=None, manual_dir=None):
    """Names (file paths, or "samples:<photo>") of eval_dataset's images, in the same order."""
    scale_of(track)
    return [p.name for p in sources.resolve(os.fspath(source), track, split, data_dir, manual_dir)[0]]


def _check_training_args(scale, track, batch_size, hr_crop, augment_p, cache, start_epoch, steps_per_epoch):
    if cache not in ("memory", "none"):
        raise UserError(f"cache {cache!r} (or ${CACHE_ENV}): choose memory or none")
    if int(batch_size) < 1:
        raise UserError(f"batch size {batch_size} (--batch-size): must be at least 1")
    if int(hr_crop) // scale < 1:
        raise UserError(f"HR crop {hr_crop} (--hr-crop) is smaller than the scale {scale} of {track}: "
                        f"use a crop of at least {scale} pixels (the report: 180)")
    if not 0.0 <= float(augment_p) <= 1.0:
        raise UserError(f"augmentation probability {augment_p} must be within [0, 1]")
    if int(start_epoch) < 0 or (start_epoch and not steps_per_epoch):
        raise ValueError("start_epoch must be >= 0 and needs steps_per_epoch (the batches of an epoch). "
                         f"Received: start_epoch={start_epoch}, steps_per_epoch={steps_per_epoch}")
    if steps_per_epoch is not None and int(steps_per_epoch) < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer. Received: steps_per_epoch={steps_per_epoch}")


def _folder_images(source, track, scale, lr_crop, cache, hr_only):
    """(images, sizes) of a folder or samples source: a callable [index, ...] -> [(lr, hr), ...] of
    trimmed uint8 arrays (lr None with hr_only: only HR images are read), and the trimmed LR sizes;
    files are checked (and, with cache "memory", decoded once) here."""
    pairs, label = sources.resolve(source, track, "train", hr_only=hr_only)
    read = pipeline.read_hr if hr_only else pairing.read_pair
    pairing.check_pairs(pairs, scale, label)
    small = [p.name for p in pairs if min(p.lr_size) < lr_crop]
    if small:
        print(f"warning: skipping {len(small)} training image(s) smaller than the {lr_crop * scale}px HR crop: "
              + ", ".join(small), file=sys.stderr)
    pairs = [p for p in pairs if min(p.lr_size) >= lr_crop]
    if not pairs:
        raise UserError(f"{label}: no training image is at least {lr_crop * scale}px on each side "
                        f"(the HR crop); use a smaller --hr-crop")
    sizes = [p.lr_size for p in pairs]
    if cache == "none":  # the images of a batch are decoded side by side (Pillow releases the GIL)
        pool = concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1))
        return (lambda ks: list(pool.map(lambda k: read(pairs[k], scale), ks))), sizes
    need = sum(3 * h * w * (int(not hr_only) + scale * scale) for h, w in sizes)
    avail = pipeline.available_memory()
    if avail is not None and need > CACHE_MEMORY_FRACTION * avail:
        raise UserError(f"{label}: the decoded training images need {need / 2**30:.1f} GiB but only "
                        f"{avail / 2**30:.1f} GiB of memory is available; free memory or set "
                        f"{CACHE_ENV}=none (decodes every step, slower)")
    lrs, hrs = pipeline.decode_pairs(pairs, scale, read)
    return (lambda ks: [(lrs[k], hrs[k]) for k in ks]), sizes


def _tfds_images(source, track, scale, lr_crop, data_dir, manual_dir, hr_only):
    """(images, sizes) of div2k/<track> through tensorflow-datasets, held decoded in memory whatever the
    cache setting: tfds reads its records in order only, and crops need any image at any step. With
    hr_only the LR images are dropped after the pairing check (lr None)."""
    label = f"div2k/{track}"
    lrs, hrs = pipeline.decode_tfds(sources.tfds_train(source, track, data_dir, manual_dir), scale, label)
    keep = [i for i, lr in enumerate(lrs) if min(lr.shape[:2]) >= lr_crop]
    if not keep:
        raise UserError(f"{label}: no training image is at least {lr_crop * scale}px on each side "
                        f"(the HR crop); use a smaller --hr-crop")
    sizes = [lrs[i].shape[:2] for i in keep]
    lrs, hrs = [None if hr_only else lrs[i] for i in keep], [hrs[i] for i in keep]
    return (lambda ks: [(lrs[k], hrs[k]) for k in ks]), sizes


def training_dataset(source, track, batch_size=8, hr_crop=180, seed=None, augment_p=0.2, *,
                     start_epoch=0, steps_per_epoch=None, data_dir=None, manual_dir=None, cache=None,
                     degradation=None):
    """Infinite, augmented (lr, hr) float32 batches in [0, 1] from the train split.

    hr_crop is rounded down to a multiple of the scale; the LR window (hr_crop // scale) is drawn first
    and the HR window is scale x it, so pairs are pixel-aligned. Every pass over the training images
    shows each image once, in a seeded order. Decoded uint8 images are held in memory (cache="memory",
    default from $SR_KERAS_DATA_CACHE) after one decoding pass that runs here, before training, and
    checks every file; cache="none" decodes the images of each batch when it is made (files are only
    header-checked here). Images smaller than the crop are skipped with a warning naming them.

    Exact resume: the batches are a function of the seed (sr_keras.data.pipeline). With steps_per_epoch S,
    the dataset starts at epoch `start_epoch` (0-based): it yields what a dataset started at epoch 0
    yields after start_epoch * S batches. Keras fit(steps_per_epoch=S) takes S batches per epoch
    from one iterator, so epoch e of a resumed run trains on the crops of epoch e of an uninterrupted one.

    Args:
        source: "tfds", "tfds:DATA_DIR", a DIV2K-layout folder, an HR-only folder or "samples".
        track: one of TRACKS (sets the scale).
        batch_size: examples per batch.
        hr_crop: HR crop side in pixels.
        seed: integer for repeatable batches; None draws one at random.
        augment_p: probability of each augmentation (h-flip, v-flip, rot90 cw, rot90 ccw).
        start_epoch: first epoch yielded; needs steps_per_epoch when > 0.
        steps_per_epoch: batches per epoch.
        data_dir, manual_dir: tensorflow-datasets folders (docs/data.md).
        cache: "memory" or "none" (default $SR_KERAS_DATA_CACHE, else "memory").
        degradation: None or "bicubic" (the LR images of the source: the track's, or bicubic for HR
            folders and samples), a degradations.PRESETS name ("realistic", "mild") or a
            DegradationConfig: every LR is made from its augmented HR crop (the source's LR images, e.g.
            DIV2K's, are not read), seeded by (seed, batch, example). Validation (eval_dataset) stays the
            track's LR whatever this is.
    """
    source, scale = os.fspath(source), scale_of(track)
    cache = cache or os.environ.get(CACHE_ENV, "memory")
    _check_training_args(scale, track, batch_size, hr_crop, augment_p, cache, start_epoch, steps_per_epoch)
    degradation = degradations.resolve(degradation)
    hr_only = degradation is not None
    lr_crop = int(hr_crop) // scale
    if sources.is_tfds(source):
        backend.require_tensorflow(f"--data {source} (tensorflow-datasets)")
        images, sizes = _tfds_images(source, track, scale, lr_crop, data_dir, manual_dir, hr_only)
    else:
        images, sizes = _folder_images(source, track, scale, lr_crop, cache, hr_only)
    if backend.is_tensorflow():
        make = pipeline.training_pipeline
    else:
        from sr_keras.data.pydata import TrainingSequence as make
    return make(
        images, sizes, scale=scale, batch_size=int(batch_size), lr_crop=lr_crop, augment_p=augment_p,
        seed=random.SystemRandom().randrange(2**63) if seed is None else seed,
        start_batch=int(start_epoch) * int(steps_per_epoch or 0), degradation=degradation)
