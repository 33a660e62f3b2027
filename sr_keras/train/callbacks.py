"""The callbacks of a training run: learning-rate schedule, resumable early stopping, the NaN/Inf
guard, validation on the weight average (--ema), the TensorBoard image panel and the run checkpoint
(sr_keras.train.runs holds the run folder)."""
import contextlib
import math
import os
import time

import keras
import numpy as np

from sr_keras.core.errors import UserError, first_line
from sr_keras.data.imresize import upscale_bicubic
from sr_keras.evaluation.metrics import float_to_uint8
from sr_keras.train import runs
from sr_keras.train.settings import RunState

PANEL_MAX_HR = 192  # panel crop side (HR pixels): big enough to judge detail, small enough for 300 epochs


class NonFiniteLoss(UserError):
    """The loss became NaN or Inf; training stopped without saving anything from that epoch."""


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is intact."""


def lr_schedule(train):
    """Epoch -> learning rate of a run (a settings.TrainConfig). A pure function of the epoch, so a
    resumed fit (initial_epoch) lands on the right value without extra state."""
    base, total = train.lr, train.epochs
    if train.lr_schedule == "cosine":
        return lambda epoch: base * 0.5 * (1.0 + math.cos(math.pi * epoch / total))
    factor = train.lr_decay_factor
    if train.lr_schedule == "milestones":
        milestones = train.lr_milestones
        return lambda epoch: base * factor ** sum(epoch >= m for m in milestones)
    every = train.lr_decay_epochs
    return lambda epoch: base * factor ** (epoch // every)


class LRSchedule(keras.callbacks.LearningRateScheduler):
    """Keras' LearningRateScheduler over an epoch -> rate function (TensorBoard logs the rate). A model
    with several optimizers (SRGAN's `optimizers`: G's and D's) has all of them set: the report decays
    both networks' rates together."""

    def __init__(self, schedule, verbose=0):
        super().__init__(lambda epoch, lr: schedule(epoch), verbose=verbose)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        for optimizer in getattr(self.model, "optimizers", None) or ():
            if optimizer is not self.model.optimizer:
                optimizer.learning_rate = rate


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

    def __init__(self, checkpoint_dir, lr):
        super().__init__()
        self.checkpoint_dir, self.lr = checkpoint_dir, lr
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
        return "loss" in key

    def _stop(self, what):
        raise NonFiniteLoss(f"{what}: training stopped and nothing from this epoch was saved (earlier "
                            f"checkpoints in {self.checkpoint_dir} are kept); lower --lr (it was {self.lr:g}) "
                            "or check the data")


class AverageValidation(keras.callbacks.Callback):
    """Validates on the weight average (--ema): it is what the run selects and exports, so validation
    PSNR, early stopping and the selected epoch judge that network. The trained weights are put back
    after validation, so training continues from them.

    Args:
        average: the sr_keras.train.ema.WeightAverage of the generator's optimizer.
    """

    def __init__(self, average):
        super().__init__()
        self.average, self.trained = average, None

    def on_test_begin(self, logs=None):
        self.trained = self.average.swap_in()

    def on_test_end(self, logs=None):
        self.average.swap_out(self.trained)
        self.trained = None


def _applied(average):
    """average.applied(), or no change without an average."""
    return average.applied() if average is not None else contextlib.nullcontext()


class ImagePanel(keras.callbacks.Callback):
    """Each epoch, logs `bicubic-upscaled LR | SR | HR` for a few fixed validation crops to TensorBoard
    (SR from the weight average with `average`, an sr_keras.train.ema.WeightAverage)."""

    def __init__(self, log_dir, generator, pairs, scale, average=None):
        super().__init__()
        self.log_dir, self.generator, self.scale, self.average = log_dir, generator, scale, average
        self.pairs = [_panel_crop(lr, hr, scale) for lr, hr in pairs]
        self.writer = None

    def on_train_begin(self, logs=None):
        import tensorflow as tf  # TensorBoard's image summaries: the training scripts add this panel on TF only

        self.writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        with self.writer.as_default(), _applied(self.average):
            for i, (lr, bicubic, hr) in enumerate(self.pairs):
                sr = float_to_uint8(keras.ops.convert_to_numpy(
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
    return lr, upscale_bicubic(float_to_uint8(lr), scale), float_to_uint8(hr)


class RunCheckpoint(keras.callbacks.Callback):
    """After every epoch: the selected generator's weights (when the monitored value improved, or every
    epoch with monitor=None), the trainer's weights with optimizer state, then checkpoint.json (a
    settings.RunState) naming them. The weights files the previous checkpoint.json named and the new one does
    not are removed only after it is replaced, so a kill at any moment leaves the last complete epoch. No
    other file in the folder is removed, except temporary files a killed save left (runs.stale_temp_files).

    Args:
        out_dir: the run folder.
        generator: the network whose weights are exported.
        config: the run's resume config (RunState.config).
        stateful: {name: callback with get_state()} saved in RunState.callbacks.
        monitor: epoch log to maximise, or None to select the last epoch.
        state: the RunState resumed from, or None.
        write: False on non-chief workers of a multi-worker run (they write nothing).
        average: an sr_keras.train.ema.WeightAverage: the selected generator's weights are the average, the
            trainer's the trained ones (with the average among its optimizer's variables); or None.
    """

    def __init__(self, out_dir, generator, config, stateful=None, monitor="val_psnr", state=None, write=True,
                 average=None):
        super().__init__()
        self.dir = os.path.join(out_dir, runs.CHECKPOINT_DIR)
        self.generator, self.config, self.monitor, self.write = generator, config, monitor, write
        self.average = average
        self.stateful = stateful or {}
        # a resumed run keeps the best so far only when it was chosen on the same log
        same = state is not None and state.monitor == monitor
        self.best_file = state.best if same else None
        self.best = state.best_value if same else None
        self.best_epoch = state.best_epoch if same else None
        self.saved_epoch = state.epoch if state is not None else None
        # the weights files of this run that checkpoint.json names: the only ones the cleanup removes
        self.named = {state.last, state.best} - {None} if state is not None else set()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor is None:
            improved, current = True, None
        else:
            current = logs.get(self.monitor)
            improved = current is not None and math.isfinite(current) and (self.best is None or current > self.best)
        if not self.write:
            return
        try:
            last_file = self._save(epoch, improved, current, logs)
        except OSError as e:  # h5py's write errors are OSErrors too
            kept = (f"epoch {self.saved_epoch}'s checkpoint is kept: make room, then continue with --resume"
                    if self.saved_epoch else "no epoch was saved: make room, then start again")
            raise CheckpointWriteError(f"cannot save the checkpoint of epoch {epoch + 1} in {self.dir} "
                                       f"({e.strerror or first_line(e)}): training stopped; {kept}") from None
        # Only what this run wrote and its previous checkpoint.json named: anything else in the folder (a
        # user's backup, a file of another run) is not this run's to delete.
        keep = {last_file, self.best_file} - {None}
        for name in self.named - keep:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(self.dir, name))
        self.named = keep
        # one trainer per run folder: another pid's temporary file is a leftover of a killed run
        for name in runs.stale_temp_files(self.dir):
            os.remove(os.path.join(self.dir, name))

    def _save(self, epoch, improved, current, logs):
        """Write the epoch's weights, then checkpoint.json naming them; returns the trainer's file name.
        A failure leaves checkpoint.json naming the previous epoch's complete files (atomic writes)."""
        os.makedirs(self.dir, exist_ok=True)
        tag = f"e{epoch + 1:04d}"
        best = (self.best_file, self.best, self.best_epoch)
        last_file = f"last-{tag}.weights.h5"
        written = []
        try:
            if improved:
                best = (f"best-{tag}.weights.h5", None if current is None else float(current), epoch + 1)
                with _applied(self.average):
                    runs.atomic_save_weights(self.generator, os.path.join(self.dir, best[0]))
                written.append(best[0])
            runs.atomic_save_weights(self.model, os.path.join(self.dir, last_file))
            written.append(last_file)
            self._write_state(epoch, last_file, best, logs)
        except OSError:
            for name in written:  # files checkpoint.json does not name: the previous epoch's state stays whole
                os.remove(os.path.join(self.dir, name))
            raise
        # only once checkpoint.json names them: the best so far is what is on disk
        self.best_file, self.best, self.best_epoch = best
        self.saved_epoch = epoch + 1
        return last_file

    def _write_state(self, epoch, last_file, best, logs):
        state = RunState(epoch=epoch + 1, last=last_file, best=best[0], best_value=best[1], best_epoch=best[2],
                         monitor=self.monitor, config=self.config,
                         callbacks={name: cb.get_state() for name, cb in self.stateful.items()},
                         logs={k: float(v) for k, v in logs.items()}, time=time.time())
        runs.write_state(self.dir, state)
