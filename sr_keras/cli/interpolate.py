"""Network interpolation (ESRGAN section 3.4): blend two trainings of one generator, weight by weight.

Every weight, BatchNorm moving statistics included, becomes (1 - alpha) * A + alpha * B; the result is
written as a normal export (SavedModel + model.keras + generator.json) that upscale.py and evaluate.py
take. With A a PSNR-oriented model and B its GAN fine-tuning, alpha moves from smooth and faithful
(high PSNR) to sharp and textured. A and B must be the same architecture; nothing is written otherwise.

    python interpolate.py runs/rrdb-psnr/export runs/esrgan/export --alpha 0.8 --out saved_models/esrgan_a08
"""
import argparse
import os

from sr_keras.cli.parsing import ArgumentParser, checked, naming_flags
from sr_keras.core.errors import UserError, cli_entry
from sr_keras.core.tfbanner import hide_tensorflow_banner

unit_interval = checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def parse_args(argv):
    p = ArgumentParser.from_doc(__doc__)
    p.add_argument("a", metavar="A", help="the model at alpha 0: a folder written by --export, a .keras file "
                                          "or a model name (saved_models/ or $SR_KERAS_MODELS)")
    p.add_argument("b", metavar="B", help="the model at alpha 1, the same architecture as A")
    p.add_argument("--alpha", type=unit_interval, required=True, default=argparse.SUPPRESS,
                   help="weight of B, in [0, 1]: 0 gives A, 1 gives B")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS,
                   help="export folder to write (absent, empty, or a previous export, which is replaced)")
    return p.parse_args(argv)


def check_out(out):
    """Refuse an --out that export_model would refuse or could not write, before the (slow) loading of A
    and B."""
    from sr_keras.core.outputs import check_writable_parent
    from sr_keras.exports.savedmodel import is_export

    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out '{out}' is a file, not a folder: give a new or empty folder, or a previous export")
    if os.path.isdir(out) and os.listdir(out) and not is_export(out):
        raise UserError(f"--out '{out}' is not empty and holds no previous export; refusing to overwrite its "
                        "files: give a new or empty folder")
    check_writable_parent(out, keep_folders=False)  # export_model makes them


def _as(name, call, *positional, **keywords):
    """call(*positional, **keywords), its errors about `model` naming `name` (A or B): one loader, two arguments."""
    with naming_flags(model=name):
        return call(*positional, **keywords)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    with naming_flags(out="--out", export="--out"):
        _interpolate(args)


def _interpolate(flags):
    """The rest of main(), from the parsed flags, inside naming_flags."""
    from sr_keras.infer.loading import resolve

    ref_a, ref_b = _as("A", resolve, flags.a, check=False), _as("B", resolve, flags.b, check=False)  # Keras only
    hide_tensorflow_banner()  # TensorFlow loads only once the arguments are sound
    check_out(flags.out)
    from sr_keras.exports.interpolation import check_same_architecture, export_config, interpolate
    from sr_keras.exports.savedmodel import export_model
    from sr_keras.infer.loading import load_keras_model

    model_a, model_b = _as("A", load_keras_model, ref_a), _as("B", load_keras_model, ref_b)
    check_same_architecture(model_a, model_b, flags.a, flags.b)
    config = _as("A", export_config, ref_a.path, model_a, flags.a)
    blended = interpolate(model_a, model_b, flags.alpha)
    out = export_model(blended, flags.out, config)
    print(f"wrote {out}: {1 - flags.alpha:g} * '{flags.a}' + {flags.alpha:g} * '{flags.b}' "
          f"({len(blended.weights)} weights, {config.describe()}, x{config.scale})")

