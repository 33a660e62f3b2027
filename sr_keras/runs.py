"""A run folder (--out) and its checkpoints: what training writes, how a run is resumed or started
over, and the export of its selected generator.

    checkpoints/checkpoint.json          a config.RunState: completed epochs, file names, callback state
    checkpoints/last-eNNNN.weights.h5    trainer weights + optimizer state after epoch NNNN (for --resume)
    checkpoints/best-eNNNN.weights.h5    the selected generator's weights (exported)
    logs/train, logs/validation          Keras TensorBoard scalars (loss, psnr, ssim, learning_rate)
    logs/images                          validation panels: bicubic-upscaled LR | SR | HR

Every file is written under a temporary name and renamed into place, and checkpoint.json is replaced
only once the files it names are complete, so `kill -9` at any moment leaves the last good epoch.
"""
import os
import re

from sr_keras.config import RunState
from sr_keras.errors import UserError
from sr_keras.imageio import atomic_file, atomic_write_text

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "checkpoint.json"
LOG_DIRS = ("logs", "logs-workers")
# the flag that sets each resume-config key whose flag is not its own name
_FLAGS = {"model": "the training script", "scale": "--track", "arch": "--generator"}
# files training writes in checkpoints/, temporary ones included (also the older "checkpoint.json.tmp-<pid>")
_RUN_FILE = re.compile(r"^(checkpoint\.json(\.tmp-\d+)?|(last|best)-e\d{4,}\.weights\.h5"
                       r"|\.tmp-\d+-(checkpoint\.json|.*\.weights\.h5))$")
_TEMP_PID = re.compile(r"^(?:\.tmp-(\d+)-(?:checkpoint\.json|.*\.weights\.h5)|checkpoint\.json\.tmp-(\d+))$")


def load_state(out_dir):
    """The run's checkpoint.json as a config.RunState, or None when the run has no checkpoint yet."""
    path = os.path.join(out_dir, CHECKPOINT_DIR, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return RunState.from_json(f.read())


def write_state(checkpoint_dir, state):
    """Replace checkpoint_dir/checkpoint.json with `state` (a RunState), atomically."""
    atomic_write_text(os.path.join(checkpoint_dir, STATE_FILE), state.to_json())


def atomic_save_weights(model, path):
    """model.save_weights(path) through a temporary file renamed into place (it keeps the .weights.h5
    suffix Keras needs), so a crash never leaves a partial file under a name checkpoint.json uses."""
    with atomic_file(path) as tmp:
        model.save_weights(tmp)


def resume_config(model, generator_config, precision, **settings):
    """The settings a resumed run must repeat (RunState.config): the script ("model"), the generator's
    architecture, --precision (a loss-scale optimizer has other variables) and the loss `settings`."""
    return {"model": model, **generator_config.to_dict(), "precision": precision, **settings}


def flag_of(key):
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def prepare_run(train, config):
    """Check --out/--resume before anything slow; returns the RunState to resume, or None.

    Args:
        train: the run's config.TrainConfig (out, resume, fresh).
        config: resume_config() of this run. A checkpoint made with other values is refused: its
            weights or optimizer state would not fit, or its losses would mean something else. Keys a
            checkpoint does not record (written before they were recorded) are not compared.
    """
    state = load_state(train.out)
    if train.resume:
        if state is None:
            raise UserError(f"--resume: no checkpoint in {os.path.join(train.out, CHECKPOINT_DIR)}; "
                            "run without --resume to start training, or pass the --out of an earlier run")
        changed = {k: (state.config[k], v) for k, v in config.items() if k in state.config and state.config[k] != v}
        if changed:
            desc = ", ".join(f"{flag_of(k)}: checkpoint {a!r}, now {b!r}" for k, (a, b) in sorted(changed.items()))
            raise UserError(f"--resume: the checkpoint in {train.out} was made with other settings ({desc}); "
                            "pass the same flags as the run you continue")
        return state
    if train.fresh:
        removed = remove_run_files(train.out)
        if removed:
            print(f"--fresh: removed {removed} file(s) of the previous run in {train.out}")
        return None
    if state is not None:
        raise UserError(f"--out {train.out} already holds a run (checkpoint after epoch {state.epoch}); "
                        "pass --resume to continue it, --fresh to start it over, or choose another --out")
    return None


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
    """Load the last checkpoint's weights and optimizer state (step count, Adam's moments) into a
    compiled trainer."""
    for optimizer in getattr(trainer, "optimizers", None) or [trainer.optimizer]:
        if not optimizer.built:
            optimizer.build(trainer.trainable_variables)
    trainer.load_weights(os.path.join(out_dir, CHECKPOINT_DIR, state.last))


def best_weights_path(out_dir):
    """The selected generator weights of a run (None when no epoch completed)."""
    state = load_state(out_dir)
    if state is None or not state.best:
        return None
    return os.path.join(out_dir, CHECKPOINT_DIR, state.best)


def export_best(out_dir, export_dir, generator_config):
    """Export the run's selected generator (float32, whatever --precision) to export_dir.

    Args:
        out_dir: the run folder.
        export_dir: the export folder (SavedModel, model.keras, generator.json).
        generator_config: the run's config.GeneratorConfig.

    Returns:
        The exported generator.
    """
    from sr_keras.distribute import set_precision
    from sr_keras.export import export_model

    path = best_weights_path(out_dir)
    if path is None:
        raise UserError(f"no validation checkpoint in {out_dir} to export (did an epoch complete?)")
    set_precision("float32")
    generator = generator_config.build()
    generator.load_weights(path)
    export_model(generator, export_dir, generator_config)
    state = load_state(out_dir)
    which = "the best model" if state.monitor else "the last epoch's model"
    print(f"exported {which} (epoch {state.best_epoch}) to {export_dir}")
    return generator
