"""`python -m benchmarks train|infer` print one valid JSON object per line with the documented fields."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_FIELDS = {"benchmark", "model", "scale", "batch", "hr_crop", "step_s", "patches_per_s", "precision", "jit",
                "device"}


def bench(*argv):
    """Run the benchmark CLI; return its stdout JSON objects (stdout must hold nothing else)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines, proc.stderr[-2000:]
    return [json.loads(line) for line in lines]


@pytest.mark.slow  # a whole training run
def test_train_srresnet_json_and_flops():
    (r,) = bench("train", "--model", "srresnet", "--scale", "4", "--batch", "2", "--hr-crop", "34", "--steps", "3",
                 "--num-blocks", "1", "--filters", "8")
    assert TRAIN_FIELDS <= set(r)
    assert (r["benchmark"], r["model"], r["scale"], r["batch"], r["precision"], r["jit"]) == \
        ("train", "srresnet", 4, 2, "float32", False)
    assert r["hr_crop"] == 32  # rounded down to a multiple of the scale, as the data pipeline does
    assert r["step_s"] > 0 and r["patches_per_s"] == pytest.approx(2 / r["step_s"], rel=1e-2)
    assert r["step_s_min"] <= r["step_s"] and r["steps"] == 3
    assert r["device"].startswith(("CPU:", "GPU:"))
    # conv MACs on an 8x8 LR input, 1 block, 8 filters: head 9x9x3x8, 3 body 3x3x8x8, up 3x3x8x32 at 8x8
    # and 16x16, tail 9x9x8x3 at 32x32; x2 images, x2 FLOP/MAC, x3 for forward + backward
    macs = 64 * (81 * 3 * 8 + 3 * 9 * 8 * 8 + 9 * 8 * 32) + 256 * 9 * 8 * 32 + 1024 * 81 * 8 * 3
    assert r["gflop_per_step"] == pytest.approx(6 * 2 * macs / 1e9, abs=0.006)


@pytest.mark.slow  # a whole training run
def test_train_srgan_mixed_precision_json():
    (r,) = bench("train", "--model", "srgan", "--batch", "2", "--hr-crop", "16", "--steps", "1", "--warmup", "1",
                 "--num-blocks", "1", "--filters", "8", "--precision", "mixed_bfloat16")
    assert TRAIN_FIELDS <= set(r)
    assert (r["model"], r["hr_crop"], r["precision"]) == ("srgan", 16, "mixed_bfloat16")
    assert r["step_s"] > 0


def test_infer_json():
    (r,) = bench("infer", "--lr-size", "40x24", "--tile", "16", "--repeats", "1", "--num-blocks", "1",
                 "--filters", "8")
    assert (r["benchmark"], r["scale"], r["lr_size"], r["tile"]) == ("infer", 4, [40, 24], 16)
    assert r["output_megapixels"] == pytest.approx(160 * 96 / 1e6, abs=1e-3)
    assert r["megapixels_per_s"] == pytest.approx(160 * 96 / 1e6 / r["image_s"], rel=2e-2)
    assert r["peak_mem_mb"] >= r["mem_before_mb"] > 0


def test_bad_flag_is_one_line_error():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "train", "--batch", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    # argparse's usage, then one error line naming the flag and the value as given
    assert proc.stderr.strip().splitlines()[-1] == (
        "python -m benchmarks train: error: argument --batch: expected a positive integer, got '0'")


def test_an_unknown_benchmark_is_refused_with_the_known_ones():
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "speed"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == (
        "python -m benchmarks: error: argument kind: invalid choice: 'speed' (choose from 'train', 'infer', 'data')")


def test_torch_reference_prints_the_train_fields_or_says_in_one_line_that_torch_is_missing():
    # PyTorch is an optional extra: without it the reference exits with one line; with it, it times the
    # identical SRResNet x4 (16 blocks and 64 filters by default: 1,549,462 parameters, as Keras' count)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.torch_srresnet", "--batch", "2", "--hr-crop", "34",
                           "--steps", "1", "--warmup", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if importlib.util.find_spec("torch") is None:
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.strip().splitlines() == [
            "error: benchmarks/torch_srresnet.py needs PyTorch, an optional extra for this comparison "
            "(pip install torch); sr-keras itself does not use it"]
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
        (r,) = [json.loads(line) for line in proc.stdout.splitlines()]
        assert TRAIN_FIELDS <= set(r) and (r["framework"], r["hr_crop"], r["batch"]) == ("torch", 32, 2)
        assert r["params"] == 1_549_462 and r["step_s"] > 0
