"""model_card.json: what produced an export, written beside it by every training run.

A card states the architecture (GeneratorConfig) and trainable parameter count, the data, the whole
training configuration, the optimizer steps, wall time and hardware, the command and the commit, and
(when the run scored its test split) PSNR-Y / SSIM-Y against bicubic. tools/model_card.py writes the
fuller cards of the shipped models (corpus checksums, per-image scores).
"""
import dataclasses
import glob
import json
import os
import platform
import shlex
import subprocess
import sys

from sr_keras.core.imageio import atomic_write_text

CARD_FILE = "model_card.json"


def hardware():
    """CPU model and core count, and the GPUs TensorFlow sees."""
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]
    return f"{cpu}, {os.cpu_count()} cores; " + (", ".join(gpus) if gpus else "no GPU")


def git_commit():
    """The commit of the checkout this package runs from, or None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def command_line():
    """This process' command, as typed (python SCRIPT ARGS...)."""
    return shlex.join(["python", os.path.relpath(sys.argv[0]) if sys.argv[0] else "python", *sys.argv[1:]])


def wall_time_s(run_dir):
    """Seconds from the first to the last TensorBoard training event of a run (resumed runs: all parts,
    the pauses between them included), or None without events."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    times = []
    for path in glob.glob(os.path.join(run_dir, "logs", "train", "events.out.tfevents.*")):
        times += [event.wall_time for event in EventFileLoader(path).Load() if event.wall_time]
    return round(max(times) - min(times)) if times else None


def run_card(train, generator_config, trainable_parameters, epochs_completed, test_scores=None):
    """The card of a training run's export.

    Args:
        train: the run's settings.TrainConfig.
        generator_config: the exported generator's config.GeneratorConfig.
        trainable_parameters: the generator's trainable parameter count.
        epochs_completed: epochs the run completed (its optimizer took epochs x steps_per_epoch steps).
        test_scores: benchmark.bicubic_vs_model() on the test split, or None.
    """
    card = {
        "name": os.path.basename(os.path.normpath(train.export)),
        "architecture": generator_config.to_dict(),
        "trainable_parameters": int(trainable_parameters),
        "training_data": {"data": train.data, "track": train.track, "degradation": train.degradation},
        "training": dataclasses.asdict(train),
        "epochs_completed": int(epochs_completed),
        "optimizer_steps": int(epochs_completed) * train.steps_per_epoch,
        "batch": train.batch_size,
        "hr_crop": train.hr_crop,
        "wall_time_s": wall_time_s(train.out),
        "hardware": hardware(),
        "command": command_line(),
        "commit": git_commit(),
    }
    if test_scores is not None:
        (bp, bs), (mp, ms) = test_scores["bicubic"], test_scores["model"]
        card["test_split"] = {"bicubic": {"psnr_y": round(bp, 4), "ssim_y": round(bs, 4)},
                              "model": {"psnr_y": round(mp, 4), "ssim_y": round(ms, 4)},
                              "gain": {"psnr_y": round(mp - bp, 4), "ssim_y": round(ms - bs, 4)},
                              "protocol": "Y channel (BT.601), scale-pixel border cropped"}
    return card


def write_card(export_dir, card):
    """Write `card` as export_dir/model_card.json (atomically)."""
    atomic_write_text(os.path.join(export_dir, CARD_FILE), json.dumps(card, indent=1) + "\n")
