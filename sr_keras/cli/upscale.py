"""Upscale pictures with a trained model: files or folders in, <stem>_x<s>.png out (or JPEG/WebP).

Large images are processed tile by tile and, as PNG at the model's scale, written to the file as the
tiles come out, so memory stays bounded (one tile's activations and one row of tiles) whatever the
image size. Grey images come back grey, RGBA keeps its alpha (upscaled with bicubic), 16-bit grey
PNGs come back 16-bit; JPEG and WebP keep the ICC profile and EXIF. Outputs are written atomically,
so --skip-existing can trust any output it finds. Files that cannot be read (or whose pixels the
format cannot hold, or the model cannot take) are named and skipped, the others written; the exit
status is then 2. An input is never overwritten (a folder upscaled into itself, --suffix "", -o).
--out (or -o's folder) is checked for writability before the model is loaded.

    python upscale.py --model srresnet_x4 photo.jpg holidays/ --out upscaled/ --ext jpg --outscale 2
"""
import os
import sys

from sr_keras.cli.parsing import (INT_MAX, ArgumentParser, checked, naming_flags, non_negative_int, positive_float,
                                  positive_int)
from sr_keras.core.errors import UserError, cli_entry, one_line
from sr_keras.core.outputs import check_writable_folder, check_writable_parent, removed_if_left_empty
from sr_keras.core.tfbanner import hide_tensorflow_banner

quality = checked(int, lambda v: 1 <= v <= 100, "an integer in [1, 100]")
# --tile-memory: MB, or "auto" (sr_keras.infer.memory.auto_tile_mb)
tile_memory = checked(lambda t: t if t == "auto" else int(t), lambda v: v == "auto" or 0 <= v <= INT_MAX,
                      "'auto' or an integer >= 0")
_OUT_EXTS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}


def parse_args(argv):
    from sr_keras.catalog import which_model

    intro, example = __doc__.split("\n\n")[0], __doc__.split("\n\n")[-1]
    p = ArgumentParser(description=intro, epilog=f"{which_model()}\n\n{example}",
                       usage="%(prog)s --model MODEL [options] INPUT [INPUT ...]\n       %(prog)s --list-models")
    p.add_argument("--model",
                   help="a model name (saved_models/ or $SR_KERAS_MODELS), a folder written by --export, "
                        "a .keras file, or a .tflite file written by export.py (required)")
    p.add_argument("--list-models", action="store_true",
                   help="list every model a name gives: scale, what it is for, its card's score; then exit")
    p.add_argument("--trust-model", action="store_true",
                   help="load a SavedModel folder without model.keras (refused otherwise); its graph is still "
                        "checked against the tensor-math allowlist (docs/reliability.md, Threat model): only for "
                        "SavedModels you wrote yourself")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files or folders of images (at least one)")
    p.add_argument("--out", help="output folder (created if missing); or -o")
    p.add_argument("-o", dest="output", metavar="FILE",
                   help="output file for a single input file (its extension sets the format unless --ext is given)")
    p.add_argument("--ext", choices=("png", "jpg", "webp"), default=None,
                   help="output format (default: png, or -o FILE's extension); JPEG and WebP hold 8 bits, "
                        "JPEG no alpha")
    p.add_argument("--quality", type=quality, default=95, help="JPEG/WebP quality")
    p.add_argument("--outscale", type=positive_float, default=None, metavar="FLOAT",
                   help="final scale: outputs are round(FLOAT x input size), Lanczos-resampled from the model's "
                        "output (default: the model's scale)")
    p.add_argument("--suffix", default=None,
                   help="added to the input's stem to name outputs in --out (default: _x<final scale>)")
    p.add_argument("--skip-existing", action="store_true",
                   help="do not upscale an input whose output exists (outputs are written atomically: one that "
                        "exists is complete)")
    p.add_argument("--tile", type=non_negative_int, default=None,
                   help="tile side in LR pixels; 0 = the whole image in one pass (default: as large as --tile-memory "
                        "allows: a picture that fits runs in one pass, the fastest on a CPU)")
    p.add_argument("--tile-overlap", type=non_negative_int, default=16,
                   help="LR pixels of context around each tile (raised to the model's receptive radius when larger)")
    p.add_argument("--tile-memory", type=tile_memory, default="auto", metavar="MB",
                   help="largest activation memory of one tile; tiles shrink below --tile to stay within it "
                        "(0 = no limit; auto = a quarter of the memory left, 256 to 4096 MB)")
    p.add_argument("--batch-tiles", type=positive_int, default=1, metavar="N",
                   help="tiles per model call (all of one size; the same pixels as 1): faster on a GPU, N times "
                        "the activation memory of --tile-memory")
    a = p.parse_args(argv)
    if a.list_models:
        return a
    missing = [name for name, given in (("--model", a.model), ("INPUT", a.inputs)) if not given]
    if missing:  # argparse's own words; not required there, as --list-models needs neither
        p.error(f"the following arguments are required: {', '.join(missing)}")
    if (a.out is None) == (a.output is None):
        p.error("give --out FOLDER, or -o FILE for a single input file")
    return a


def output_format(namespace):
    """The --ext in effect: as given, else -o FILE's extension, else png."""
    if namespace.output is None:
        return namespace.ext or "png"
    from_name = _OUT_EXTS.get(os.path.splitext(namespace.output)[1].lower())
    if namespace.ext is None and from_name is None:
        raise UserError(f"-o '{namespace.output}': cannot tell the format from its extension: name it .png, .jpg or "
                        ".webp, or give --ext")
    if namespace.ext is not None and from_name is not None and from_name != namespace.ext:
        raise UserError(f"-o '{namespace.output}' names a {from_name} file but --ext is {namespace.ext}")
    return namespace.ext or from_name


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    if args.list_models:  # cards only: no TensorFlow
        from sr_keras.catalog import format_models, list_models

        print(format_models(list_models()))
        return
    from sr_keras.infer.loading import resolve
    from sr_keras.infer.pictures import Output, Tiling, collect_inputs, file_identity

    output = Output(ext=output_format(args), quality=args.quality, outscale=args.outscale, suffix=args.suffix)
    files, problems = collect_inputs(args.inputs)
    if args.output is not None:
        if len(args.inputs) != 1 or len(files) != 1 or not os.path.isfile(args.inputs[0]):
            raise UserError(f"-o '{args.output}' takes one input file; for several inputs or a folder give --out")
        if os.path.isdir(args.output):
            raise UserError(f"-o '{args.output}' is a folder: give a file name, or use --out for a folder")
        target = file_identity(args.output)
        if target is not None and target == file_identity(files[0]):
            raise UserError(f"-o '{args.output}' is the input file, which is never overwritten: give another name")
    out_dir = args.out if args.output is None else (os.path.dirname(args.output) or ".")
    if args.output is None and os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out '{args.out}' exists and is not a folder: give a folder path")
    if not files:  # one line naming every input that gave nothing
        raise UserError(f"nothing to upscale: {'; '.join(msg for _, msg in problems)}; "
                        "give image files or folders that hold images")
    with naming_flags(model="--model", trust_model="--trust-model", out="--out" if args.output is None else "-o"):
        # resolved once, here; a SavedModel alone is checked by load_upscaler, after the output checks
        model = resolve(args.model, check=False)
        with removed_if_left_empty(out_dir):  # a refused model or no image written leaves no folder made here
            _upscale(args, model, files, problems, out_dir, output,
                     Tiling(args.tile, args.tile_overlap, args.tile_memory, args.batch_tiles))


def _upscale(flags, model, files, problems, out_dir, output, tiling):
    """The rest of main(), from the checked flags, inside removed_if_left_empty and naming_flags."""
    if flags.output is None:  # before the model is loaded: a place that cannot be written fails at once
        check_writable_folder(flags.out)
    else:
        check_writable_parent(flags.output)
    for _, msg in problems:
        print(f"error: {one_line(msg)}", file=sys.stderr)

    hide_tensorflow_banner()  # TensorFlow loads only once the arguments are sound
    from sr_keras.infer.inference import load_upscaler
    from sr_keras.infer.pictures import upscale_files

    upscaler = load_upscaler(model, trust_model=flags.trust_model)
    written, skipped, failed = upscale_files(upscaler, files, out_dir, tiling, output, out_file=flags.output,
                                             skip_existing=flags.skip_existing)
    note = f"; skipped {skipped} whose output exists" if skipped else ""
    print(f"wrote {written} image(s) to {flags.out or flags.output}{note}")
    failed = [f"'{given}'" for given, _ in problems] + [f"'{path}'" for path in failed]
    if failed:
        shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise UserError(f"{len(failed)} input(s) failed: {shown} (reasons above); the other {written} were written")
