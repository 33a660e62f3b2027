#!/usr/bin/env python3
"""Upscale pictures with a trained model: files or folders in, <stem>_x<s>.png out.

Large images are processed tile by tile and written to the PNG as the tiles come out, so memory
stays bounded (one tile's activations and one row of tiles) whatever the image size. Grey images come
back grey, RGBA keeps its alpha (upscaled with bicubic), 16-bit grey PNGs come back 16-bit. Files that
cannot be read are named and skipped; the exit status is then non-zero.

    python upscale.py --model srresnet_x4 photo.jpg holidays/ --out upscaled/
"""
import argparse
import os
import sys

from sr_keras.cli import HelpFormatter, hide_tensorflow_banner, non_negative_int
from sr_keras.errors import UserError, cli_entry


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[-1],
                                formatter_class=HelpFormatter)
    p.add_argument("--model", required=True,
                   help="a model name (saved_models/ or $SR_KERAS_MODELS), a folder written by --export, "
                        "or a .keras file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--tile", type=non_negative_int, default=256,
                   help="tile side in LR pixels; 0 = the whole image in one pass")
    p.add_argument("--tile-overlap", type=non_negative_int, default=16,
                   help="LR pixels of context around each tile (raised to the model's receptive radius when larger)")
    p.add_argument("--tile-memory", type=non_negative_int, default=768, metavar="MB",
                   help="largest activation memory of one tile; tiles shrink below --tile to stay within it "
                        "(0 = no limit)")
    return p.parse_args(argv)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    from sr_keras.loading import resolve_model
    from sr_keras.upscaling import collect_inputs

    files, problems = collect_inputs(args.inputs)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out '{args.out}' exists and is not a folder: give a folder path")
    if not files:  # one line naming every input that gave nothing
        raise UserError(f"nothing to upscale: {'; '.join(msg for _, msg in problems)}; "
                        "give image files or folders that hold images")
    model = resolve_model(args.model, "--model")
    for _, msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --out '{args.out}': {e.strerror or e}") from e

    hide_tensorflow_banner()  # TensorFlow loads only once the arguments are sound
    from sr_keras.inference import load_upscaler
    from sr_keras.upscaling import upscale_files

    upscaler = load_upscaler(model, "--model")
    written, failed = upscale_files(upscaler, files, args.out, args.tile, args.tile_overlap, args.tile_memory)
    print(f"wrote {written} image(s) to {args.out}")
    failed = [f"'{given}'" for given, _ in problems] + [f"'{path}'" for path in failed]
    if failed:
        shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
        raise UserError(f"{len(failed)} input(s) failed: {shown} (reasons above); the other {written} were written")


if __name__ == "__main__":
    main()
