#!/usr/bin/env python3
"""Regenerate the README's "Pretrained models" table from saved_models/*/model_card.json:

    python tools/models_table.py            # rewrite the table in README.md
    python tools/models_table.py --check    # exit 1 when README.md's table is out of date

The table sits between the README's `<!-- models-table -->` and `<!-- /models-table -->` lines.
"""
import argparse
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sr_keras.cli.parsing import HelpFormatter  # noqa: E402
from sr_keras.core.errors import UserError, cli_entry  # noqa: E402

START, END = "<!-- models-table -->", "<!-- /models-table -->"


def _degradation_name(card, data):
    degradation = card.get("degradation") or data.get("degradation", "bicubic")
    return degradation["name"] if isinstance(degradation, dict) else degradation.split(" ")[0]


def _niqe(scores):
    """bicubic -> model NIQE, with the compared model's between them where the card scored one."""
    if "niqe" not in scores["model"]:
        return "-"
    others = [f"{label} {v['niqe']:.2f}" for label, v in scores.items()
              if isinstance(v, dict) and "niqe" in v and label not in ("bicubic", "model", "hr", "gain")]
    return " -> ".join([f"{scores['bicubic']['niqe']:.2f}", *others, f"{scores['model']['niqe']:.2f}"])


def rows(models_dir):
    cards = []
    for path in sorted(glob.glob(os.path.join(models_dir, "*", "model_card.json"))):
        with open(path) as f:
            cards.append(json.load(f))
    lines = ["| name | scale | parameters | trained on | steps (batch x HR crop) | wall time | "
             "test photos: bicubic -> model PSNR-Y (gain) | SSIM-Y | NIQE (lower = more natural) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in cards:
        data = c["training_data"]
        if "train_photographs" in data:
            trained_on = f"{data['train_photographs']} photos at {len(data['train_scales'])} scales"
        else:
            trained_on = f"{data['train_images']} photos" if "train_images" in data else f"`--data {data['data']}`"
        degradations = [_degradation_name(c, data)]
        steps, wall = f"{c['optimizer_steps']:,} ({c['batch']} x {c['hr_crop']})", c["wall_time_s"]
        parent = c.get("initialised_from")
        while parent:  # a fine-tuned model: every stage's steps, the first first
            steps = f"{parent['optimizer_steps']:,} ({parent['batch']} x {parent['hr_crop']}) + {steps}"
            wall += parent["wall_time_s"]
            degradations.insert(0, _degradation_name(parent, {}))
            parent = parent.get("initialised_from")
        # the LR models of the stages, first first; bicubic only where no stage degraded
        degradation = ", ".join(dict.fromkeys(d for d in degradations if d != "bicubic")) or "bicubic"
        t = c.get("test_photographs") or c["test_split"]  # shipped cards (tools/model_card.py) or a run's own
        lines.append(
            f"| `{c['name']}` | x{c['architecture']['scale']} | {c['trainable_parameters']:,} | "
            f"{trained_on}, {degradation} LR | {steps} | {wall / 60:.0f} min | "
            f"{t['bicubic']['psnr_y']:.2f} -> {t['model']['psnr_y']:.2f} ({t['gain']['psnr_y']:+.2f} dB) | "
            f"{t['bicubic']['ssim_y']:.4f} -> {t['model']['ssim_y']:.4f} | {_niqe(t)} |")
    return lines


def replace_table(readme, table_lines):
    if START not in readme or END not in readme:
        raise UserError(f"README.md has no {START} ... {END} block to fill")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + "\n" + "\n".join(table_lines) + "\n" + END + tail


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    check = parser.parse_args(argv).check
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    updated = replace_table(readme, rows(os.path.join(ROOT, "saved_models")))
    if check:
        if updated != readme:
            raise UserError("README.md's Pretrained models table is out of date: run python tools/models_table.py")
        return
    with open(path, "w") as f:
        f.write(updated)


if __name__ == "__main__":
    main()
