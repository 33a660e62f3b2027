"""Resume is exact: a seeded run interrupted at an epoch boundary and resumed logs the same per-epoch
training loss and validation PSNR as the same run uninterrupted (each epoch's crops and augmentations
are a function of the seed and the epoch; weights, Adam's moments, step count, learning rate, early
stopping and the best-so-far value all come back from the checkpoint)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from sr_keras.train import loop
from sr_keras.train.settings import TrainConfig

pytestmark = pytest.mark.slow  # interrupted and resumed training runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = ["--track", "bicubic_x4", "--steps-per-epoch", "3", "--batch-size", "2", "--hr-crop", "48", "--val-images", "2",
       "--num-blocks", "2", "--filters", "16", "--seed", "3"]

# One child process for all three runs: --seed turns on TF op determinism for the whole process.
CHILD = r"""
import glob, json, os, sys
import tensorflow as tf
from sr_keras.cli import train_srresnet

def series(run, split, tag):
    values = {}
    for f in glob.glob(os.path.join(run, "logs", split, "events.out.tfevents.*")):
        for e in tf.compat.v1.train.summary_iterator(f):
            for v in e.summary.value:
                if v.tag == tag:
                    assert e.step not in values, (run, split, tag, e.step)  # no epoch logged twice
                    values[e.step] = float(tf.make_ndarray(v.tensor))
    return [[step, values[step]] for step in sorted(values)]

base, data, run_flags = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = {}
for name, epochs in (("straight", ["4"]), ("split", ["2", "4"])):
    run = os.path.join(base, name)
    for i, n in enumerate(epochs):
        train_srresnet.main(run_flags + ["--data", data, "--out", run, "--export", run + "-export", "--epochs", n]
                            + (["--resume"] if i else []))
    result[name] = {"loss": series(run, "train", "epoch_loss"), "psnr": series(run, "validation", "epoch_psnr")}
print("RESULT " + json.dumps(result))
"""


def hr_folder(root):
    """A folder of HR photographs with train/ (3), valid/ (2) and test/ (1) subfolders, 64-80 pixels."""
    crops = {"train": [("astronaut", 80), ("chelsea", 72), ("rocket", 64)], "valid": [("coffee", 64), ("camera", 64)],
             "test": [("immunohistochemistry", 64)]}
    for split, photos in crops.items():
        os.makedirs(os.path.join(root, split))
        for name, side in photos:
            img = getattr(skimage.data, name)()
            img = np.dstack([img] * 3) if img.ndim == 2 else img[..., :3]
            h, w = img.shape[:2]
            hr = np.ascontiguousarray(img[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2])
            Image.fromarray(hr).save(os.path.join(root, split, f"{name}.png"))
    return str(root)


def test_a_run_resumed_at_an_epoch_boundary_logs_what_the_uninterrupted_run_logs(tmp_path):
    data = hr_folder(tmp_path / "hr")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), data, json.dumps(RUN)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    straight, split = result["straight"], result["split"]
    for key in ("loss", "psnr"):
        assert [step for step, _ in straight[key]] == [step for step, _ in split[key]] == [0, 1, 2, 3], key
        got, want = [v for _, v in split[key]], [v for _, v in straight[key]]
        assert np.allclose(got, want, rtol=1e-5, atol=0), (key, got, want)
    assert len({v for _, v in straight["loss"]}) == 4  # the epochs differ: the comparison is not between constants


def test_a_resumed_run_draws_the_batches_the_uninterrupted_run_draws_at_that_epoch(tmp_path):
    data = hr_folder(tmp_path / "hr")
    train = TrainConfig(track="bicubic_x4", data=data, out=str(tmp_path / "run"), export=str(tmp_path / "e"),
                        batch_size=2, hr_crop=48, steps_per_epoch=3, seed=3, augment_p=0.5)
    straight = [hr.numpy() for _, hr in loop.datasets(train, 0)[0].take(9)]
    resumed = [hr.numpy() for _, hr in loop.datasets(train, 2)[0].take(3)]
    for got, want in zip(resumed, straight[6:9]):  # epoch 3 (0-based 2) = batches 6, 7, 8
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(resumed[0], straight[0])  # not epoch 1's crops again
