"""Export a trained generator for deployment: a SavedModel export folder, or a TFLite model.

The TFLite model takes and returns uint8 images like the SavedModel's serving_default (input `images`
[N, H, W, 3] with any H and W: resize the input tensor; output `sr`), and matches its output within
one grey level; --fp16 stores float16 weights (half the file). docs/export.md shows how to run it on
Android and in a browser; upscale.py --model FILE.tflite runs it here.

    python export.py saved_models/demo_x4 --format tflite --out demo_x4.tflite
    python export.py runs/srresnet_bicubic_x4/best.keras --format savedmodel --out saved_models/mine
"""
import os

from sr_keras.cli.parsing import ArgumentParser, naming_flags
from sr_keras.core.errors import UserError, cli_entry
from sr_keras.core.tfbanner import hide_tensorflow_banner


def parse_args(argv):
    p = ArgumentParser.from_doc(__doc__)
    p.add_argument("model", metavar="MODEL",
                   help="a folder written by --export, a .keras file, or a model name (saved_models/ or "
                        "$SR_KERAS_MODELS)")
    p.add_argument("--format", choices=("savedmodel", "tflite"), required=True,
                   help="savedmodel: an export folder (SavedModel + model.keras + generator.json); tflite: one "
                        ".tflite file")
    p.add_argument("--fp16", action="store_true", help="tflite: float16 weights (about half the file)")
    p.add_argument("--out", default=None,
                   help="the file (tflite) or folder (savedmodel) to write; default: MODEL's name + .tflite "
                        "(_fp16.tflite with --fp16) or + _savedmodel, in the current folder")
    a = p.parse_args(argv)
    if a.fp16 and a.format != "tflite":
        p.error("--fp16 applies to --format tflite")
    return a


def default_out(model, fmt, fp16):
    name = os.path.splitext(os.path.basename(os.path.normpath(model)))[0] or "model"
    return f"{name}{'_fp16' if fp16 else ''}.tflite" if fmt == "tflite" else f"{name}_savedmodel"


def check_replaceable(out, suggestion):
    """Refuse a savedmodel --out that export_model's renames would fail on only after the slow work:
    rename() refuses "." and a mount point (EBUSY), and would move the working folder from under the
    process."""
    real, cwd = os.path.realpath(out), os.path.realpath(os.getcwd())
    where = "a mount point" if os.path.ismount(real) else \
        "the current folder or holds it" if os.path.commonpath([real, cwd]) == real else None
    if where:
        raise UserError(f"--out '{out}' is {where}: an export replaces its whole folder; give a new folder "
                        f"path such as '{suggestion}'")


def check_out(out, fmt):
    """Refuse an --out that cannot take the .tflite file or the export folder, before loading the model
    and the (slow) conversion: one line naming --out as given."""
    from sr_keras.core.outputs import check_writable_parent

    if fmt == "tflite" and os.path.isdir(out):
        raise UserError(f"--out '{out}' is a folder: give a file path such as model.tflite")
    if fmt == "savedmodel":
        from sr_keras.exports.savedmodel import check_export_dir  # imports TensorFlow: the banner is hidden by now

        check_export_dir(out)
    check_writable_parent(out, keep_folders=fmt == "tflite")  # export_model makes its own


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    with naming_flags(model="MODEL", export="--out", out="--out"):
        _export(args)


def _export(flags):
    """The rest of main(), from the parsed flags, inside naming_flags."""
    from sr_keras.infer.loading import resolve

    ref = resolve(flags.model, check=False)  # a SavedModel alone is refused by load_keras_model, never run
    out = flags.out or default_out(flags.model, flags.format, flags.fp16)
    if flags.format == "tflite":
        check_out(out, flags.format)
    else:
        check_replaceable(out, default_out(flags.model, flags.format, flags.fp16))
    hide_tensorflow_banner()  # TensorFlow loads only once the arguments are sound
    from sr_keras.exports.savedmodel import export_model
    from sr_keras.infer.loading import load_keras_model

    if flags.format == "savedmodel":
        check_out(out, flags.format)
    model = load_keras_model(ref)
    if flags.format == "tflite":
        from sr_keras.exports.tflite import export_tflite

        export_tflite(model, out, fp16=flags.fp16)
        print(f"wrote {out} ({os.path.getsize(out) / 2 ** 20:.2f} MB, uint8 images in and out, any size"
              f"{', float16 weights' if flags.fp16 else ''})")
    else:
        from sr_keras.exports.interpolation import export_config

        print(f"wrote {export_model(model, out, export_config(ref.path, model, ref.given))}")
