"""Score SR models against bicubic on DIV2K or a folder of photographs (PSNR/SSIM on Y as Table 2, NIQE).

Convention (sr_keras.evaluation.metrics): Y of BT.601 from uint8 RGB, `scale` border pixels cropped, PSNR with
data range 255, SSIM with an 11x11 Gaussian window (sigma 1.5); model outputs are rounded and clipped
to uint8 before scoring. NIQE (sr_keras.evaluation.perception, the MATLAB release's) of each whole output and of
the HR images themselves (their own row), blank below 96x96 pixels. Writes results.json/.csv/.md,
per_image.csv, perception_distortion.png and figures/ under --out (checked for writability first).
An image a model cannot take is named and left out of every row, the rest is scored, and the exit
status is then 2. The work is done by sr_keras.evaluation.benchmark (pairs, the loop),
sr_keras.evaluation.scoring (each pair scored), sr_keras.evaluation.results (scores, result files) and
sr_keras.evaluation.figures.
"""
import os

from sr_keras.cli.parsing import ArgumentParser, checked, naming_flags, non_negative_int, positive_int
from sr_keras.core.errors import UserError, cli_entry
from sr_keras.core.outputs import check_writable_folder, removed_if_left_empty
from sr_keras.core.tfbanner import hide_tensorflow_banner
from sr_keras.evaluation import results

figure_count = checked(int, lambda v: v >= -1, "an integer >= -1 (-1 = all)")
metric_list = checked(results.parse_metrics, bool, "a comma-separated subset of " + ",".join(results.METRICS))
# The flag that gives each library argument the errors name (sr_keras.cli.parsing.naming_flags).
FLAGS = dict(model="--model", trust_model="--trust-model", hr_dir="--hr-dir", lr_dir="--lr-dir", degrade="--degrade",
             logs="--logs", out="--out")


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH",
                   help="a model to score (repeatable): a shipped model name (srresnet_x4), a SavedModel folder "
                        "from --export or a .keras file, its row named NAME (default: the name or file stem); "
                        "PATH may contain {track} to pick one model per track")
    p.add_argument("--metrics", type=metric_list, default=",".join(results.METRICS), metavar="LIST",
                   help="comma-separated metrics to compute: psnr, ssim (on Y, against HR) and niqe (no reference; "
                        "images below 96x96 get none)")
    g = p.add_argument_group("DIV2K mode")
    g.add_argument("--data", default="tfds", help="'tfds', a DIV2K-layout folder, or an HR folder "
                   "(see docs/data.md); may contain {track}")
    g.add_argument("--track", default="all", help="a DIV2K track (e.g. bicubic_x4), or 'all' = the report's six")
    g.add_argument("--split", default="test", choices=("test", "validation"),
                   help="test = images 0851-0900, validation = 0801-0850 (the report's split)")
    f = p.add_argument_group("folder mode")
    f.add_argument("--hr-dir", help="folder of HR images; switches to folder mode")
    f.add_argument("--lr-dir", help="folder of LR images matched by file stem (0801.png or 0801x4.png); "
                   "without it, LR is made from the HR with MATLAB-compatible bicubic")
    f.add_argument("--scale", type=positive_int, help="upscaling factor (folder mode)")
    p.add_argument("--protocol", default="full", choices=("full", "center180"),
                   help="full = whole images; center180 = the report's 180x180 HR centre crop (model run on "
                        "the matching LR crop)")
    p.add_argument("--degrade", metavar="noise=S,jpeg=Q",
                   help="degrade every LR image before scoring: Gaussian noise of sigma S grey levels, then JPEG "
                        "at quality Q (either may be left out), seeded by the image's name; scored against the "
                        "clean HR (docs/degradations.md)")
    p.add_argument("--out", default=os.path.join("runs", "eval"), help="output folder")
    p.add_argument("--figures", type=figure_count, default=4,
                   help="comparison figures for the first N images of each track (-1 = all)")
    p.add_argument("--logs", nargs="+", default=[], metavar="RUN_DIR",
                   help="training run folders whose TensorBoard logs are plotted as curves")
    p.add_argument("--tile", type=non_negative_int, default=256,
                   help="inference tile side in LR pixels (0 = whole image)")
    p.add_argument("--tile-overlap", type=non_negative_int, default=16,
                   help="LR pixels of context around each tile (raised to the model's receptive radius when larger)")
    p.add_argument("--trust-model", action="store_true",
                   help="load a SavedModel folder without model.keras (refused otherwise); its graph is still "
                        "checked against the tensor-math allowlist (docs/reliability.md, Threat model): only for "
                        "SavedModels you wrote yourself")
    a = p.parse_args(argv)
    if a.hr_dir is None and (a.lr_dir is not None or a.scale is not None):
        p.error("--lr-dir and --scale belong to folder mode: give --hr-dir too")
    if a.hr_dir is not None and a.scale is None:
        p.error("folder mode needs --scale (e.g. --scale 4)")
    return a


def parse_models(specs):
    """--model values -> [(name, path)]; UserError naming a bad one.

    A value is `NAME=PATH` or a bare PATH or shipped model name (as upscale.py's --model), which
    names its row by itself: `srresnet_x4` -> srresnet_x4, `runs/m/model.keras` -> model.
    `bicubic` and `HR` are the baseline's and the HR images' rows.
    """
    from sr_keras.evaluation.scoring import BASELINE

    models = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            path, name = spec, os.path.basename(os.path.normpath(spec)) if spec else ""
            stem, ext = os.path.splitext(name)
            name = stem if ext in (".keras", ".tflite") else name
        if not name or not path:
            raise UserError(f"--model '{spec}' must be NAME=PATH or a model name, e.g. --model srresnet_x4 or "
                            "--model srresnet=saved_models/srresnet_x4")
        taken = next((row for row in (BASELINE, results.REFERENCE) if row.lower() == name.lower()), None)
        if taken:
            raise UserError(f"--model '{spec}': the name '{name}' is taken by the {taken} row; "
                            "choose another (NAME=PATH)")
        if name in (m[0] for m in models):
            raise UserError(f"--model '{spec}': the name '{name}' is given twice")
        models.append((name, path))
    return models


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out '{args.out}' exists and is not a folder")
    with removed_if_left_empty(args.out), naming_flags(**FLAGS):  # a refused run leaves no --out it made
        _evaluate(args)


def _evaluate(flags):
    """The rest of main(), from the parsed flags, inside removed_if_left_empty and naming_flags(**FLAGS)."""
    check_writable_folder(flags.out)
    for run in flags.logs:
        if not os.path.isdir(run):
            raise UserError(f"--logs '{run}' is not a folder: give a training run folder (its --out)")
    from sr_keras.data import degradations

    degrade = None if flags.degrade is None else degradations.parse_degrade(flags.degrade)
    hide_tensorflow_banner()
    from sr_keras.evaluation import benchmark

    models = parse_models(flags.model)
    if flags.hr_dir is not None:
        if any("{track}" in path for _, path in models):
            raise UserError("{track} in a --model path needs DIV2K mode (--data/--track), not --hr-dir")
        tracks = [benchmark.FolderTrack(flags.hr_dir, flags.lr_dir, flags.scale)]
    else:
        names = benchmark.REPORT_TRACKS if flags.track == "all" else (flags.track,)
        tracks = [benchmark.Div2kTrack(flags.data.replace("{track}", t), t, flags.split) for t in names]
    options = benchmark.Options(protocol=flags.protocol, figures=flags.figures, tile=flags.tile,
                                 tile_overlap=flags.tile_overlap, degrade=degrade, trust_model=flags.trust_model,
                                 metrics=flags.metrics)
    md, failed = benchmark.evaluate(tracks, models, flags.out, options, logs=flags.logs)
    print(md, end="")
    plot = f", {benchmark.PD_FIGURE}" if os.path.exists(os.path.join(flags.out, benchmark.PD_FIGURE)) else ""
    print(f"results in {flags.out}/ (results.json, results.csv, results.md, per_image.csv{plot}, figures/)")
    if failed:
        shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise UserError(f"{len(failed)} image(s) left out of the results: {shown} (reasons above)")

