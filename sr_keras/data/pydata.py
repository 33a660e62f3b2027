"""The data pipelines of Keras backends without TensorFlow (KERAS_BACKEND=jax): keras.utils.PyDataset.

They take what sr_keras.data.loaders resolves (checked pairs, decoded images) and give what the tf.data pipelines of
sr_keras.data.pipeline give: full-size (lr, hr) float32 pairs in [0, 1] for validation, and infinite seeded
training batches with the same crops rules, augmentation (pipeline's _augment: h-flip, v-flip, rot90 cw,
rot90 ccw, each with probability p) and degradations (degradations.degrade seeded by (seed, batch,
example), so the LR of a given HR crop is the tf.data pipeline's).

Training batch b is a pure function of (seed, b), drawn with NumPy generators: example g = b*B + i shows
image perm_p[g % n] of pass p = g // n (perm_p a permutation seeded by (seed, p): every pass shows every
image once), and the LR windows and augmentation flags of batch b come from a generator seeded by
(seed, b). A dataset that starts at batch e*S therefore yields what an uninterrupted one yields after e*S
batches, and --resume stays exact. The draws are NumPy's, not TensorFlow's stateless ones, so for the same
seed the two pipelines pick other windows: a run is repeatable on one backend.
"""
import concurrent.futures
import os

import keras
import numpy as np

from sr_keras.data import degradations, pairing
from sr_keras.data.pipeline import _augment


def batch_plan(b, seed, sizes, batch_size, lr_crop, augment_p):
    """(image indices, LR window tops, lefts, augmentation flags [B, 4]) of training batch b.

    Args:
        b: the batch's index, counted over the whole run.
        seed: non-negative integer.
        sizes: (n, 2) int array of the LR (height, width) of each image, each side >= lr_crop.
        batch_size, lr_crop, augment_p: as TrainingSequence's.
    """
    n = len(sizes)
    g = b * batch_size + np.arange(batch_size)  # the batch's example numbers
    perms = {p: np.random.default_rng([seed, 0, int(p)]).permutation(n) for p in np.unique(g // n)}
    k = np.array([perms[p][r] for p, r in zip(g // n, g % n)])
    rng = np.random.default_rng([seed, 1, int(b)])
    yx = rng.integers(0, sizes[k] - lr_crop + 1)  # [B, 2]: each window's top and left
    flags = rng.random((batch_size, 4)) < augment_p
    return k, yx[:, 0], yx[:, 1], flags


class TrainingSequence(keras.utils.PyDataset):
    """Infinite (lr, hr) float32 batches of seeded crops (module docstring), from batch `start_batch`.

    Batches are made ahead by `workers` threads (decoding, Pillow resizes and JPEG release the GIL); item i
    is batch start_batch + i whatever order they finish in. Arguments as pipeline.training_pipeline's.
    """

    def __init__(self, images, sizes, *, scale, batch_size, lr_crop, augment_p, seed, start_batch,
                 degradation=None, workers=None):
        super().__init__()  # one Keras worker: batches are made ahead here, in order, by index
        self.images, self.scale, self.batch_size, self.lr_crop = images, int(scale), int(batch_size), int(lr_crop)
        self.sizes = np.asarray(sizes, np.int64).reshape(-1, 2)
        self.augment_p, self.seed, self.start_batch = float(augment_p), int(seed) % 2**63, int(start_batch)
        self.degradation = degradation
        self.ahead = workers or min(4, os.cpu_count() or 1)
        self._pool = concurrent.futures.ThreadPoolExecutor(self.ahead)
        self._pending = {}

    @property
    def num_batches(self):
        return None  # infinite: fit's steps_per_epoch cuts the epochs

    def batch(self, b):
        """Training batch b (counted from the run's start, not from start_batch) as uint8 (lr, hr)."""
        ks, ys, xs, flags = batch_plan(b, self.seed, self.sizes, self.batch_size, self.lr_crop, self.augment_p)
        s, lr_crop, hr_crop = self.scale, self.lr_crop, self.scale * self.lr_crop
        lrs, hrs = [], []
        for i, ((lr, hr), y, x, chosen) in enumerate(zip(self.images([int(k) for k in ks]), ys, xs, flags)):
            hr = _augment(hr[s * y:s * y + hr_crop, s * x:s * x + hr_crop], chosen)
            if self.degradation is None:
                lr = _augment(lr[y:y + lr_crop, x:x + lr_crop], chosen)
            else:
                lr = degradations.degrade(hr, s, self.degradation, (self.seed, int(b), i))
            lrs.append(lr)
            hrs.append(hr)
        return np.stack(lrs), np.stack(hrs)

    def __getitem__(self, index):
        for ahead in range(index, index + self.ahead):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self.batch, self.start_batch + ahead)
        for stale in [i for i in self._pending if i < index]:  # fit restarts at 0 after its symbolic build
            self._pending.pop(stale).cancel()
        lr, hr = self._pending.pop(index).result()
        return lr.astype(np.float32) / 255.0, hr.astype(np.float32) / 255.0


class EvalSequence(keras.utils.PyDataset):
    """Full-size (lr, hr) float32 pairs in [0, 1], batch dimension 1, in the order of `pairs`
    (pipeline.eval_pipeline's counterpart)."""

    def __init__(self, pairs, scale):
        super().__init__()
        self.pairs, self.scale = list(pairs), int(scale)

    @property
    def num_batches(self):
        return len(self.pairs)

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        if not 0 <= index < len(self.pairs):
            raise IndexError(f"index {index} of {len(self.pairs)} images")
        lr, hr = pairing.read_pair(self.pairs[index], self.scale)
        return lr[None].astype(np.float32) / 255.0, hr[None].astype(np.float32) / 255.0

    def take(self, n):
        """The first n images (n < 0: all), as tf.data.Dataset.take."""
        return EvalSequence(self.pairs if n < 0 else self.pairs[:n], self.scale)
