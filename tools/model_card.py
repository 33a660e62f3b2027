#!/usr/bin/env python3
"""Write model_card.json for an export of train_srresnet.py, from what the run itself recorded:

    python tools/model_card.py saved_models/srresnet_x4 --run runs/srresnet_x4 --corpus corpus/ \\
        --command "python train_srresnet.py --data corpus/ --track bicubic_x4 ..." --commit d1190e1

The card holds the architecture (the export's generator.json), the trainable parameter count (of its
model.keras), the training data (the corpus manifest: sources, counts, licences, checksums), the
recipe (the command parsed by train_srresnet.py's own parser), optimizer steps and wall time (the
run's checkpoint and TensorBoard event times), the hardware, the command and commit, and PSNR-Y /
SSIM-Y of the model and of bicubic on the corpus' held-back test photographs (LR: Pillow bicubic
x1/scale, the full image scored, `scale` border pixels cropped).
"""
import argparse
import glob
import json
import os
import platform
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sr_keras.cli import HelpFormatter  # noqa: E402
from sr_keras.errors import UserError, cli_entry  # noqa: E402

# SRResNet's trainable parameters in the report's Table 1.
TABLE1 = {2: 1_401_749, 3: 1_586_389, 4: 1_549_462}


def hardware():
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, no GPU"


def recipe(command):
    """The training flags of `command`, as train_srresnet.py's parser reads them (defaults included)."""
    sys.path.insert(0, ROOT)
    import train_srresnet

    argv = shlex.split(command)
    argv = argv[argv.index(next(a for a in argv if a.endswith("train_srresnet.py"))) + 1:]
    values = vars(train_srresnet.build_parser().parse_args(argv))
    keys = ("loss", "lr", "lr_schedule", "lr_decay_epochs", "lr_decay_factor", "epochs", "steps_per_epoch",
            "batch_size", "hr_crop", "augment_p", "seed", "patience", "init_trunk", "precision")
    picked = {k: values[k] for k in keys if k in values}
    picked["optimizer"] = "Adam (beta1 0.9, beta2 0.999, epsilon 1e-8)"
    if picked.get("lr_schedule") == "cosine":
        picked["schedule"] = "per-epoch cosine decay of the learning rate to 0 over --epochs"
    return picked


def event_times(run_dir):
    """(first, last) wall time of the run's training TensorBoard events, over all its event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    times = []
    for path in glob.glob(os.path.join(run_dir, "logs", "train", "events.out.tfevents.*")):
        times += [event.wall_time for event in EventFileLoader(path).Load() if event.wall_time]
    if not times:
        raise UserError(f"--run {run_dir}: no TensorBoard training events")
    return min(times), max(times)


def test_scores(export_dir, test_dir, scale):
    """Mean and per-image PSNR-Y / SSIM-Y of bicubic and of the export on every photo of test_dir."""
    import numpy as np

    from sr_keras import metrics
    from sr_keras.imageio import list_images, read_rgb
    from sr_keras.imresize import crop_to_multiple, downscale, upscale_bicubic
    from sr_keras.inference import load_upscaler, upscale_image

    upscaler = load_upscaler(export_dir)
    rows = []
    for path in list_images(test_dir):
        hr = crop_to_multiple(read_rgb(path), scale)
        lr = downscale(hr, scale)
        row = {"image": os.path.basename(path)}
        for name, sr in (("bicubic", upscale_bicubic(lr, scale)), ("model", upscale_image(upscaler, lr))):
            row[name] = {"psnr_y": round(float(metrics.psnr_y(hr, sr, scale)), 4),
                         "ssim_y": round(float(metrics.ssim_y(hr, sr, scale)), 4)}
        rows.append(row)
        print(f"  {row['image']}: bicubic {row['bicubic']['psnr_y']:.2f} dB, model {row['model']['psnr_y']:.2f} dB",
              flush=True)
    mean = {name: {k: round(float(np.mean([r[name][k] for r in rows])), 4) for k in ("psnr_y", "ssim_y")}
            for name in ("bicubic", "model")}
    gain = {k: round(mean["model"][k] - mean["bicubic"][k], 4) for k in ("psnr_y", "ssim_y")}
    return {"images": len(rows), "lr": f"Pillow bicubic x1/{scale} of the HR photo",
            "protocol": f"Y channel (BT.601), {scale}-pixel border cropped, SSIM 11x11 Gaussian (sigma 1.5)",
            **mean, "gain": gain, "per_image": rows}


def card(export_dir, run_dir, corpus_dir, command, commit, notes):
    from sr_keras.loading import load_generator_config, load_keras_model
    from sr_keras.models import count_trainable

    config = load_generator_config(export_dir)
    if config is None:
        raise UserError(f"{export_dir}: no generator.json (re-export it with this version)")
    params = count_trainable(load_keras_model(export_dir))
    with open(os.path.join(run_dir, "checkpoints", "checkpoint.json")) as f:
        state = json.load(f)
    with open(os.path.join(corpus_dir, "manifest.json")) as f:
        manifest = json.load(f)
    rec = recipe(command)
    first, last = event_times(run_dir)
    used = [e for e in manifest["files"] if e["split"] in ("train", "valid")]
    return {
        "name": os.path.basename(os.path.normpath(export_dir)),
        "architecture": config.to_dict(),
        "trainable_parameters": params,
        "report_table1_parameters": TABLE1.get(config.scale),
        "training_data": {
            "corpus": "python tools/build_corpus.py CORPUS_DIR (photographs of the Debian packages "
                      "lomiri-wallpapers-16.04/20.04, scikit-image, scikit-learn and matplotlib samples)",
            "train_images": manifest["counts"]["train"], "validation_images": manifest["counts"]["valid"],
            "test_images_held_back": manifest["counts"]["test"],
            "hr_long_side": manifest["long_side"],
            "licences": sorted({e["licence"] for e in used}),
            "licence_note": "CC-BY/CC-BY-SA/CC0 photographs (per-file licences in the corpus manifest); "
                            "attribution for the trained weights follows the manifest's authors",
            "files": [{"file": e["file"], "sha256": e["sha256"], "licence": e["licence"]} for e in manifest["files"]],
        },
        "degradation": "bicubic (Pillow, MATLAB-style antialiased) x1/scale of each HR crop",
        "recipe": rec,
        "epochs_completed": state["epoch"],
        "best_epoch": state.get("best_epoch"),
        "optimizer_steps": state["epoch"] * rec["steps_per_epoch"],
        "batch": rec["batch_size"],
        "hr_crop": rec["hr_crop"],
        "wall_time_s": round(last - first),
        "hardware": hardware(),
        "command": command,
        "commit": commit,
        "notes": notes,
        "test_photographs": test_scores(export_dir, os.path.join(corpus_dir, "test"), config.scale),
    }


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("export", help="export folder (SavedModel + model.keras + generator.json)")
    parser.add_argument("--run", required=True, help="the run folder (--out) that trained it")
    parser.add_argument("--corpus", required=True, help="the corpus folder it trained on (with manifest.json)")
    parser.add_argument("--command", required=True, help="the exact training command")
    parser.add_argument("--commit", required=True, help="the commit the training ran at")
    parser.add_argument("--notes", default="", help="anything else the card should say")
    a = parser.parse_args(argv)
    result = card(a.export, a.run, a.corpus, a.command, a.commit, a.notes)
    from sr_keras.imageio import atomic_write_text

    atomic_write_text(os.path.join(a.export, "model_card.json"), json.dumps(result, indent=1) + "\n")
    t = result["test_photographs"]
    print(f"{result['name']}: {result['trainable_parameters']:,} parameters; test photographs: bicubic "
          f"{t['bicubic']['psnr_y']:.2f} dB, model {t['model']['psnr_y']:.2f} dB ({t['gain']['psnr_y']:+.2f})")


if __name__ == "__main__":
    main()
