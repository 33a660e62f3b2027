"""A run folder (--out) and its checkpoints: what training writes, how a run is resumed or started
over, and the export of its selected generator.

    checkpoints/checkpoint.json          a settings.RunState: completed epochs, file names, callback state
    checkpoints/last-eNNNN.weights.h5    trainer weights + optimizer state after epoch NNNN (for --resume)
    checkpoints/best-eNNNN.weights.h5    the selected generator's weights (exported)
    logs/train, logs/validation          Keras TensorBoard scalars (loss, psnr, ssim, learning_rate)
    logs/images                          validation panels: bicubic-upscaled LR | SR | HR

    run.lock                             "pid N on HOST" while a training process holds the folder (run_lock);
                                         removed when it ends, left (naming a dead run) only after a crash

Every file is written under a temporary name and renamed into place, and checkpoint.json is replaced
only once the files it names are complete, so `kill -9` at any moment leaves the last good epoch. A
damaged state or weights file (truncated, edited) is named in one line whose way out is --fresh.
"""
import contextlib
import errno
import fcntl
import gc
import io
import json
import math
import os
import re
import shutil
import socket
import sys

import numpy as np

from sr_keras.core.errors import UserError, first_line
from sr_keras.core.imageio import atomic_file, atomic_write_text
from sr_keras.train.settings import RunState

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "checkpoint.json"
LOCK_FILE = "run.lock"
_H5_ARRAY_OVERHEAD = 4096  # bytes of HDF5 object header and name per saved array, generously
LOG_DIRS = ("logs", "logs-workers")
# the flag that sets each resume-config key whose flag is not its own name
_FLAGS = {"model": "the training script", "scale": "--track", "arch": "--generator"}
# files training writes in checkpoints/, temporary ones included (also the older "checkpoint.json.tmp-<pid>")
_RUN_FILE = re.compile(r"^(checkpoint\.json(\.tmp-\d+)?|(last|best)-e\d{4,}\.weights\.h5"
                       r"|\.tmp-\d+-(checkpoint\.json|.*\.weights\.h5))$")
# the weights files a checkpoint.json may name: this run's own, in checkpoints/ itself
WEIGHTS_NAME = {kind: re.compile(rf"^{kind}-e\d{{4,}}\.weights\.h5$") for kind in ("last", "best")}
_TEMP_PID = re.compile(r"^(?:\.tmp-(\d+)-(?:checkpoint\.json|.*\.weights\.h5)|checkpoint\.json\.tmp-(\d+))$")


class DamagedRun(UserError):
    """A run folder's state or weights file cannot be read; --fresh starts the run over."""


def _damaged(path, why, resume):
    way_out = "--fresh instead of --resume" if resume else "--fresh"
    return DamagedRun(f"{path} is damaged ({why}): start the run over with {way_out} (it removes only this run's "
                      "files), or choose another --out")


def load_state(out_dir, resume=False):
    """The run's checkpoint.json as a settings.RunState, or None when the run has no checkpoint yet.

    Raises:
        DamagedRun: naming the file, when it is not a state RunCheckpoint wrote (truncated, not JSON,
            keys missing); `resume` only picks the way out the message gives.
    """
    path = os.path.join(out_dir, CHECKPOINT_DIR, STATE_FILE)
    if not os.path.lexists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            state = RunState.from_json(f.read())
    except OSError as e:
        raise _damaged(path, f"cannot read it: {e.strerror or first_line(e)}", resume) from None
    except json.JSONDecodeError as e:
        raise _damaged(path, f"not valid JSON, e.g. cut short: {e.msg} at character {e.pos}", resume) from None
    except ValueError as e:  # edited: not UTF-8, or JSON that is not a RunState
        raise _damaged(path, first_line(e), resume) from None
    for key, pattern in WEIGHTS_NAME.items():  # an edited name could point anywhere: restored, then removed
        name = getattr(state, key)
        if name is not None and not pattern.match(name):
            raise _damaged(path, f"{key!r} is not a {key}-eNNNN.weights.h5 file name. Received: {name!r}", resume)
    return state


def check_weights(out_dir, state, resume=False):
    """Raise DamagedRun naming the first weights file `state` names that is missing or not a complete
    HDF5 file (HDF5 checks a file's recorded end against its size, so a truncated file fails to open)."""
    import h5py

    for name in dict.fromkeys(n for n in (state.last, state.best) if n):
        path = os.path.join(out_dir, CHECKPOINT_DIR, name)
        if not os.path.isfile(path):
            raise _damaged(os.path.join(out_dir, CHECKPOINT_DIR, STATE_FILE), f"it names {name}, which is missing",
                           resume)
        try:
            with h5py.File(path, "r"):
                pass
        except OSError as e:
            raise _damaged(path, f"not a complete weights file: {first_line(e)}", resume) from None


def write_state(checkpoint_dir, state):
    """Replace checkpoint_dir/checkpoint.json with `state` (a RunState), atomically."""
    atomic_write_text(os.path.join(checkpoint_dir, STATE_FILE), state.to_json())


def weights_bytes(model):
    """An upper bound of the size of model.save_weights' file: every variable of the model and of its
    optimizers, plus HDF5's few kilobytes of metadata per array."""
    variables = list(model.variables)
    for optimizer in getattr(model, "optimizers", None) or [getattr(model, "optimizer", None)]:
        variables += list(getattr(optimizer, "variables", None) or [])
    return sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize + _H5_ARRAY_OVERHEAD for v in variables)


def atomic_save_weights(model, path):
    """model.save_weights(path) through a temporary file renamed into place (it keeps the .weights.h5
    suffix Keras needs), so a crash never leaves a partial file under a name checkpoint.json uses.

    Raises:
        OSError: ENOSPC before anything is written when the disk cannot hold the file: HDF5 failing half
            way through a write leaves objects that print tracebacks when collected and can crash the
            interpreter at exit. Any other write error, as raised (the temporary file is removed).
    """
    folder = os.path.dirname(os.path.abspath(path))
    need, free = weights_bytes(model), shutil.disk_usage(folder).free
    if need > free:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({need / 2**20:.1f} MiB needed, "
                                    f"{free / 2**20:.1f} MiB free)", path)
    # When a write fails, HDF5 fails again closing each of the file's objects, in destructors that print
    # a traceback each (about 135 for a trainer checkpoint): they are held back, and shown only if the
    # save succeeds after all.
    hook, held = sys.unraisablehook, io.StringIO()
    sys.unraisablehook = lambda unraisable: None if "h5py" in repr(unraisable.object) else hook(unraisable)
    try:
        with contextlib.redirect_stderr(held):
            try:
                with atomic_file(path) as tmp:
                    model.save_weights(tmp)
                error = None
            except (OSError, RuntimeError) as e:  # h5py raises either, its message holding HDF5's error stack
                error = _os_error(e, path)
            if error is not None:
                # the failed file's objects, freed with the exception, now and quietly. Only then: a full
                # collection mid-fit can free a tf.data iterator whose numpy_function thread waits for the
                # GIL this thread holds (a deadlock seen once in the test suite)
                gc.collect()
    finally:
        sys.unraisablehook = hook
    if error is not None:
        raise error
    sys.stderr.write(held.getvalue())


def _os_error(e, path):
    """An OSError of one line for a failed weights write: HDF5's errno ("errno = 28" in h5py's message)
    with its strerror; an operating-system error as it is."""
    found = re.search(r"errno = (\d+)", str(e))
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code), path)
    if isinstance(e, OSError) and e.errno is not None:
        return OSError(e.errno, e.strerror, path)
    return OSError(errno.EIO, first_line(e), path)


def resume_config(model, generator_config, precision, **settings):
    """The settings a resumed run must repeat (RunState.config): the script ("model"), the generator's
    architecture, --precision (a loss-scale optimizer has other variables) and the loss `settings`."""
    return {"model": model, **generator_config.to_dict(), "precision": precision, **settings}


def flag_of(key):
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def prepare_run(train, config):
    """Check --out/--resume before anything slow; returns the RunState to resume, or None.

    Args:
        train: the run's settings.TrainConfig (out, resume, fresh).
        config: resume_config() of this run. A checkpoint made with other values is refused: its
            weights or optimizer state would not fit, or its losses would mean something else. Keys a
            checkpoint does not record (written before they were recorded) are not compared.
    """
    if train.fresh and not train.resume:  # before reading the state: --fresh also starts over a damaged one
        removed = remove_run_files(train.out)
        if removed:
            print(f"--fresh: removed {removed} file(s) of the previous run in {train.out}")
        return None
    ckpt_dir = os.path.join(train.out, CHECKPOINT_DIR)
    if os.path.islink(ckpt_dir):
        raise UserError(f"--out {train.out}: {ckpt_dir} is a symbolic link (to {os.readlink(ckpt_dir)}): a run "
                        "writes and removes checkpoints only in a folder of its own; replace the link by a folder, "
                        "or start over with --fresh (it removes the link, not what it points to)")
    state = load_state(train.out, train.resume)
    if state is not None:
        check_weights(train.out, state, train.resume)
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
    if state is not None:
        raise UserError(f"--out {train.out} already holds a run (checkpoint after epoch {state.epoch}); "
                        "pass --resume to continue it, --fresh to start it over, or choose another --out")
    return None


def remove_run_files(out_dir):
    """Delete what training wrote in out_dir (checkpoint files, TensorBoard event files) and the folders
    left empty by that; anything else there is kept. Returns the number of files removed.

    Nothing outside out_dir is touched: a symbolic link in the checkpoint or log folders (or one of
    those folders itself, e.g. logs -> elsewhere) is removed as a link, never followed.
    """
    removed = 0
    ckpt_dir = os.path.join(out_dir, CHECKPOINT_DIR)
    folders = (ckpt_dir, *(os.path.join(out_dir, d) for d in LOG_DIRS))
    for folder in folders:
        if os.path.islink(folder):
            os.unlink(folder)
            removed += 1
    if os.path.isdir(ckpt_dir):
        for name in os.listdir(ckpt_dir):
            if _RUN_FILE.match(name):
                os.remove(os.path.join(ckpt_dir, name))  # a link is unlinked, not followed
                removed += 1
    for folder in folders:
        if not os.path.isdir(folder):
            continue
        for root, dirs, files in os.walk(folder, topdown=False):  # walk never descends into linked folders
            for name in dirs:
                if os.path.islink(os.path.join(root, name)):
                    os.unlink(os.path.join(root, name))
                    removed += 1
            for name in files:
                if name.startswith("events.out.tfevents."):
                    os.remove(os.path.join(root, name))
                    removed += 1
            if not os.listdir(root):
                os.rmdir(root)
    return removed


@contextlib.contextmanager
def run_lock(out_dir, created=False):
    """Hold the run folder for the block: one training process per --out at a time.

    The lock is an exclusive flock on out_dir/run.lock, whose text names the holder ("pid N on HOST").
    The kernel drops a flock when its process dies however it dies, so a lock left by a killed run is
    never in the way: the next run takes it over and says so (the text left behind names the dead run).

    Args:
        out_dir: the run folder (it exists: check it with outputs.check_writable_folder first).
        created: this run made out_dir: if it is empty at the end (the run stopped before writing
            anything, e.g. on bad data), it is removed again.

    Raises:
        UserError: the folder is in use by another run (named by its pid and host), or cannot be locked.
    """
    path = os.path.join(out_dir, LOCK_FILE)
    fd = _lock_file(out_dir, path)
    try:
        left = os.pread(fd, 256, 0).decode(errors="replace").strip()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    except OSError as e:
        os.close(fd)
        raise UserError(f"--out {out_dir}: cannot write its lock file {path} ({e.strerror or e})") from None
    if left:
        print(f"--out {out_dir}: taking over the lock of a run that ended without releasing it ({left}, "
              "no longer running)")
    try:
        yield
    finally:  # nested: a step that fails skips none of the later ones
        try:
            # removed while still held: a finished run leaves no lock file, and a run that opened the old
            # file meanwhile sees it unlinked once it gets the lock and opens a new one (_lock_file)
            os.remove(path)
        except OSError:
            os.ftruncate(fd, 0)  # cannot remove: emptied instead, which marks a clean end as well
        finally:
            try:
                if created and not os.listdir(out_dir):
                    os.rmdir(out_dir)
            finally:
                os.close(fd)


def _lock_file(out_dir, path):
    """An open descriptor of out_dir's lock file, exclusively flocked, that is still the file at `path`."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise UserError(f"--out {out_dir}: cannot open its lock file {LOCK_FILE} ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "its pid is not written yet"
            os.close(fd)
            raise UserError(f"--out {out_dir} is in use by another run ({holder}; {path} is locked): wait for it "
                            "to end, or choose another --out") from None
        except OSError as e:
            os.close(fd)
            raise UserError(f"--out {out_dir}: cannot lock {path} ({e.strerror or e})") from None
        try:
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed this file as it finished: lock the next one


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
    from sr_keras.exports.savedmodel import export_model
    from sr_keras.train.distribute import set_precision

    path = best_weights_path(out_dir)
    if path is None:
        raise UserError(f"no validation checkpoint in {out_dir} to export (did an epoch complete?)")
    set_precision("float32")
    generator = generator_config.build()
    generator.load_weights(path)
    try:
        export_model(generator, export_dir, generator_config)
    except OSError as e:  # e.g. a full disk: the run's checkpoints are complete, only the export is missing
        raise UserError(f"--export {export_dir}: cannot write the export ({e.strerror or first_line(e)}); the "
                        f"run in {out_dir} is complete: make room and run again with --resume to export it") from None
    state = load_state(out_dir)
    which = "the best model" if state.monitor else "the last epoch's model"
    print(f"exported {which} (epoch {state.best_epoch}) to {export_dir}")
    return generator
