"""The flags every training script shares (train_srresnet, train_srgan), the --preset mechanism and the
builders of the typed configs (settings.TrainConfig, config.GeneratorConfig) from parsed flags. The flags'
defaults and the presets are sr_keras.train.recipes', the --generator names sr_keras.archs.registry's."""
import argparse
import dataclasses
import os

from sr_keras.archs import registry
from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli.parsing import INT_MAX, checked, non_negative_int, positive_float, positive_int, probability, seed_int
from sr_keras.core.errors import UserError
from sr_keras.data.degradations import PRESETS as DEGRADATION_PRESETS
from sr_keras.train.recipes import REPORT_DEFAULTS
from sr_keras.train.settings import LR_SCHEDULES, SELECTIONS, TrainConfig

# the flags of GeneratorConfig's fields: a warm start takes those not given from its parent's generator.json
ARCHITECTURE_FLAGS = ("generator", "num_blocks", "filters", "growth", "batch_norm", "bicubic_skip")
milestones = checked(lambda text: tuple(int(m) for m in text.split(",")), lambda v: all(0 < m <= INT_MAX for m in v),
                     "comma-separated positive epochs, e.g. 50,100,200,300")
decay = checked(float, lambda v: 0.0 < v < 1.0, "a decay in (0, 1), e.g. 0.999")
test_count = checked(int, lambda v: -1 <= v <= INT_MAX, "an integer >= -1 (-1: all)")
# The flags that give the library arguments a training run's errors name (sr_keras.cli.parsing.naming_flags):
# the run's outputs, and each model it may start from.
OUTPUT_FLAGS = dict(out="--out", export="--export")
INIT_GENERATOR_FLAGS = dict(model="--init-generator", trust_model="--trust-model")
INIT_TRUNK_FLAGS = dict(model="--init-trunk")


def add_common_args(parser, defaults=None, presets=None, model_name=None):
    """Add the flags every training script shares.

    Args:
        parser: an argparse.ArgumentParser.
        defaults: overrides of recipes.REPORT_DEFAULTS for this script (recipes.SRGAN_DEFAULTS).
        presets: {--preset name: {flag dest: value}} (recipes.SRRESNET_PRESETS, ...; explicit flags still
            win, see parse_args).
        model_name: names the default --out/--export folders in --help (resolve_paths fills them in).
    """
    from sr_keras.train.distribute import PRECISIONS, STRATEGIES  # here: importing it imports TensorFlow

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
    add("--batch-size", type=positive_int, default=d["batch_size"], help="global batch size (>= 1)")
    add("--hr-crop", type=positive_int, default=d["hr_crop"],
        help="HR training crop side in pixels, rounded down to a multiple of the scale; at least 11 + 2 x scale "
             "rounded up to a multiple of the scale (16 at x2, 18 at x3, 20 at x4, 32 at x8: SSIM's 11-pixel "
             "window inside the scored border), and at most the smallest training image's side")
    add("--augment-p", type=probability, default=d["augment_p"],
        help="probability of each augmentation (h-flip, v-flip, rot90 cw, rot90 ccw), in [0, 1]")
    add("--degradation", choices=tuple(DEGRADATION_PRESETS), default=d["degradation"],
        help="training LR: bicubic = the data's LR images; realistic = made from each HR crop with random "
             "blur, downscaling kernel, noise and JPEG; mild = the light noise and JPEG of phone photos, "
             "little blur; phone = as mild, but noise and JPEG on nearly every crop (docs/degradations.md); "
             "validation stays bicubic")
    add("--lr", type=positive_float, default=d["lr"], help="initial Adam learning rate (finite, > 0)")
    add("--lr-schedule", choices=LR_SCHEDULES, default=d["lr_schedule"],
        help="step: x--lr-decay-factor every --lr-decay-epochs; cosine: per-epoch cosine decay to 0 over --epochs; "
             "milestones: x--lr-decay-factor after each of --lr-milestones")
    add("--lr-decay-epochs", type=positive_int, default=d["lr_decay_epochs"],
        help="step schedule period (epochs, >= 1)")
    add("--lr-decay-factor", type=positive_float, default=d["lr_decay_factor"],
        help="step and milestones schedule factor (finite, > 0)")
    add("--lr-milestones", type=milestones, default=d["lr_milestones"], metavar="E1,E2,...",
        help="epochs after which the milestones schedule multiplies the rate by --lr-decay-factor")
    add("--epochs", type=positive_int, default=d["epochs"], help="total epochs (also with --resume; 1 to 2**31 - 1)")
    add("--steps-per-epoch", type=positive_int, default=d["steps_per_epoch"],
        help="training steps per epoch (1 to 2**31 - 1)")
    add("--patience", type=positive_int, default=d["patience"],
        help="early stopping: epochs without a better validation PSNR-Y (>= 1)")
    add("--seed", type=seed_int, default=d["seed"],
        help="seed weights, data and ops for repeatable runs (enables TF op determinism; 0 to 2**32 - 1)")
    add("--out", default=d["out"], help="run folder for checkpoints and TensorBoard logs")
    add("--export", default=d["export"], help="folder for the exported best model (SavedModel + model.keras)")
    add("--resume", action="store_true", default=d["resume"],
        help="continue the run in --out from its last checkpoint (epoch, optimizer, schedule, early stopping)")
    add("--fresh", action=argparse.BooleanOptionalAction, default=d["fresh"],
        help="start over: delete this run's checkpoints and logs in --out first (only files training wrote "
             "there); --resume takes precedence")
    architectures = registry.ARCHITECTURES.values()
    add("--generator", choices=registry.GENERATOR_FLAGS, default=d["generator"],
        help="; ".join(f"{spec.generator_flag}: {spec.summary}" for spec in architectures))
    add("--num-blocks", type=positive_int, default=d["num_blocks"],
        help="generator residual blocks (srresnet) or RRDBs (rrdb), >= 1; default: "
             + ", ".join(f"{spec.num_blocks} for {spec.generator_flag}" for spec in architectures))
    add("--filters", type=positive_int, default=d["filters"], help="generator feature channels (>= 1)")
    add("--growth", type=positive_int, default=d["growth"],
        help="channels each dense-block conv adds (rrdb only; >= 1)")
    add("--batch-norm", action=argparse.BooleanOptionalAction, default=d["batch_norm"],
        help="BatchNorm in the generator's residual blocks (the report: on)")
    add("--bicubic-skip", action=argparse.BooleanOptionalAction, default=d["bicubic_skip"],
        help="add a bicubic upscale of the input to the generator's output (the report: off)")
    add("--val-images", type=non_negative_int, default=d["val_images"],
        help="validate on the first N images of the validation split (0: all; >= 0)")
    add("--panel-images", type=non_negative_int, default=d["panel_images"],
        help="validation images shown in the TensorBoard panel each epoch (>= 0)")
    add("--test-images", type=test_count, default=d["test_images"],
        help="at the end, score the export against bicubic on the first N test images (0: skip, -1: all)")
    add("--precision", choices=PRECISIONS, default=d["precision"],
        help="Keras dtype policy (--resume needs the run's own)")
    add("--jit", action="store_true", default=d["jit"], help="compile the train step with XLA")
    add("--ema", type=decay, default=d["ema"], metavar="DECAY",
        help="keep an exponential moving average of the generator's weights (e.g. 0.999); validation, the "
             "selected checkpoint and the export then use it (docs/esrgan.md)")
    add("--strategy", choices=STRATEGIES, default=d["strategy"],
        help="tf.distribute strategy: mirrored = local GPUs, multiworker = TF_CONFIG cluster")
    return parser


def add_select_arg(parser):
    """--select: which generator a run exports (settings.TrainConfig.select)."""
    parser.add_argument("--select", choices=SELECTIONS, default=REPORT_DEFAULTS["select"],
                        help="exported generator: val_psnr = the epoch of best validation PSNR-Y (early stopping "
                             "on it, --patience); last = the last epoch's (no early stopping)")
    return parser


def parse_args(parser, argv=None, presets=None):
    """Parse argv; with --preset, the preset's values replace the defaults of flags not given.

    argparse only fills a default where the namespace has no value yet, so parsing into a namespace
    pre-filled with the preset lets every explicitly given flag win. The same trick records which
    architecture flags the command line gave (namespace.given_architecture): a warm start takes the
    others from its parent (generator_config).
    """
    namespace = parser.parse_args(argv)
    if getattr(namespace, "preset", None):
        namespace = parser.parse_args(argv, namespace=argparse.Namespace(**presets[namespace.preset]))
    unset = object()
    typed = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(ARCHITECTURE_FLAGS, unset)))
    namespace.given_architecture = frozenset(k for k in ARCHITECTURE_FLAGS if getattr(typed, k) is not unset)
    return namespace


def resolve_paths(namespace, model_name):
    """Fill {model} and {track} in --out/--export (the defaults are runs/{model}_{track}, ...) and {track}
    in --init-generator (a preset's path to the PSNR model of the same track)."""
    for key, folder in (("out", "runs"), ("export", "saved_models")):
        value = getattr(namespace, key) or os.path.join(folder, "{model}_{track}")
        setattr(namespace, key, value.replace("{model}", model_name).replace("{track}", namespace.track))
    if getattr(namespace, "init_generator", None):
        namespace.init_generator = namespace.init_generator.replace("{track}", namespace.track)
    return namespace


def train_config(namespace):
    """The settings.TrainConfig of parsed training flags."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    return TrainConfig(**{name: getattr(namespace, name) for name in names if hasattr(namespace, name)})


def generator_config(namespace, scale, parent=None, source="--init-generator"):
    """The config.GeneratorConfig of parsed generator flags (--generator, --num-blocks, --filters,
    --batch-norm, --bicubic-skip, --growth) at `scale`. An RRDBNet has no BatchNorm (--batch-norm is
    ignored for it) and no bicubic skip (--bicubic-skip is refused).

    With `parent` (the GeneratorConfig in a warm start's generator.json), the run is the parent's network:
    the flags the command line did not give (namespace.given_architecture) come from it, and one it gave
    that contradicts it is refused, naming the flag and `source` (e.g. "--init-generator srresnet_x4").
    A default that differs silently built another network (no bicubic skip) under the parent's weights.
    """
    if parent is not None:
        return _inherited(namespace, scale, parent, source)
    spec = registry.by_generator_flag(getattr(namespace, "generator", REPORT_DEFAULTS["generator"]))
    if spec is registry.RRDBNET and namespace.bicubic_skip:
        raise UserError("--bicubic-skip: --generator rrdb has no bicubic skip (ESRGAN's RRDBNet); drop the flag")
    return GeneratorConfig(scale=scale, arch=spec.arch, num_blocks=namespace.num_blocks or spec.num_blocks,
                           filters=namespace.filters, batch_norm=namespace.batch_norm,
                           bicubic_skip=namespace.bicubic_skip,
                           growth=getattr(namespace, "growth", REPORT_DEFAULTS["growth"]))


def _contradictions(namespace, parent):
    """(flag as given, what the parent has) for each given architecture flag that the parent contradicts."""
    spec = registry.ARCHITECTURES[parent.arch]
    given = getattr(namespace, "given_architecture", frozenset())
    found = []
    for key in ARCHITECTURE_FLAGS:
        if key not in given:
            continue
        value = getattr(namespace, key)
        if key == "generator" and registry.by_generator_flag(value) is not spec:
            found.append((f"--generator {value}", f"is an {spec.title}"))
        elif key in ("num_blocks", "filters") and value != getattr(parent, key):
            found.append((f"--{key.replace('_', '-')} {value}",
                          f"has {getattr(parent, key)} {'blocks' if key == 'num_blocks' else 'filters'}"))
        elif key == "growth" and key in spec.fields and value != parent.growth:  # an SRResNet has no growth
            found.append((f"--growth {value}", f"has growth {parent.growth}"))
        elif key == "batch_norm" and key in spec.fields and value != parent.batch_norm:  # ignored for rrdb
            found.append(("--batch-norm" if value else "--no-batch-norm",
                          "has BatchNorm" if parent.batch_norm else "has no BatchNorm"))
        elif key == "bicubic_skip" and value != parent.bicubic_skip:
            found.append(("--bicubic-skip" if value else "--no-bicubic-skip",
                          "has a bicubic skip" if parent.bicubic_skip else "has no bicubic skip"))
    return found


def _inherited(namespace, scale, parent, source):
    """generator_config of a warm start: the parent's config, once the given flags are checked against it."""
    if parent.scale != scale:
        raise UserError(f"{source} is a x{parent.scale} model but this run trains x{scale} (--track "
                        f"{namespace.track}); use a generator trained on the same scale")
    found = _contradictions(namespace, parent)
    if found:
        flags = ", ".join(flag for flag, _ in found)
        has = " and ".join(what for _, what in found)
        raise UserError(f"{source} {has}; {flags} {'contradicts' if len(found) == 1 else 'contradict'} it (a warm "
                        f"start trains the parent's network, {parent.describe()}, read from its generator.json): "
                        f"drop {flags}")
    return parent

