"""Trainer plumbing shared by train_srresnet.py and train_srgan.py: flags and presets, precision,
tf.distribute strategy, seeding, callbacks (LR schedule, resumable early stopping, NaN/Inf guard,
atomic best/last checkpoints, TensorBoard scalars and an image panel) and the model.fit call.

A run folder (--out) holds:
    checkpoints/checkpoint.json          what was saved last: completed epochs, file names, callback state
    checkpoints/last-eNNNN.weights.h5    trainer weights + optimizer state after epoch NNNN (for --resume)
    checkpoints/best-eNNNN.weights.h5    generator weights of the best validation PSNR so far (exported)
    logs/train, logs/validation          Keras TensorBoard scalars (loss, psnr, ssim, learning_rate)
    logs/images                          validation panels: bicubic-upscaled LR | SR | HR
Every file is written under a temporary name and renamed into place, and checkpoint.json is replaced
only once the files it names are complete, so `kill -9` at any moment leaves the last good epoch.
"""
import argparse
import json
import math
import os
import re
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from sr_keras import metrics as sr_metrics
from sr_keras.errors import UserError, first_line
from sr_keras.imresize import upscale_bicubic
from sr_keras.models import srresnet

# The report's settings (section 4.5); train_srgan.py overrides the schedule and patience.
REPORT_DEFAULTS = dict(
    track="bicubic_x4", data="tfds", batch_size=8, hr_crop=180, augment_p=0.2, lr=1e-4, lr_schedule="step",
    lr_decay_epochs=30, lr_decay_factor=0.1, epochs=300, steps_per_epoch=100, patience=30, seed=None,
    resume=False, fresh=False, num_blocks=16, filters=64, batch_norm=True, bicubic_skip=False,
    val_images=0, panel_images=3, test_images=0, precision="float32", jit=False, strategy="default",
)
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "checkpoint.json"
PANEL_MAX_HR = 192  # panel crop side (HR pixels): big enough to judge detail, small enough for 300 epochs


class NonFiniteLoss(UserError):
    """The loss became NaN or Inf; training stopped without saving anything from that epoch."""


# ---------------------------------------------------------------------------------------------- flags

def _checked(convert, ok, expected):
    """argparse type: convert(text), accepted when ok(value); otherwise the error names what was expected
    and the text as given ("expected a positive integer, got 'two'")."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_positive_int = _checked(int, lambda v: v > 0, "a positive integer")
_non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _checked(float, lambda v: v > 0, "a positive number")  # also refuses nan
_probability = _checked(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default and keeps the description's line breaks (its example commands)."""


def add_common_args(parser, defaults=None, presets=None, model_name=None):
    """Add the flags every training script shares. `defaults` overrides REPORT_DEFAULTS per script;
    `presets` maps a --preset name to the values it sets (explicit flags still win, see parse_args);
    `model_name` names the default --out/--export folders in --help (resolve_paths fills them in)."""
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
    add("--batch-size", type=_positive_int, default=d["batch_size"], help="global batch size")
    add("--hr-crop", type=_positive_int, default=d["hr_crop"],
        help="HR training crop side in pixels (rounded down to a multiple of the scale)")
    add("--augment-p", type=_probability, default=d["augment_p"],
        help="probability of each augmentation (h-flip, v-flip, rot90 cw, rot90 ccw)")
    add("--lr", type=_positive_float, default=d["lr"], help="initial Adam learning rate")
    add("--lr-schedule", choices=("step", "cosine"), default=d["lr_schedule"],
        help="step: x--lr-decay-factor every --lr-decay-epochs; cosine: per-epoch cosine decay to 0 over --epochs")
    add("--lr-decay-epochs", type=_positive_int, default=d["lr_decay_epochs"], help="step schedule period (epochs)")
    add("--lr-decay-factor", type=_positive_float, default=d["lr_decay_factor"], help="step schedule factor")
    add("--epochs", type=_positive_int, default=d["epochs"], help="total epochs (also with --resume)")
    add("--steps-per-epoch", type=_positive_int, default=d["steps_per_epoch"], help="training steps per epoch")
    add("--patience", type=_positive_int, default=d["patience"],
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
    add("--num-blocks", type=_positive_int, default=d["num_blocks"], help="generator residual blocks")
    add("--filters", type=_positive_int, default=d["filters"], help="generator feature channels")
    add("--batch-norm", action=argparse.BooleanOptionalAction, default=d["batch_norm"],
        help="BatchNorm in the generator's residual blocks (the report: on)")
    add("--bicubic-skip", action=argparse.BooleanOptionalAction, default=d["bicubic_skip"],
        help="add a bicubic upscale of the input to the generator's output (the report: off)")
    add("--val-images", type=_non_negative_int, default=d["val_images"],
        help="validate on the first N images of the validation split (0: all)")
    add("--panel-images", type=_non_negative_int, default=d["panel_images"],
        help="validation images shown in the TensorBoard panel each epoch")
    add("--test-images", type=int, default=d["test_images"],
        help="at the end, score the export against bicubic on the first N test images (0: skip, -1: all)")
    add("--precision", choices=PRECISIONS, default=d["precision"], help="Keras dtype policy")
    add("--jit", action="store_true", default=d["jit"], help="compile the train step with XLA")
    add("--strategy", choices=STRATEGIES, default=d["strategy"],
        help="tf.distribute strategy: mirrored = local GPUs, multiworker = TF_CONFIG cluster")
    return parser


def parse_args(parser, argv=None, presets=None):
    """Parse argv; with --preset, the preset's values replace the defaults of flags not given.

    argparse only fills a default where the namespace has no value yet, so parsing into a namespace
    pre-filled with the preset lets every explicitly given flag win.
    """
    args = parser.parse_args(argv)
    if getattr(args, "preset", None):
        args = parser.parse_args(argv, namespace=argparse.Namespace(**presets[args.preset]))
    return args


def resolve_paths(args, model_name):
    """Fill {model} and {track} in --out/--export (the defaults are runs/{model}_{track}, ...)."""
    for key, folder in (("out", "runs"), ("export", "saved_models")):
        value = getattr(args, key) or os.path.join(folder, "{model}_{track}")
        setattr(args, key, value.replace("{model}", model_name).replace("{track}", args.track))
    return args


# ------------------------------------------------------------------------- precision, strategy, seed

def set_precision(name):
    """Set the global Keras dtype policy. Build models after this; their variables stay float32."""
    if name not in PRECISIONS:
        raise UserError(f"--precision {name}: expected one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(name)


def strategy_from_flag(name):
    """tf.distribute strategy for --strategy (multiworker reads the cluster from TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy {name}: expected one of {', '.join(STRATEGIES)}")


def is_chief(strategy):
    """Whether this process writes checkpoints, logs and exports (worker 0 or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker"
                                             and resolver.task_id == 0)


def seed_everything(seed):
    """Seed Python, NumPy, TF and Keras, and make TF ops deterministic, so seeded runs repeat."""
    if seed is None:
        return
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def data_seed(seed, start_epoch):
    """Data seed for a run starting at start_epoch: a resumed run draws new crops, not epoch 1's again."""
    if seed is None:
        return None
    return seed if start_epoch == 0 else (seed * 1_000_003 + start_epoch) % 2 ** 31


# ----------------------------------------------------------------------------------------- models

def is_multi_worker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class MultiWorkerFit:
    """keras.Model mixin that lets Keras 3.15's fit()/evaluate() run under MultiWorkerMirroredStrategy
    (keras-team/keras#20585); under any other strategy it changes nothing.

    Keras (a) MEAN-reduces the first batch, a tuple of PerReplica values, for its symbolic build, and
    the collective strategy cannot reduce a tuple: only shapes matter there, so replica 0's share is
    used. (b) Keras reduces each step's scalar logs with reduce("MEAN", log, axis=0), an invalid axis
    for a scalar (its distribute_reduction_method is not consulted in 3.15): the steps return each log
    with a leading axis of 1, which that reduce then averages over all replicas of all workers. Epoch
    logs (what callbacks and checkpoints see) come from the metrics themselves, whose on-read variables
    are summed over all workers, so they are global either way.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is not None and is_multi_worker(strategy):
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(it))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, data):
        return self.reducible_logs(super().train_step(data))

    def test_step(self, data):
        return self.reducible_logs(super().test_step(data))

    def reducible_logs(self, logs):
        """The step's logs in the form Keras can reduce under the strategy (a custom train_step or
        test_step overriding this mixin's returns its logs through this)."""
        if not is_multi_worker(self.distribute_strategy):
            return logs
        return {key: keras.ops.expand_dims(value, 0) for key, value in logs.items()}


class Trainer(MultiWorkerFit, keras.Model):
    """Functional keras.Model with MultiWorkerFit. Never saved whole: checkpoints hold its weights and
    the export saves the generator, so it needs no serialization registration."""


def float32_output(generator):
    """Trainer model around the generator whose output is float32 (losses and metrics in float32 under
    mixed precision, as the Keras mixed-precision guide does). Weights are shared with `generator`."""
    lr = keras.Input((None, None, 3), name="lr")
    sr = keras.layers.Activation("linear", dtype="float32", name="sr_float32")(generator(lr))
    return Trainer(lr, sr, name="trainer")


def start_at_bicubic(generator):
    """Zero the last conv of a bicubic-skip generator, so training starts from exactly bicubic and only
    learns the residual. With random init the net first spends ~500 demo steps cancelling its own noise
    (measured: +0.0 dB after 500 steps, against +0.75 dB after 400 with this)."""
    tail = generator.get_layer("tail_conv")
    for weight in (tail.kernel, tail.bias):
        weight.assign(keras.ops.zeros(weight.shape, weight.dtype))


def make_generator(scale, num_blocks=16, filters=64, batch_norm=True, bicubic_skip=False):
    """srresnet(), started at bicubic when it has the bicubic skip."""
    generator = srresnet(scale, num_blocks=num_blocks, filters=filters, batch_norm=batch_norm,
                         bicubic_skip=bicubic_skip)
    if bicubic_skip:
        start_at_bicubic(generator)
    return generator


TRUNK_PREFIXES = ("head_", "block", "body_")  # layers before upsampling: the same at every scale


def init_trunk(generator, path):
    """Copy the trunk (head conv, residual blocks, body conv; every layer before the upsampling) of a
    trained SRResNet of any scale into `generator`, as EDSR initialises its x2 model from x4 and back.

    path: an export folder of train_srresnet.py or a .keras file. Returns the number of layers copied.
    """
    shown = path
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise UserError(f"--init-trunk {shown}: no export folder with model.keras and no .keras file there")
    try:
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:
        raise UserError(f"--init-trunk {shown}: cannot load the Keras model ({first_line(e)})") from None
    copied = 0
    for layer in generator.layers:
        if not layer.name.startswith(TRUNK_PREFIXES) or not layer.weights:
            continue
        try:
            src = source.get_layer(layer.name)
        except ValueError:
            src = None
        shapes = [tuple(w.shape) for w in src.weights] if src is not None else None
        if shapes != [tuple(w.shape) for w in layer.weights]:
            raise UserError(f"--init-trunk {shown}: its layer {layer.name} does not match this run's generator "
                            "(pass the same --num-blocks, --filters and --batch-norm as that model)")
        layer.set_weights(src.get_weights())
        copied += 1
    return copied


def build_generator(args, scale):
    """make_generator() from the generator flags (--num-blocks, --filters, --batch-norm, --bicubic-skip)."""
    return make_generator(scale, num_blocks=args.num_blocks, filters=args.filters, batch_norm=args.batch_norm,
                          bicubic_skip=args.bicubic_skip)


def build_srresnet_trainer(scale, *, num_blocks=16, filters=64, batch_norm=True, bicubic_skip=False,
                           lr=1e-4, loss="mse", jit=False):
    """(trainer, generator) compiled exactly as train_srresnet.py trains them.

    Call after set_precision() and inside strategy.scope(). Adam's epsilon is PyTorch's 1e-8 (SPEC);
    under mixed_float16 Keras wraps it in a LossScaleOptimizer. Validation metrics: PSNR/SSIM on Y.
    """
    generator = make_generator(scale, num_blocks=num_blocks, filters=filters, batch_norm=batch_norm,
                               bicubic_skip=bicubic_skip)
    trainer = float32_output(generator)
    losses = {"mse": "mean_squared_error", "l1": "mean_absolute_error"}
    trainer.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-8), loss=losses[loss],
                    metrics=[sr_metrics.PSNRY(scale), sr_metrics.SSIMY(scale)], jit_compile=bool(jit))
    return trainer, generator


# ------------------------------------------------------------------------------------- callbacks

def lr_schedule(args):
    """Epoch -> learning rate. A pure function of the epoch, so --resume (fit's initial_epoch) lands on
    the right value without extra state."""
    base, total = args.lr, args.epochs
    if args.lr_schedule == "cosine":
        return lambda epoch: base * 0.5 * (1.0 + math.cos(math.pi * epoch / total))
    every, factor = args.lr_decay_epochs, args.lr_decay_factor
    return lambda epoch: base * factor ** (epoch // every)


class LRSchedule(keras.callbacks.LearningRateScheduler):
    """keras' LearningRateScheduler over lr_schedule(); TensorBoard logs the optimizer's rate."""

    def __init__(self, schedule, verbose=0):
        super().__init__(lambda epoch, lr: schedule(epoch), verbose=verbose)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping on validation PSNR whose counters survive --resume (get_state / `state`)."""

    def __init__(self, patience, monitor="val_psnr", mode="max", state=None):
        super().__init__(monitor=monitor, mode=mode, patience=patience, verbose=1)
        self._initial_state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._initial_state:
            self.wait = int(self._initial_state["wait"])
            self.best = self._initial_state["best"]
            self.best_epoch = int(self._initial_state["best_epoch"])

    def get_state(self):
        best = None if self.best is None or not math.isfinite(self.best) else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch),
                "stopped_epoch": int(self.stopped_epoch)}


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or Inf, and at the end of an epoch whose
    validation results or weights are not finite, by raising NonFiniteLoss.

    Raising (rather than stop_training) ends fit() at once; at the end of an epoch it must come first
    in the callback list, before RunCheckpoint. So no checkpoint, best model or export is ever written
    from NaN weights; the last good checkpoint stays as it was. (A step's loss is computed before its
    update, so the last step of an epoch can blow the weights up with a finite loss: only the epoch-end
    check of the validation results and the weights catches that.)
    """

    def __init__(self, checkpoint_dir, lr, keys=None):
        super().__init__()
        self.checkpoint_dir, self.lr, self.keys = checkpoint_dir, lr, keys
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for key, value in (logs or {}).items():
            if self._is_loss(key):
                value = float(value)
                if not math.isfinite(value):
                    self._stop(f"{key} is {'NaN' if math.isnan(value) else 'Inf'} at epoch {self.epoch + 1}, "
                               f"step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            value = float(value)
            # losses must be finite; other validation results must not be NaN (PSNR is +Inf legitimately
            # for a perfect image)
            if (self._is_loss(key) and not math.isfinite(value)) or (key.startswith("val_") and math.isnan(value)):
                what = "NaN" if math.isnan(value) else "Inf"
                self._stop(f"{key} is {what} after epoch {epoch + 1}"
                           f"{' (validation)' if key.startswith('val_') else ''}")
        for weight in self.model.weights:
            if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
                self._stop(f"weight {weight.path} is not finite after epoch {epoch + 1}")

    def _is_loss(self, key):
        return key in self.keys if self.keys else "loss" in key

    def _stop(self, what):
        raise NonFiniteLoss(f"{what}: training stopped and nothing from this epoch was saved (earlier "
                            f"checkpoints in {self.checkpoint_dir} are kept); lower --lr (it was {self.lr:g}) "
                            "or check the data")


class ImagePanel(keras.callbacks.Callback):
    """Each epoch, logs `bicubic-upscaled LR | SR | HR` for a few fixed validation crops to TensorBoard."""

    def __init__(self, log_dir, generator, pairs, scale):
        super().__init__()
        self.log_dir, self.generator, self.scale = log_dir, generator, scale
        self.pairs = [_panel_crop(lr, hr, scale) for lr, hr in pairs]
        self.writer = None

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default():
            for i, (lr, bicubic, hr) in enumerate(self.pairs):
                sr = sr_metrics.to_uint8(keras.ops.convert_to_numpy(
                    keras.ops.cast(self.generator(lr[None], training=False)[0], "float32")))
                panel = np.concatenate([bicubic, sr, hr], axis=1)
                tf.summary.image(f"val_panel/{i}", panel[None], step=epoch,
                                 description="bicubic-upscaled LR | SR | HR")
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()


def _panel_crop(lr, hr, scale):
    """Centre crop (HR side <= PANEL_MAX_HR) of one validation pair -> (lr float, bicubic u8, hr u8)."""
    lr, hr = np.asarray(lr, np.float32), np.asarray(hr, np.float32)
    side = PANEL_MAX_HR // scale
    h, w = min(side, lr.shape[0]), min(side, lr.shape[1])
    top, left = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
    lr = lr[top:top + h, left:left + w]
    hr = hr[top * scale:(top + h) * scale, left * scale:(left + w) * scale]
    return lr, upscale_bicubic(sr_metrics.to_uint8(lr), scale), sr_metrics.to_uint8(hr)


# ----------------------------------------------------------------------------------- checkpoints

def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save_weights(model, path):
    """model.save_weights(path) through a temporary file (Keras needs the .weights.h5 suffix)."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    model.save_weights(tmp)
    _fsync(tmp)
    os.replace(tmp, path)


def load_state(out_dir):
    """The run's checkpoint.json as a dict, or None when the run has no checkpoint yet."""
    path = os.path.join(out_dir, CHECKPOINT_DIR, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def prepare_run(args, config):
    """Check --out/--resume before anything slow; returns the checkpoint state to resume, or None.

    `config` (model-defining settings) is stored with each checkpoint; resuming with a different one
    would load weights into the wrong network, so it is refused.
    """
    state = load_state(args.out)
    if args.resume:
        if state is None:
            raise UserError(f"--resume: no checkpoint in {os.path.join(args.out, CHECKPOINT_DIR)}; "
                            "run without --resume to start training, or pass the --out of an earlier run")
        changed = {k: (state["config"].get(k), v) for k, v in config.items() if state["config"].get(k) != v}
        if changed:
            desc = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in sorted(changed.items()))
            raise UserError(f"--resume: the checkpoint in {args.out} was made with other settings ({desc}); "
                            "pass the same flags as the run you continue")
        return state
    if getattr(args, "fresh", False):
        removed = remove_run_files(args.out)
        if removed:
            print(f"--fresh: removed {removed} file(s) of the previous run in {args.out}")
        return None
    if state is not None:
        raise UserError(f"--out {args.out} already holds a run (checkpoint after epoch {state['epoch']}); "
                        "pass --resume to continue it, --fresh to start it over, or choose another --out")
    return None


_RUN_FILE = re.compile(r"^(checkpoint\.json(\.tmp-\d+)?|(last|best)-e\d{4,}\.weights\.h5|\.tmp-\d+-.*\.weights\.h5)$")
_TEMP_PID = re.compile(r"^(?:\.tmp-(\d+)-.*\.weights\.h5|checkpoint\.json\.tmp-(\d+))$")
LOG_DIRS = ("logs", "logs-workers")


def remove_run_files(out_dir):
    """Delete what training wrote in out_dir (checkpoint files, TensorBoard event files) and the folders
    left empty by that; anything else there is kept. Returns the number of files removed."""
    removed = 0
    ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
    if os.path.isdir(ckpt_dir):
        for name in os.listdir(ckpt_dir):
            if _RUN_FILE.match(name):
                os.remove(os.path.join(ckpt_dir, name))
                removed += 1
    for folder in (ckpt_dir, *(os.path.join(out_dir, d) for d in LOG_DIRS)):
        if not os.path.isdir(folder):
            continue
        for root, _, files in os.walk(folder, topdown=False):
            for name in files:
                if name.startswith("events.out.tfevents."):
                    os.remove(os.path.join(root, name))
                    removed += 1
            if not os.listdir(root):
                os.rmdir(root)
    return removed


def stale_temp_files(folder):
    """Temporary checkpoint files in folder left by other processes (a kill -9 during a save)."""
    stale = []
    for name in os.listdir(folder):
        match = _TEMP_PID.match(name)
        if match and int(match.group(1) or match.group(2)) != os.getpid():
            stale.append(name)
    return stale


def restore(trainer, out_dir, state):
    """Load the last checkpoint's weights and optimizer state into a compiled trainer."""
    for optimizer in getattr(trainer, "optimizers", None) or [trainer.optimizer]:
        if not optimizer.built:
            optimizer.build(trainer.trainable_variables)
    trainer.load_weights(os.path.join(out_dir, CHECKPOINT_DIR, state["last"]))


def best_weights_path(out_dir):
    """The best-on-validation generator weights of a run (None when no epoch completed)."""
    state = load_state(out_dir)
    if state is None or not state.get("best"):
        return None
    return os.path.join(out_dir, CHECKPOINT_DIR, state["best"])


class RunCheckpoint(keras.callbacks.Callback):
    """After every epoch: best generator weights (when validation PSNR improved) and the last trainer
    weights with optimizer state, then checkpoint.json naming them with the epoch and callback state.
    Files no longer named by checkpoint.json are removed only after it is replaced."""

    def __init__(self, out_dir, generator, config, stateful=None, monitor="val_psnr", state=None, write=True):
        super().__init__()
        self.dir = os.path.join(out_dir, CHECKPOINT_DIR)
        self.generator, self.config, self.monitor, self.write = generator, config, monitor, write
        self.stateful = stateful or {}
        state = state or {}
        self.best_file, self.best = state.get("best"), state.get("best_value")
        self.best_epoch = state.get("best_epoch")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        improved = current is not None and math.isfinite(current) and (self.best is None or current > self.best)
        if not self.write:
            return
        os.makedirs(self.dir, exist_ok=True)
        tag = f"e{epoch + 1:04d}"
        if improved:
            self.best_file, self.best, self.best_epoch = f"best-{tag}.weights.h5", float(current), epoch + 1
            atomic_save_weights(self.generator, os.path.join(self.dir, self.best_file))
        last_file = f"last-{tag}.weights.h5"
        atomic_save_weights(self.model, os.path.join(self.dir, last_file))
        state = {"epoch": epoch + 1, "last": last_file, "best": self.best_file, "best_value": self.best,
                 "best_epoch": self.best_epoch, "monitor": self.monitor, "config": self.config,
                 "callbacks": {name: cb.get_state() for name, cb in self.stateful.items()},
                 "logs": {k: float(v) for k, v in logs.items()}, "time": time.time()}
        atomic_write_text(os.path.join(self.dir, STATE_FILE), json.dumps(state, indent=1))
        keep = {STATE_FILE, last_file, self.best_file}
        for name in os.listdir(self.dir):
            if name not in keep and name.endswith(".weights.h5") and not name.startswith(".tmp-"):
                os.remove(os.path.join(self.dir, name))
        # one trainer per run folder: another pid's temporary file is a leftover of a killed run
        for name in stale_temp_files(self.dir):
            os.remove(os.path.join(self.dir, name))


# --------------------------------------------------------------------------------------- the run

def take_pairs(dataset, n):
    """First n (lr, hr) pairs of a batch-1 evaluation dataset as [h, w, 3] float arrays."""
    return [(lr[0].numpy(), hr[0].numpy()) for lr, hr in dataset.take(n)]


def replicate_for_replicas(val_ds, replicas):
    """A validation dataset (batches of one full-size image) that every replica gets a share of.

    A strategy splits each batch over its replicas, and one image over two replicas leaves one empty
    (Keras then fails, or averages in an empty batch). Each image is repeated once per replica, so every
    replica validates on one copy: the means over images are unchanged. Auto-sharding is off, so every
    worker of a multi-worker run validates on all images rather than on a file or batch shard of them.
    """
    if replicas <= 1:
        return val_ds
    val_ds = val_ds.map(lambda lr, hr: (tf.repeat(lr, replicas, axis=0), tf.repeat(hr, replicas, axis=0)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return val_ds.with_options(options)


def fit(args, trainer, generator, train_ds, val_ds, scale, config, state=None, chief=True,
        monitor="val_psnr", extra_callbacks=()):
    """model.fit with the run's callbacks, continuing from `state` (prepare_run) when resuming.

    Returns the History, or None when the checkpoint already reached --epochs.
    """
    start = state["epoch"] if state else 0
    if start >= args.epochs:
        print(f"the checkpoint in {args.out} already completed epoch {start} of --epochs {args.epochs}; "
              "nothing to train")
        return None
    ckpt_dir = os.path.join(args.out, CHECKPOINT_DIR)
    log_dir = os.path.join(args.out, "logs") if chief else os.path.join(args.out, "logs-workers", str(os.getpid()))
    callbacks_state = (state or {}).get("callbacks", {})
    early = ResumableEarlyStopping(args.patience, monitor=monitor, state=callbacks_state.get("early_stopping"))
    callbacks = [
        NonFiniteGuard(ckpt_dir, args.lr),
        LRSchedule(lr_schedule(args)),
        early,
        RunCheckpoint(args.out, generator, config, stateful={"early_stopping": early}, monitor=monitor,
                      state=state, write=chief),
        keras.callbacks.TensorBoard(log_dir, write_graph=False),
        *extra_callbacks,
    ]
    if args.panel_images and chief:
        pairs = take_pairs(val_ds, args.panel_images)
        callbacks.append(ImagePanel(os.path.join(log_dir, "images"), generator, pairs, scale))
    val_ds = replicate_for_replicas(val_ds, trainer.distribute_strategy.num_replicas_in_sync)
    return trainer.fit(train_ds, epochs=args.epochs, initial_epoch=start, steps_per_epoch=args.steps_per_epoch,
                       validation_data=val_ds, callbacks=callbacks, shuffle=False,
                       verbose=1 if sys.stdout.isatty() else 2)  # a log file gets one line per epoch


def export_best(args, scale):
    """Export the best-on-validation generator of the run to --export (float32, whatever --precision)."""
    from sr_keras.export import export_model

    path = best_weights_path(args.out)
    if path is None:
        raise UserError(f"no validation checkpoint in {args.out} to export (did an epoch complete?)")
    set_precision("float32")
    generator = build_generator(args, scale)
    generator.load_weights(path)
    export_model(generator, scale, args.export)
    print(f"exported the best model (epoch {load_state(args.out)['best_epoch']}) to {args.export}")
    return generator


def datasets(args, start_epoch):
    """(training, validation) datasets of a run: the train split, augmented and seeded for the epoch the
    run starts at, and the first --val-images images of the validation split (0: all)."""
    from sr_keras import data

    train_ds = data.training_dataset(args.data, args.track, batch_size=args.batch_size, hr_crop=args.hr_crop,
                                     seed=data_seed(args.seed, start_epoch), augment_p=args.augment_p)
    val_ds = data.eval_dataset(args.data, args.track, "validation")
    return train_ds, (val_ds.take(args.val_images) if args.val_images else val_ds)


def finish_run(args, scale):
    """After fit: export the best generator, then (with --test-images) print bicubic vs the export
    on the first --test-images images of the test split."""
    from sr_keras import data

    export_best(args, scale)
    if args.test_images:
        pairs = take_pairs(data.eval_dataset(args.data, args.track, "test"), args.test_images)
        print(format_table(bicubic_vs_model(args.export, pairs, scale), len(pairs), scale))


def bicubic_vs_model(export_dir, pairs, scale):
    """Mean PSNR-Y / SSIM-Y of bicubic and of the exported SavedModel on (lr, hr) float pairs."""
    from tqdm import tqdm

    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    rows = {"bicubic": [], "model": []}
    for lr, hr in tqdm(pairs, desc="scoring test images", unit="img"):
        lr8, hr8 = sr_metrics.to_uint8(lr), sr_metrics.to_uint8(hr)
        sr8 = serve(images=tf.constant(lr8[None]))["sr"][0].numpy()
        for name, img in (("bicubic", upscale_bicubic(lr8, scale)), ("model", sr8)):
            rows[name].append((sr_metrics.psnr_y(img, hr8, scale), sr_metrics.ssim_y(img, hr8, scale)))
    return {name: tuple(float(np.mean(col)) for col in zip(*vals)) for name, vals in rows.items()}


def format_table(scores, n, scale):
    (bp, bs), (mp, ms) = scores["bicubic"], scores["model"]
    return "\n".join([
        f"x{scale} on {n} test image(s) never seen in training (Y channel, {scale}-pixel border cropped):",
        f"  {'':8s} {'PSNR-Y':>8s} {'SSIM-Y':>8s}",
        f"  {'bicubic':8s} {bp:8.2f} {bs:8.4f}",
        f"  {'model':8s} {mp:8.2f} {ms:8.4f}",
        f"  {'gain':8s} {mp - bp:+8.2f} {ms - bs:+8.4f}",
    ])
