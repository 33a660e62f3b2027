"""The command-line layer of the training scripts, evaluate.py, upscale.py and the benchmarks: the one
module of sr_keras that imports argparse. It holds the shared help formatter, checked argument types,
the training flags and presets, and hides TensorFlow's start-up banner for CLI entry points."""
import argparse
import dataclasses
import os
import re
import sys
import tempfile

from sr_keras.config import GeneratorConfig, SELECTIONS, TrainConfig

# The report's settings (section 4.5); train_srgan.py overrides the schedule and patience.
REPORT_DEFAULTS = dict(
    track="bicubic_x4", data="tfds", batch_size=8, hr_crop=180, augment_p=0.2, lr=1e-4, lr_schedule="step",
    lr_decay_epochs=30, lr_decay_factor=0.1, epochs=300, steps_per_epoch=100, patience=30, seed=None,
    resume=False, fresh=False, num_blocks=16, filters=64, batch_norm=True, bicubic_skip=False,
    val_images=0, panel_images=3, test_images=0, precision="float32", jit=False, strategy="default",
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default and keeps the description's line breaks (its example commands)."""


def checked(convert, ok, expected):
    """argparse type: convert(text), accepted when ok(value); otherwise the error names what was expected
    and the text as given ("expected a positive integer, got 'two'").

    Args:
        convert: callable text -> value; a ValueError means the text is refused.
        ok: predicate on the converted value.
        expected: what a valid value is, for the error message.
    """
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


positive_int = checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked(float, lambda v: v > 0, "a positive number")  # also refuses nan
probability = checked(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")


def add_common_args(parser, defaults=None, presets=None, model_name=None):
    """Add the flags every training script shares.

    Args:
        parser: an argparse.ArgumentParser.
        defaults: overrides of REPORT_DEFAULTS for this script.
        presets: {--preset name: {flag dest: value}} (explicit flags still win, see parse_args).
        model_name: names the default --out/--export folders in --help (resolve_paths fills them in).
    """
    from sr_keras.distribute import PRECISIONS, STRATEGIES  # here: importing it imports TensorFlow

    model = model_name or "{model}"
    d = {**REPORT_DEFAULTS, "out": os.path.join("runs", f"{model}_{{track}}"),
         "export": os.path.join("saved_models", f"{model}_{{track}}"), **(defaults or {})}
    presets = presets or {}
    add = parser.add_argument
    if presets:
        described = "; ".join(f"{name}: " + " ".join(f"{k}={v}" for k, v in sorted(p.items()))
                              for name, p in sorted(presets.items()))
        add("--preset", choices=sorted(presets), default=None,
            help=f"named group of settings; flags given explicitly override it ({described})")
    add("--track", default=d["track"], help="DIV2K track, e.g. bicubic_x4, unknown_x2 (sets the scale)")
    add("--data", default=d["data"],
        help="'tfds', a DIV2K-layout folder, a folder of HR images, or 'samples' (scikit-image photos)")
    add("--batch-size", type=positive_int, default=d["batch_size"], help="global batch size")
    add("--hr-crop", type=positive_int, default=d["hr_crop"],
        help="HR training crop side in pixels (rounded down to a multiple of the scale)")
    add("--augment-p", type=probability, default=d["augment_p"],
        help="probability of each augmentation (h-flip, v-flip, rot90 cw, rot90 ccw)")
    add("--lr", type=positive_float, default=d["lr"], help="initial Adam learning rate")
    add("--lr-schedule", choices=("step", "cosine"), default=d["lr_schedule"],
        help="step: x--lr-decay-factor every --lr-decay-epochs; cosine: per-epoch cosine decay to 0 over --epochs")
    add("--lr-decay-epochs", type=positive_int, default=d["lr_decay_epochs"], help="step schedule period (epochs)")
    add("--lr-decay-factor", type=positive_float, default=d["lr_decay_factor"], help="step schedule factor")
    add("--epochs", type=positive_int, default=d["epochs"], help="total epochs (also with --resume)")
    add("--steps-per-epoch", type=positive_int, default=d["steps_per_epoch"], help="training steps per epoch")
    add("--patience", type=positive_int, default=d["patience"],
        help="early stopping: epochs without a better validation PSNR-Y")
    add("--seed", type=int, default=d["seed"],
        help="seed weights, data and ops for repeatable runs (enables TF op determinism)")
    add("--out", default=d["out"], help="run folder for checkpoints and TensorBoard logs")
    add("--export", default=d["export"], help="folder for the exported best model (SavedModel + model.keras)")
    add("--resume", action="store_true", default=d["resume"],
        help="continue the run in --out from its last checkpoint (epoch, optimizer, schedule, early stopping)")
    add("--fresh", action=argparse.BooleanOptionalAction, default=d["fresh"],
        help="start over: delete this run's checkpoints and logs in --out first (only files training wrote "
             "there); --resume takes precedence")
    add("--num-blocks", type=positive_int, default=d["num_blocks"], help="generator residual blocks")
    add("--filters", type=positive_int, default=d["filters"], help="generator feature channels")
    add("--batch-norm", action=argparse.BooleanOptionalAction, default=d["batch_norm"],
        help="BatchNorm in the generator's residual blocks (the report: on)")
    add("--bicubic-skip", action=argparse.BooleanOptionalAction, default=d["bicubic_skip"],
        help="add a bicubic upscale of the input to the generator's output (the report: off)")
    add("--val-images", type=non_negative_int, default=d["val_images"],
        help="validate on the first N images of the validation split (0: all)")
    add("--panel-images", type=non_negative_int, default=d["panel_images"],
        help="validation images shown in the TensorBoard panel each epoch")
    add("--test-images", type=int, default=d["test_images"],
        help="at the end, score the export against bicubic on the first N test images (0: skip, -1: all)")
    add("--precision", choices=PRECISIONS, default=d["precision"],
        help="Keras dtype policy (--resume needs the run's own)")
    add("--jit", action="store_true", default=d["jit"], help="compile the train step with XLA")
    add("--strategy", choices=STRATEGIES, default=d["strategy"],
        help="tf.distribute strategy: mirrored = local GPUs, multiworker = TF_CONFIG cluster")
    return parser


def add_select_arg(parser, default="val_psnr"):
    """--select: which generator a run exports (config.TrainConfig.select)."""
    parser.add_argument("--select", choices=SELECTIONS, default=default,
                        help="exported generator: val_psnr = the epoch of best validation PSNR-Y (early stopping "
                             "on it, --patience); last = the last epoch's (no early stopping)")
    return parser


def parse_args(parser, argv=None, presets=None):
    """Parse argv; with --preset, the preset's values replace the defaults of flags not given.

    argparse only fills a default where the namespace has no value yet, so parsing into a namespace
    pre-filled with the preset lets every explicitly given flag win.
    """
    namespace = parser.parse_args(argv)
    if getattr(namespace, "preset", None):
        namespace = parser.parse_args(argv, namespace=argparse.Namespace(**presets[namespace.preset]))
    return namespace


def resolve_paths(namespace, model_name):
    """Fill {model} and {track} in --out/--export (the defaults are runs/{model}_{track}, ...)."""
    for key, folder in (("out", "runs"), ("export", "saved_models")):
        value = getattr(namespace, key) or os.path.join(folder, "{model}_{track}")
        setattr(namespace, key, value.replace("{model}", model_name).replace("{track}", namespace.track))
    return namespace


def train_config(namespace):
    """The config.TrainConfig of parsed training flags."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    return TrainConfig(**{name: getattr(namespace, name) for name in names if hasattr(namespace, name)})


def generator_config(namespace, scale):
    """The config.GeneratorConfig of parsed generator flags (--num-blocks, --filters, --batch-norm,
    --bicubic-skip) at `scale`."""
    return GeneratorConfig(scale=scale, num_blocks=namespace.num_blocks, filters=namespace.filters,
                           batch_norm=namespace.batch_norm, bicubic_skip=namespace.bicubic_skip)


# TensorFlow 2.21 writes a start-up banner through absl before TF_CPP_MIN_LOG_LEVEL is read, so no
# setting hides it (nor the failed-CUDA line of GPU builds on CPU machines); it would bury the one-line
# errors of the CLIs.
_BANNER = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                     rb"|I0000 \S+ +\d+ (port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc)"
                     rb"|E0000 \S+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit"
                     rb"|To enable the following instructions)")


def hide_tensorflow_banner():
    """Import TensorFlow with stderr (fd 2) captured and pass on everything except its start-up banner.

    For CLI entry points only, called before anything imports TensorFlow: a library must leave its host
    program's file descriptors alone. Does nothing when TensorFlow is already imported or stderr has no
    file descriptor (e.g. under pytest's capture).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), fd)
        try:
            import tensorflow

            # list devices now, inside the capture: on a machine without a GPU this is where
            # TensorFlow logs its failed CUDA initialisation
            tensorflow.config.list_physical_devices()
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            buf.seek(0)
            kept = [line for line in buf.read().splitlines(keepends=True) if not _BANNER.match(line)]
            if kept:
                os.write(fd, b"".join(kept))
