"""The steps of a training run (sr_keras.train.runner.run calls them in order): the checks before
anything slow, holding the run folder, building the SRResNet trainer, a run's datasets, the model.fit
call with the run's callbacks, and the end of a run (export, test scores).

A value's path: train_srresnet.py / train_srgan.py parse their flags (sr_keras.cli) into a
settings.TrainConfig and a config.GeneratorConfig and hand them to runner.run; runs.prepare_run checks the
run folder; fit() wires the callbacks (sr_keras.train.callbacks) and sr_keras.train.runs writes the
checkpoints.
"""
import contextlib
import os
import re
import sys

import keras

from sr_keras.core import backend
from sr_keras.evaluation import metrics as sr_metrics
from sr_keras.train import losses, runs
from sr_keras.train.callbacks import (AverageValidation, ImagePanel, LRSchedule, NonFiniteGuard,
    ResumableEarlyStopping, RunCheckpoint, lr_schedule)
from sr_keras.core.errors import UserError, first_line, naming
from sr_keras.evaluation.metrics import min_scorable_size
from sr_keras.train.distribute import Trainer, replicate_for_replicas, tf_config_is_chief
from sr_keras.train.ema import WeightAverage, adam

TRUNK_PREFIXES = ("head_", "block", "body_")  # layers before upsampling: the same at every scale


def check_outputs(train):
    """Prove train.export and train.out writable (the run folder is made) before anything slow: a bad
    location fails in one line about `export` or `out`, not after the last epoch. The export must also be
    absent, empty or a previous export (savedmodel.check_export_dir). Returns whether the run folder was
    made here."""
    from sr_keras.core.outputs import check_writable_folder, check_writable_parent
    from sr_keras.exports.savedmodel import check_export_dir

    is_chief_worker(train.strategy)  # a malformed TF_CONFIG fails here, before any folder is made
    check_export_dir(train.export)
    with naming(out="export"):
        check_writable_parent(train.export, keep_folders=False)
    created = not os.path.lexists(train.out)
    check_writable_folder(train.out)
    return created


def check_hr_crop(hr_crop, scale):
    """Refuse an --hr-crop too small to train at `scale`: the training PSNR/SSIM metrics crop `scale`
    pixels from every border and SSIM's 11-pixel window must fit in what is left (metrics.min_scorable_size:
    20 at x4). Returns the crop side training uses (rounded down to a multiple of the scale)."""
    least = min_scorable_size(scale)
    if hr_crop // scale * scale < least:
        raise UserError(f"--hr-crop {hr_crop}: x{scale} training needs an HR crop of at least {least} pixels "
                        f"(SSIM's 11-pixel window inside the {scale}-pixel border its scores leave out)")
    return hr_crop // scale * scale


def is_chief_worker(strategy_flag, tf_config=None):
    """Whether this process writes the run folder (so holds its lock), read from the flags and TF_CONFIG
    before the strategy exists: every process but the non-chief workers of --strategy multiworker,
    which share the chief's --out (distribute.tf_config_is_chief; tf_config as its)."""
    return strategy_flag != "multiworker" or tf_config_is_chief(tf_config)


@contextlib.contextmanager
def holding_run_folder(train, created=False):
    """The block holds --out's lock (runs.run_lock; not on non-chief workers) and turns running out of
    memory into one line that says which flags make a run smaller. `created`: check_outputs made --out
    (it is removed again if the run leaves nothing in it)."""
    chief = is_chief_worker(train.strategy)
    out_of_memory = (MemoryError,)
    if backend.is_tensorflow():
        import tensorflow as tf

        out_of_memory += (tf.errors.ResourceExhaustedError,)
    with runs.run_lock(train.out, created) if chief else contextlib.nullcontext():
        try:
            yield
        except out_of_memory as e:
            found = re.search(r"OOM when allocating tensor with shape\S*", str(e))
            what = found.group(0) if found else first_line(e)
            raise UserError(f"out of memory ({what}): try a smaller --batch-size (it is {train.batch_size}) or "
                            f"--hr-crop (it is {train.hr_crop}), or a smaller generator") from None


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


def make_generator(config):
    """The untrained generator of a config.GeneratorConfig, started at bicubic when it has the skip."""
    generator = config.build()
    if config.bicubic_skip:  # srresnet only (an rrdbnet config has none)
        start_at_bicubic(generator)
    return generator


def init_trunk(generator, path):
    """Copy the trunk (head conv, residual blocks, body conv; every layer before the upsampling) of a
    trained SRResNet of any scale into `generator`, as EDSR initialises its x2 model from x4 and back.

    Args:
        generator: the run's generator.
        path: an export folder of train_srresnet.py or a .keras file.

    Returns:
        The number of layers copied.

    Raises:
        UserError: about `model`, naming `path`, when it cannot be loaded or its trunk does not match.
    """
    from sr_keras.infer.loading import load_keras_model

    source = load_keras_model(path)
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
            raise UserError(f"{path}: its layer {layer.name} does not match this run's generator "
                            "(pass the same --num-blocks, --filters and --batch-norm as that model)", argument="model")
        layer.set_weights(src.get_weights())
        copied += 1
    return copied


def build_srresnet_trainer(config, *, lr=1e-4, loss="mse", jit=False, ema=None):
    """(trainer, generator) compiled exactly as train_srresnet.py trains them (SRResNet or, with an
    rrdbnet config, ESRGAN's PSNR-oriented RRDBNet).

    Call after distribute.set_precision() and inside strategy.scope(). Adam's epsilon is PyTorch's 1e-8
    (SPEC); under mixed_float16 Keras wraps it in a LossScaleOptimizer. Validation metrics: PSNR/SSIM on Y.

    Args:
        config: the generator's config.GeneratorConfig.
        lr: initial learning rate.
        loss: pixel loss, "mse" or "l1".
        jit: compile the train step with XLA.
        ema: decay of an exponential moving average of the generator's weights (sr_keras.train.ema), or None.
    """
    if loss not in losses.KERAS_PIXEL_LOSSES:
        raise UserError(f"--loss {loss}: expected one of {', '.join(losses.KERAS_PIXEL_LOSSES)}")
    generator = make_generator(config)
    trainer = float32_output(generator)
    trainer.compile(optimizer=adam(lr, ema), loss=losses.KERAS_PIXEL_LOSSES[loss],
                    metrics=[sr_metrics.PSNRY(config.scale), sr_metrics.SSIMY(config.scale)],
                    jit_compile=bool(jit) or not backend.is_tensorflow())  # JAX steps are always XLA-compiled
    return trainer, generator


def take_pairs(dataset, n):
    """First n (lr, hr) pairs of a batch-1 evaluation dataset as [h, w, 3] float arrays (n=-1: all)."""
    return [(lr[0].numpy(), hr[0].numpy()) for lr, hr in dataset.take(n)]


def datasets(train, start_epoch):
    """(training, validation) datasets of a run (a settings.TrainConfig).

    The training batches of each epoch are a function of (seed, epoch), so a run resumed at
    start_epoch sees exactly what the uninterrupted run would have; training LR is made as
    train.degradation says (sr_keras.data.loaders); validation is the first
    train.val_images images of the validation split (0: all).
    """
    from sr_keras.data import loaders, sources

    sources.print_split(train.data)  # a user's folder: which photographs train, validate and test the run
    train_ds = loaders.training_dataset(train.data, train.track, batch_size=train.batch_size, hr_crop=train.hr_crop,
                                     seed=train.seed, augment_p=train.augment_p, start_epoch=start_epoch,
                                     steps_per_epoch=train.steps_per_epoch, degradation=train.degradation)
    val_ds = loaders.eval_dataset(train.data, train.track, "validation")
    return train_ds, (val_ds.take(train.val_images) if train.val_images else val_ds)


def fit(train, trainer, generator, train_ds, val_ds, scale, config, state=None, chief=True):
    """model.fit with the run's callbacks, continuing from `state` (runs.prepare_run) when resuming.

    Args:
        train: the run's settings.TrainConfig.
        trainer: the compiled model (float32_output's trainer or gan.SRGAN).
        generator: the network the checkpoints select and export; with train.ema, its weight average
            (kept by trainer.optimizer, G's) is validated, selected and exported.
        train_ds, val_ds: datasets(train, start_epoch).
        scale: upscaling factor (the image panel's bicubic column).
        config: runs.resume_config() of this run, stored with every checkpoint.
        state: the settings.RunState resumed from, or None.
        chief: False on non-chief workers (they write no checkpoints and log elsewhere).

    Returns:
        The History, or None when the checkpoint already reached train.epochs.
    """
    start = state.epoch if state else 0
    if start >= train.epochs:
        print(f"the checkpoint in {train.out} already completed epoch {start} of --epochs {train.epochs}; "
              "nothing to train")
        return None
    ckpt_dir = os.path.join(train.out, runs.CHECKPOINT_DIR)
    log_dir = os.path.join(train.out, "logs") if chief else os.path.join(train.out, "logs-workers", str(os.getpid()))
    saved = state.callbacks if state else {}
    average = WeightAverage(trainer.optimizer) if train.ema else None
    stateful = {}
    if train.monitor:  # --select last: no early stopping on a value that does not pick the export
        stateful["early_stopping"] = ResumableEarlyStopping(train.patience, monitor=train.monitor,
                                                            state=saved.get("early_stopping"))
    # the guard first: it must stop a non-finite epoch before RunCheckpoint saves it
    callbacks = [
        NonFiniteGuard(ckpt_dir, train.lr),
        LRSchedule(lr_schedule(train)),
        *([AverageValidation(average)] if average else []),
        *stateful.values(),
        RunCheckpoint(train.out, generator, config, stateful=stateful, monitor=train.monitor, state=state,
                      write=chief, average=average),
    ]
    if backend.is_tensorflow():
        callbacks.append(keras.callbacks.TensorBoard(log_dir, write_graph=False))
        if train.panel_images and chief:
            pairs = take_pairs(val_ds, train.panel_images)
            callbacks.append(ImagePanel(os.path.join(log_dir, "images"), generator, pairs, scale, average=average))
        val_ds = replicate_for_replicas(val_ds, trainer.distribute_strategy.num_replicas_in_sync)
    else:
        print(f"TensorBoard logs and image panels are TensorFlow-only: not written on KERAS_BACKEND={backend.name()} "
              f"(each epoch's results are in {os.path.join(ckpt_dir, runs.STATE_FILE)})")
    return trainer.fit(train_ds, epochs=train.epochs, initial_epoch=start, steps_per_epoch=train.steps_per_epoch,
                       validation_data=val_ds, callbacks=callbacks, shuffle=False,
                       verbose=1 if sys.stdout.isatty() else 2)  # a log file gets one line per epoch


def finish_run(train, generator_config):
    """After fit: export the selected generator, then (with train.test_images) print bicubic against
    the export on the first test_images images of the test split, and write the export's model card."""
    generator = runs.export_best(train.out, train.export, generator_config)
    if not backend.is_tensorflow():
        if train.test_images:
            print(f"--test-images: scoring the export is TensorFlow-only; on a TensorFlow machine, evaluate.py "
                  f"{train.export} (export.py makes its SavedModel)")
        return  # model.keras and generator.json: the model card reads TensorBoard logs and TensorFlow's devices
    from sr_keras.archs.models import count_trainable
    from sr_keras.data import loaders
    from sr_keras.evaluation import benchmark
    from sr_keras.exports import model_card

    scores = None
    if train.test_images:
        pairs = take_pairs(loaders.eval_dataset(train.data, train.track, "test"), train.test_images)
        scores = benchmark.bicubic_vs_model(train.export, pairs, generator_config.scale)
        print(benchmark.format_table(scores, len(pairs), generator_config.scale))
    card = model_card.run_card(train, generator_config, count_trainable(generator), runs.load_state(train.out).epoch,
                               scores)
    model_card.write_card(train.export, card)
    warning = below_bicubic_warning(scores, train.export)
    if warning:
        print(warning)
    print(f"the exported model and its card: {train.export}")


def below_bicubic_warning(scores, export_dir):
    """The WARNING line a run ends with when its export scores below bicubic on the test images
    (benchmark.bicubic_vs_model's scores; None: not scored), or None: a model worse than no model
    otherwise leaves only a negative "gain" in the table for the user to notice."""
    if not scores:
        return None
    (bicubic, _), (model, _) = scores["bicubic"], scores["model"]
    if model >= bicubic:
        return None
    return (f"WARNING: the exported model in {export_dir} scores {bicubic - model:.2f} dB below bicubic on the test "
            f"images (PSNR-Y {model:.2f} vs {bicubic:.2f}): upscaling with it is worse than bicubic; check the "
            "architecture flags, the learning rate and the number of steps before using it")
