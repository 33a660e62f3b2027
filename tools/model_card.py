#!/usr/bin/env python3
"""Write model_card.json for an export of train_srresnet.py or train_srgan.py, from what the run recorded:

    python tools/model_card.py saved_models/srresnet_x4 --run runs/srresnet_x4 --corpus corpus/ \\
        --command "python train_srresnet.py --data corpus/ --track bicubic_x4 ..." --commit d1190e1

The card holds the architecture (the export's generator.json), the trainable parameter count (of its
model.keras), the training data (the corpus manifest: sources, counts, licences, checksums), the
recipe (the command parsed by its training script's own parser: a GAN card names its losses and
discriminator), optimizer steps and wall time (the run's checkpoint and TensorBoard event times), the
hardware, the command and commit, and PSNR-Y / SSIM-Y / NIQE of the model and of bicubic (and of a
--compare model) on the held-back test photographs of its data (LR: Pillow bicubic x1/scale, the whole
image scored, `scale` border pixels cropped; NIQE of the whole output).
"""
import argparse
import json
import math
import os
import shlex
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sr_keras.cli.parsing import HelpFormatter, naming_flags  # noqa: E402
from sr_keras.core.errors import UserError, cli_entry  # noqa: E402

# SRResNet's trainable parameters in the report's Table 1.
TABLE1 = {2: 1_401_749, 3: 1_586_389, 4: 1_549_462}


TRAINING_SCRIPTS = ("train_srresnet.py", "train_srgan.py")
RECIPE_KEYS = ("loss", "lr", "lr_schedule", "lr_decay_epochs", "lr_decay_factor", "epochs", "steps_per_epoch",
               "batch_size", "hr_crop", "augment_p", "seed", "patience", "init_trunk", "init_generator", "precision",
               "data", "degradation", "select")
# what a GAN run adds: its losses, its discriminator, and whether VGG took part
GAN_KEYS = ("gan", "discriminator", "pixel_loss", "pixel_weight", "content_weight", "adversarial_weight",
            "content_input", "content_layer", "content_activation", "content_criterion", "content_scale",
            "vgg_weights", "ema")
# a card's names for the metrics of sr_keras.evaluation.results
CARD_KEYS = {"psnr": "psnr_y", "ssim": "ssim_y", "niqe": "niqe"}


def last_training_command(commands):
    """The command whose flags are the recipe: a resumed run's last training command holds its final
    settings, and an interpolate.py step that made the export from the run's may follow it."""
    training = [c for c in commands if any(script in c for script in TRAINING_SCRIPTS)]
    if not training:
        raise UserError(f"no train_srresnet.py or train_srgan.py command among --command. Received: {commands!r}")
    return training[-1]


def recipe(command):
    """The training flags of `command`, as its script's parser reads them (defaults included)."""
    from sr_keras.cli import train_srgan, train_srresnet

    argv = shlex.split(command)
    script = next(a for a in argv if a.endswith(TRAINING_SCRIPTS))
    gan = script.endswith("train_srgan.py")
    parser = (train_srgan if gan else train_srresnet).build_parser()
    values = vars(parser.parse_args(argv[argv.index(script) + 1:]))
    picked = {k: values[k] for k in RECIPE_KEYS + (GAN_KEYS if gan else ()) if k in values}
    picked["optimizer"] = "Adam (beta1 0.9, beta2 0.999, epsilon 1e-8)" + (", one for G and one for D" if gan else "")
    if picked.get("lr_schedule") == "cosine":
        picked["schedule"] = "per-epoch cosine decay of the learning rate to 0 over --epochs"
    if gan:
        picked["generator_loss"] = (
            f"{values['pixel_weight']:g} x {values['pixel_loss'].upper()} pixel"
            + (f" + {values['content_weight']:g} x VGG19 {values['content_layer']} content"
               if values["content_weight"] > 0 else " (no VGG content loss: --content-weight 0, no VGG built)")
            + f" + {values['adversarial_weight']:g} x {values['gan']} adversarial against the "
              f"{values['discriminator']} discriminator")
    return picked


def test_scores(export_dir, source, track, scale, degrade=None, compare=None, niqe=False):
    """Mean and per-image PSNR-Y / SSIM-Y of bicubic and of the export on the test split of `source`
    (with `degrade`, a degradations.EvalDegradation, applied to each LR as evaluate.py --degrade does),
    scored by sr_keras.evaluation.scoring.score_pair as evaluate.py scores them.
    `compare`: a model name or export scored beside them (a GAN card's PSNR-oriented parent); `niqe`:
    also NIQE of every whole output and of the HR photo itself (lower = more natural)."""
    import numpy as np

    from sr_keras.data import loaders
    from sr_keras.evaluation import metrics
    from sr_keras.evaluation.results import REFERENCE
    from sr_keras.evaluation.scoring import score_pair
    from sr_keras.infer.inference import load_upscaler

    upscalers = {"model": load_upscaler(export_dir)}
    if compare is not None:
        upscalers[compare] = load_upscaler(compare)
    labels = ("bicubic", *upscalers)
    chosen = ("psnr", "ssim", "niqe") if niqe else ("psnr", "ssim")
    keys = [CARD_KEYS[m] for m in chosen]
    rows = []
    names = loaders.eval_names(source, track, "test")
    for name, (lr, hr) in zip(names, loaders.eval_dataset(source, track, "test")):
        lr, hr = metrics.float_to_uint8(lr[0].numpy()), metrics.float_to_uint8(hr[0].numpy())
        if degrade is not None:
            lr = degrade.apply(lr, name)
        row = {"image": os.path.basename(name)}
        for label, _, values in score_pair(lr, hr, scale, list(upscalers.items()), row["image"], chosen):
            if math.isnan(values.get("niqe", 0.0)):  # a card's NIQE means are over every photo
                raise UserError(f"{row['image']}: no NIQE for the {label} image (NIQE needs a 96x96 block "
                                "with texture)")
            row["hr" if label == REFERENCE else label] = {CARD_KEYS[m]: round(float(v), 4) for m, v in values.items()}
        rows.append(row)
        print(f"  {row['image']}: " + ", ".join(f"{label} {row[label]['psnr_y']:.2f} dB" for label in labels),
              flush=True)
    mean = {label: {k: round(float(np.mean([r[label][k] for r in rows])), 4) for k in keys} for label in labels}
    if niqe:
        mean["hr"] = {"niqe": round(float(np.mean([r["hr"]["niqe"] for r in rows])), 4)}
    gain = {k: round(mean["model"][k] - mean["bicubic"][k], 4) for k in keys}
    lr_made = f"Pillow (MATLAB-style) bicubic x1/{scale} of the HR photo"
    if degrade is not None:
        lr_made += f", then {degrade.describe()} (seeded per image, evaluate.py --degrade {degrade.spec()})"
    protocol = f"whole image, Y channel (BT.601), {scale}-pixel border cropped, SSIM 11x11 Gaussian (sigma 1.5)"
    if niqe:
        protocol += "; NIQE (MATLAB release conventions, sr_keras.niqe) of the whole output, lower = more natural"
    return {"images": len(rows), "lr": lr_made, "protocol": protocol, **mean, "gain": gain, "per_image": rows}


def training_degradation(rec):
    """How the run made its training LR."""
    name = rec.get("degradation", "bicubic")
    if name != "bicubic":
        from sr_keras.data.degradations import resolve

        return {"name": name, "description": "made from each HR crop on the fly by "
                "sr_keras.data.degradations (random blur, resize kernel, Gaussian/Poisson noise, JPEG, optional "
                f"second round), preset {name}; docs/degradations.md", "parameters": resolve(name).to_dict()}
    return "bicubic (Pillow, MATLAB-style antialiased) x1/scale of each HR crop"


def training_data(corpus_dir, source):
    """What the model trained on: the corpus manifest (with checksums), or scikit-image's samples."""
    if corpus_dir is None:
        from sr_keras.data.sources import SAMPLE_SPLITS

        if source != "samples":
            raise UserError(f"--corpus is required for a run on {source!r}")
        return {"source": "scikit-image's sample photographs (--data samples)",
                "train_images": len(SAMPLE_SPLITS["train"]), "validation_images": len(SAMPLE_SPLITS["validation"]),
                "test_images_held_back": len(SAMPLE_SPLITS["test"]), "splits": SAMPLE_SPLITS,
                "licence_note": "scikit-image sample data (public domain / CC0 / BSD, see skimage/data/README)"}
    with open(os.path.join(corpus_dir, "manifest.json")) as f:
        manifest = json.load(f)
    used = [e for e in manifest["files"] if e["split"] in ("train", "valid")]
    command, scales = "python tools/build_corpus.py CORPUS_DIR", {}
    if "train_scales" in manifest:  # a multi-scale corpus: its flag, and the photographs behind its files
        command += f" --train-scales {','.join(f'{v:g}' for v in manifest['train_scales'])}"
        scales = {"train_scales": manifest["train_scales"],
                  "train_photographs": len({e["source"] for e in manifest["files"] if e["split"] == "train"})}
    return {
        "corpus": f"{command} (photographs of the Debian packages "
                  "lomiri-wallpapers-16.04/20.04, scikit-image, scikit-learn and matplotlib samples)",
        "train_images": manifest["counts"]["train"], "validation_images": manifest["counts"]["valid"],
        "test_images_held_back": manifest["counts"]["test"], "hr_long_side": manifest["long_side"], **scales,
        "licences": sorted({e["licence"] for e in used}),
        "licence_note": "CC-BY/CC-BY-SA/CC0 and public-domain photographs (per-file licences and authors in the "
                        "corpus manifest); credit them when redistributing",
        "files": [{"file": e["file"], "sha256": e["sha256"], "licence": e["licence"]} for e in manifest["files"]],
    }


def lineage(parent):
    """What a model fine-tuned from another card's model inherits: that card's training, summarised
    (with the parent's own parent, recursively), so the card accounts for every step behind it."""
    keep = ("name", "degradation", "recipe", "optimizer_steps", "batch", "hr_crop", "wall_time_s", "hardware",
            "command", "commit", "notes", "initialised_from")
    return {k: parent[k] for k in keep if k in parent}


def card(export_dir, run_dir, corpus_dir, commands, commit, notes, degrade=None, parent=None, compare=None,
         niqe=False, run_export=None):
    from sr_keras.archs.models import count_trainable
    from sr_keras.exports.model_card import hardware, wall_time_s
    from sr_keras.infer.loading import load_generator_config, load_keras_model

    config = load_generator_config(export_dir)
    if config is None:
        raise UserError(f"{export_dir}: no generator.json (re-export it with this version)")
    params = count_trainable(load_keras_model(export_dir))
    with open(os.path.join(run_dir, "checkpoints", "checkpoint.json")) as f:
        state = json.load(f)
    wall = wall_time_s(run_dir)
    if run_export is not None:  # the run went on after the export the model came from: count up to that export
        with open(os.path.join(run_export, "model_card.json")) as f:
            exported = json.load(f)
        state = {"epoch": exported["epochs_completed"], "best_epoch": exported["epochs_completed"]}
        wall = exported["wall_time_s"]
    rec = recipe(last_training_command(commands))
    data_source = rec["data"]
    test_source = corpus_dir if corpus_dir is not None else data_source
    return {
        "name": os.path.basename(os.path.normpath(export_dir)),
        "architecture": config.to_dict(),
        "trainable_parameters": params,
        "report_table1_parameters": TABLE1.get(config.scale) if config.num_blocks == 16 else None,
        "training_data": training_data(corpus_dir, data_source),
        "degradation": training_degradation(rec),
        "recipe": rec,
        "epochs_completed": state["epoch"],
        "best_epoch": state.get("best_epoch"),
        "optimizer_steps": state["epoch"] * rec["steps_per_epoch"],
        "batch": rec["batch_size"],
        "hr_crop": rec["hr_crop"],
        "wall_time_s": wall,
        "hardware": hardware(),
        "command": commands[-1] if len(commands) == 1 else commands,
        "commit": commit,
        "notes": notes,
        **({"initialised_from": lineage(parent)} if parent is not None else {}),
        "test_photographs": test_scores(export_dir, test_source, f"bicubic_x{config.scale}", config.scale,
                                        compare=compare, niqe=niqe),
        **({"test_photographs_degraded": test_scores(export_dir, test_source, f"bicubic_x{config.scale}",
                                                     config.scale, degrade)} if degrade is not None else {}),
    }


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("export", help="export folder (SavedModel + model.keras + generator.json)")
    parser.add_argument("--run", required=True, help="the run folder (--out) that trained it")
    parser.add_argument("--corpus", default=None,
                        help="the corpus folder it trained on (with manifest.json); omit for --data samples runs")
    parser.add_argument("--command", required=True, action="append",
                        help="the exact training command; repeat it for each command of a resumed run, in order, then "
                             "any interpolate.py command that made the export from the run's")
    parser.add_argument("--commit", required=True, help="the commit the training ran at")
    parser.add_argument("--notes", default="", help="anything else the card should say")
    parser.add_argument("--init-card", default=None, metavar="MODEL_CARD_JSON",
                        help="the card of the model this run started from (--init-generator): its training is "
                             "kept in this card under initialised_from (copy it first if the export replaces it)")
    parser.add_argument("--degrade", default=None, metavar="noise=S,jpeg=Q",
                        help="also score the test photographs with this LR degradation (as evaluate.py --degrade)")
    parser.add_argument("--run-export", default=None, metavar="DIR",
                        help="the run's own export the model was made from, when the run went on after it: its "
                             "card's epochs and wall time are the model's")
    parser.add_argument("--compare", default=None, metavar="MODEL",
                        help="also score this model (a name or export folder) on the test photographs, e.g. a GAN "
                             "model's PSNR-oriented parent")
    parser.add_argument("--niqe", action="store_true",
                        help="also score NIQE (of every output and of the HR photographs); GAN cards need it")
    a = parser.parse_args(argv)
    from sr_keras.data.degradations import parse_degrade

    with naming_flags(degrade="--degrade"):
        degrade = parse_degrade(a.degrade) if a.degrade else None
    parent = None
    if a.init_card:
        with open(a.init_card) as f:
            parent = json.load(f)
    result = card(a.export, a.run, a.corpus, a.command, a.commit, a.notes, degrade, parent, a.compare, a.niqe,
                  a.run_export)
    from sr_keras.exports.model_card import write_card

    write_card(a.export, result)
    t = result["test_photographs"]
    print(f"{result['name']}: {result['trainable_parameters']:,} parameters; test photographs: bicubic "
          f"{t['bicubic']['psnr_y']:.2f} dB, model {t['model']['psnr_y']:.2f} dB ({t['gain']['psnr_y']:+.2f})")


if __name__ == "__main__":
    main()
