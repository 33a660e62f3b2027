"""tf.data pipelines of checked pairs: full images for evaluation, seeded random crops for training.

Training batch b (0, 1, 2, ... counted over the whole run) is a pure function of (seed, b): its
examples are g = b*B ... b*B + B - 1; example g belongs to pass g // n over the n training images and
shows image index_shuffle(g % n) of that pass's stateless permutation (seeded by seed and pass, so
each pass shows every image once, passes crossing batch and epoch boundaries), and the LR windows and
augmentation flags of the batch are stateless random draws keyed by (seed, b). With steps_per_epoch S,
epoch e is batches e*S ... e*S + S - 1: a dataset that starts at batch e*S yields exactly what an
uninterrupted one yields after e*S batches, so a resumed run trains on the same crops. Nothing depends
on tf.data's stateful shuffle, TensorFlow's global seed or how many batches were already drawn.
TensorFlow is imported by the tf.data functions only: sr_keras.data.pydata (the pipeline of other Keras
backends) shares the NumPy parts here.
With a degradation (sr_keras.data.degradations), the LR of example i of batch b is made from its augmented
HR crop with the seed (seed, b, i), so it too is a function of (seed, b) and resumes exactly.
"""
import concurrent.futures
import functools
import os
import sys

import numpy as np

from sr_keras.core import imageio
from sr_keras.core.errors import UserError
from sr_keras.data import degradations, pairing


def to_float(x):
    import tensorflow as tf

    return tf.cast(x, tf.float32) / 255.0


def eval_pipeline(pairs, scale):
    """Full-size (lr, hr) float32 pairs in [0, 1], batch dimension 1, in the order of `pairs`."""
    import tensorflow as tf

    def load(k):
        lr, hr = pairing.read_pair(pairs[int(k)], scale)
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr)

    def load_tf(k):
        lr, hr = tf.numpy_function(load, [k], [tf.uint8, tf.uint8], stateful=False)
        return to_float(tf.ensure_shape(lr, [None, None, 3])), to_float(tf.ensure_shape(hr, [None, None, 3]))

    ds = tf.data.Dataset.range(len(pairs)).map(load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(1).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- decoded training images

def read_hr(pair, scale):
    """(None, hr): the trimmed uint8 HR of a checked pair whose LR is made from it on the fly (a
    degradation), without reading or making an LR image; UserError as pairing.read_pair's."""
    hr = pair.hr if isinstance(pair.hr, np.ndarray) else imageio.read_rgb(pair.hr)
    h, w = pair.lr_size
    if hr.shape[0] < scale * h or hr.shape[1] < scale * w:
        raise UserError(f"{pair.name}: decodes to HR {hr.shape[1]}x{hr.shape[0]} but its header says at least "
                        f"{scale * w}x{scale * h}; replace or remove it")
    return None, hr[:scale * h, :scale * w]


def decode_pairs(pairs, scale, read=pairing.read_pair):
    """(lrs, hrs): trimmed uint8 arrays of every pair (`read` of each, pairing.read_pair or read_hr),
    decoded by a few threads (Pillow and NumPy release the GIL) behind a progress bar. The first
    unreadable file raises its UserError."""
    from tqdm import tqdm

    lrs, hrs = [None] * len(pairs), [None] * len(pairs)
    workers = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool, \
            tqdm(total=len(pairs), desc="decoding training images", unit="img", file=sys.stderr, leave=False) as bar:
        futures = {pool.submit(read, p, scale): i for i, p in enumerate(pairs)}
        try:
            for future in concurrent.futures.as_completed(futures):
                lrs[futures[future]], hrs[futures[future]] = future.result()
                bar.update()
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return lrs, hrs


def decode_tfds(ds, scale, label):
    """(lrs, hrs) of a dataset of (lr, hr) uint8 examples, trimmed; UserError naming the example that
    fails to decode or breaks the PAIRING RULE (sr_keras.data.pairing)."""
    import tensorflow as tf
    from tqdm import tqdm

    lrs, hrs = [], []
    it = iter(ds)
    with tqdm(desc="decoding training images", unit="img", file=sys.stderr, leave=False) as bar:
        while True:
            try:
                lr, hr = next(it)
            except StopIteration:
                break
            except tf.errors.OpError as e:
                raise UserError(f"{label} train example #{len(lrs)}: cannot be decoded "
                                f"({e.message.splitlines()[0]}); replace or remove it") from None
            lr, hr = lr.numpy(), hr.numpy()
            if not pairing.sizes_pair(lr.shape[:2], hr.shape[:2], scale):
                raise UserError(f"{label} train example #{len(lrs)}: LR {lr.shape[:2]} does not match "
                                f"HR {hr.shape[:2]} at x{scale}")
            lr, hr = pairing.trim(lr, hr, scale)
            lrs.append(lr)
            hrs.append(hr)
            bar.update()
    if not lrs:
        raise UserError(f"{label}: no training images")
    return lrs, hrs


# ---------------------------------------------------------------- seeded crops

def _batch_plan(b, keys, sizes, batch_size, lr_crop, augment_p):
    """Image indices, LR window tops and lefts, and augmentation flags [B, 4] of training batch b."""
    import tensorflow as tf

    n = tf.shape(sizes, out_type=tf.int64)[0]
    g = b * batch_size + tf.range(batch_size, dtype=tf.int64)  # the batch's example numbers
    perm_key, crop_key = keys[0], keys[1]
    # one permutation per pass g // n; the op takes a seed row (3 numbers) per index
    pass_seeds = tf.stack([tf.fill([batch_size], perm_key[0]), tf.fill([batch_size], perm_key[1]), g // n], axis=1)
    k = tf.raw_ops.RandomIndexShuffle(index=g % n, seed=pass_seeds, max_index=n - 1)
    window_key, flag_key = tf.unstack(
        tf.random.experimental.stateless_split(tf.random.experimental.stateless_fold_in(crop_key, b), 2))
    draw = tf.random.stateless_uniform([batch_size, 2], window_key, minval=None, maxval=None, dtype=tf.int64)
    yx = tf.math.floormod(draw, tf.gather(sizes, k) - lr_crop + 1)
    flags = tf.random.stateless_uniform([batch_size, 4], flag_key) < augment_p
    return k, yx[:, 0], yx[:, 1], flags


# Report 4.3: horizontal flip, vertical flip, rot90 clockwise, rot90 counter-clockwise, each with
# probability p, in this order, on both images of a pair (NumPy views of HxWxC arrays, as tf.image.rot90).
_AUGMENTATIONS = (lambda t: t[:, ::-1], lambda t: t[::-1], lambda t: np.rot90(t, k=3), lambda t: np.rot90(t, k=1))


def _augment(img, chosen):
    for fn, c in zip(_AUGMENTATIONS, chosen):
        img = fn(img) if c else img
    return img


def training_pipeline(images, sizes, *, scale, batch_size, lr_crop, augment_p, seed, start_batch,
                      degradation=None):
    """Infinite (lr, hr) float32 batches of seeded crops (module docstring), from batch `start_batch`.

    Args:
        images: callable [index, ...] -> [(lr, hr), ...], the trimmed uint8 arrays of training images
            (lr may be None with a degradation).
        sizes: (n, 2) int array, the trimmed LR (height, width) of each image, each side >= lr_crop.
        scale: upscaling factor; the HR window is scale x the LR window.
        batch_size: examples per batch.
        lr_crop: LR window side.
        augment_p: probability of each of the four augmentations.
        seed: integer; the batches are a function of it (and of the arguments above).
        start_batch: index of the first batch yielded.
        degradation: None (the LR window of the LR image) or a degradations.DegradationConfig (the LR
            made from the augmented HR crop by degradations.degrade).
    """
    import tensorflow as tf

    seed = int(seed) % 2**63
    keys = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2)
    sizes = tf.constant(np.asarray(sizes, np.int64).reshape(-1, 2))
    plan = functools.partial(_batch_plan, keys=keys, sizes=sizes, batch_size=batch_size, lr_crop=lr_crop,
                             augment_p=float(augment_p))
    hr_crop = scale * lr_crop

    def crop(b, ks, ys, xs, augmentations):
        lrs, hrs = [], []
        for i, ((lr, hr), y, x, chosen) in enumerate(zip(images([int(k) for k in ks]), ys, xs, augmentations)):
            hr = _augment(hr[scale * y:scale * y + hr_crop, scale * x:scale * x + hr_crop], chosen)
            if degradation is None:
                lr = _augment(lr[y:y + lr_crop, x:x + lr_crop], chosen)
            else:
                lr = degradations.degrade(hr, scale, degradation, (seed, int(b), i))
            lrs.append(lr)
            hrs.append(hr)
        return np.stack(lrs), np.stack(hrs)

    def make_batch(b):
        lr, hr = tf.numpy_function(crop, (b, *plan(b)), [tf.uint8, tf.uint8], stateful=False)
        lr = tf.ensure_shape(lr, [batch_size, lr_crop, lr_crop, 3])
        hr = tf.ensure_shape(hr, [batch_size, hr_crop, hr_crop, 3])
        return to_float(lr), to_float(hr)

    ds = tf.data.Dataset.counter(start_batch).map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def available_memory():
    """Bytes of memory available now (Linux /proc/meminfo), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
