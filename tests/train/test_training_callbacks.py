"""Unit tests of the run plumbing (sr_keras.train.callbacks, runs, loop.fit, cli) on toy models (fast, no data
files)."""
import argparse
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.cli import training_flags
from sr_keras.core.errors import UserError
from sr_keras.train import callbacks, distribute, loop, recipes, runs
from sr_keras.train.settings import RunState, TrainConfig


def toy_model(lr=0.1):
    keras.utils.set_random_seed(0)
    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(keras.optimizers.Adam(lr), loss="mse")
    return model


def toy_data(n=8):
    x = np.random.default_rng(0).normal(size=(n, 2)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


class RecordLR(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.lrs = {}

    def on_epoch_begin(self, epoch, logs=None):
        self.lrs[epoch] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class FakeValPSNR(keras.callbacks.Callback):
    """Puts a scripted val_psnr into the epoch logs (runs before the callbacks that read it)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_psnr"] = self.values[epoch]


def schedule_config(**kw):
    base = dict(lr=0.1, epochs=8, lr_schedule="step", lr_decay_epochs=3, lr_decay_factor=0.1)
    return TrainConfig(track="bicubic_x4", data="samples", out="run", export="model", **{**base, **kw})


def run_config(out, **kw):
    return TrainConfig(track="bicubic_x4", data="samples", out=str(out), export=str(out) + "-export", **kw)


def test_step_schedule_decays_every_n_epochs_and_resumes_on_the_right_value():
    x, y = toy_data()
    rec = RecordLR()
    schedule = callbacks.LRSchedule(callbacks.lr_schedule(schedule_config()))
    toy_model().fit(x, y, epochs=7, verbose=0, callbacks=[schedule, rec])
    assert [round(rec.lrs[e], 8) for e in range(7)] == [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001]
    # a resumed fit starts at initial_epoch and must land on that epoch's rate, not the initial one
    rec = RecordLR()
    toy_model().fit(x, y, initial_epoch=4, epochs=7, verbose=0,
                    callbacks=[callbacks.LRSchedule(callbacks.lr_schedule(schedule_config())), rec])
    assert sorted(rec.lrs) == [4, 5, 6]
    assert rec.lrs[4] == pytest.approx(0.01) and rec.lrs[6] == pytest.approx(0.001)


def test_cosine_schedule_starts_at_lr_and_decays_monotonically():
    f = callbacks.lr_schedule(schedule_config(lr_schedule="cosine", epochs=10))
    values = [f(e) for e in range(10)]
    assert values[0] == pytest.approx(0.1) and values[5] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] > 0


def test_milestones_schedule_multiplies_the_rate_after_each_milestone():
    f = callbacks.lr_schedule(schedule_config(lr_schedule="milestones", lr_milestones=(5, 2), lr_decay_factor=0.5))
    assert [f(e) for e in range(7)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025])
    assert schedule_config(lr_milestones=(5, 2)).lr_milestones == (2, 5)  # sorted once, in the config


def test_early_stopping_fires_after_patience_and_its_state_survives_resume():
    x, y = toy_data()
    psnr = [20.0, 21.0, 22.0, 22.0, 21.5, 21.0, 20.0, 19.0, 18.0, 17.0]
    es = callbacks.ResumableEarlyStopping(patience=2)
    hist = toy_model().fit(x, y, epochs=10, verbose=0, callbacks=[FakeValPSNR(psnr), es])
    assert hist.epoch == [0, 1, 2, 3, 4]  # best at epoch 2; epochs 3 and 4 without improvement -> stop
    # stop after epoch 3, keep the counters, continue: stops on the first resumed epoch, as uninterrupted
    es = callbacks.ResumableEarlyStopping(patience=2)
    toy_model().fit(x, y, epochs=4, verbose=0, callbacks=[FakeValPSNR(psnr), es])
    state = json.loads(json.dumps(es.get_state()))
    assert state["wait"] == 1 and state["best"] == 22.0
    hist = toy_model().fit(x, y, initial_epoch=4, epochs=10, verbose=0,
                           callbacks=[FakeValPSNR(psnr), callbacks.ResumableEarlyStopping(patience=2, state=state)])
    assert hist.epoch == [4]
    # without the state the counters restart and training would run on
    hist = toy_model().fit(x, y, initial_epoch=4, epochs=10, verbose=0,
                           callbacks=[FakeValPSNR(psnr), callbacks.ResumableEarlyStopping(patience=2)])
    assert hist.epoch == [4, 5, 6]


def test_run_checkpoint_keeps_best_and_last_and_state_atomically(tmp_path):
    x, y = toy_data()
    model = toy_model()
    es = callbacks.ResumableEarlyStopping(patience=10)
    ckpt = callbacks.RunCheckpoint(str(tmp_path), model, {"model": "toy"}, stateful={"early_stopping": es})
    model.fit(x, y, epochs=4, verbose=0, callbacks=[FakeValPSNR([1.0, 3.0, 2.0, 2.5]), es, ckpt])
    state = runs.load_state(str(tmp_path))
    assert state.epoch == 4 and state.last == "last-e0004.weights.h5"
    assert state.best == "best-e0002.weights.h5" and state.best_value == 3.0 and state.best_epoch == 2
    assert state.callbacks["early_stopping"]["wait"] == 2
    # only the files checkpoint.json names remain; no temporary files
    assert sorted(os.listdir(tmp_path / "checkpoints")) == sorted(
        ["checkpoint.json", "last-e0004.weights.h5", "best-e0002.weights.h5"])
    assert runs.best_weights_path(str(tmp_path)).endswith("best-e0002.weights.h5")
    # the last checkpoint restores weights and the optimizer's step count into a fresh model
    fresh = toy_model()
    runs.restore(fresh, str(tmp_path), state)
    assert int(fresh.optimizer.iterations) == int(model.optimizer.iterations) == 4
    np.testing.assert_array_equal(fresh.get_weights()[0], model.get_weights()[0])
    # and Adam's moments, not only its step count: after 4 steps they are far from their zero start
    def moments(optimizer):  # {"kernel_momentum": value, ...}; layer names differ between the two models
        kinds = ("kernel_momentum", "kernel_velocity", "bias_momentum", "bias_velocity")
        return {kind: np.asarray(v) for v in optimizer.variables for kind in kinds if v.name.endswith(kind)}

    saved, restored = moments(model.optimizer), moments(fresh.optimizer)
    assert sorted(saved) == ["bias_momentum", "bias_velocity", "kernel_momentum", "kernel_velocity"]
    assert all(np.abs(value).max() > 1e-6 for value in saved.values())
    for name, value in saved.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)


def test_nan_loss_stops_at_once_without_saving(tmp_path):
    x, y = toy_data()
    model = toy_model()
    ckpt = callbacks.RunCheckpoint(str(tmp_path), model, {"model": "toy"})
    guard = callbacks.NonFiniteGuard(str(tmp_path / "checkpoints"), lr=0.1)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[guard, FakeValPSNR([1.0, 2.0]), ckpt])
    before = runs.load_state(str(tmp_path))
    y_bad = y.copy()
    y_bad[5] = np.inf  # second batch of epoch 2
    seen = []
    with pytest.raises(callbacks.NonFiniteLoss, match=r"^loss is Inf at epoch 2, step 2: ") as err:
        model.fit(x, y_bad, initial_epoch=1, epochs=3, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[guard, FakeValPSNR([1.0, 2.0, 3.0]), ckpt,
                             keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))])
    assert "epoch 2, step 2" in str(err.value) and isinstance(err.value, UserError)
    assert seen == [0]  # stopped at the first bad batch; nothing after it ran
    assert runs.load_state(str(tmp_path)) == before  # no checkpoint from the NaN epoch
    restored = toy_model()
    runs.restore(restored, str(tmp_path), before)
    assert all(np.isfinite(w).all() for w in restored.get_weights())


class BreakAfterLastStep(keras.callbacks.Callback):
    """What a too-large update does to the last step of an epoch: its loss (computed before the update)
    is finite, the weights it leaves are not."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            kernel = self.model.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


class ScriptedLogs(keras.callbacks.Callback):
    """Puts scripted values into one epoch's logs (the validation results Keras would report)."""

    def __init__(self, epoch, values):
        super().__init__()
        self.epoch, self.values = epoch, values

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            logs.update(self.values)


@pytest.mark.parametrize("case", ["val_loss NaN", "val_psnr NaN", "weight NaN"])
def test_non_finite_epoch_end_stops_before_the_checkpoint_is_saved(tmp_path, case):
    x, y = toy_data()
    model = toy_model()
    guard = callbacks.NonFiniteGuard(str(tmp_path / "checkpoints"), lr=0.1)
    ckpt = callbacks.RunCheckpoint(str(tmp_path), model, {"model": "toy"})
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[guard, FakeValPSNR([1.0]), ckpt])
    before = runs.load_state(str(tmp_path))
    breaker = {"val_loss NaN": ScriptedLogs(1, {"val_loss": math.nan}),
               "val_psnr NaN": ScriptedLogs(1, {"val_psnr": math.nan}),
               "weight NaN": BreakAfterLastStep(1, 1)}[case]
    seen = []
    with pytest.raises(callbacks.NonFiniteLoss, match="after epoch 2") as err:
        # the guard first, as in loop.fit: it must stop the epoch before RunCheckpoint saves it
        model.fit(x, y, initial_epoch=1, epochs=3, batch_size=4, verbose=0,
                  callbacks=[breaker, guard, FakeValPSNR([1.0, 2.0, 3.0]), ckpt,
                             keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))])
    assert case.split()[0] in str(err.value) and "nothing from this epoch was saved" in str(err.value)
    assert seen == [] and runs.load_state(str(tmp_path)) == before


def test_infinite_validation_psnr_is_legitimate_and_does_not_stop(tmp_path):
    x, y = toy_data()
    model = toy_model()
    guard = callbacks.NonFiniteGuard(str(tmp_path / "checkpoints"), lr=0.1)
    hist = model.fit(x, y, epochs=2, verbose=0, callbacks=[ScriptedLogs(0, {"val_psnr": math.inf}), guard])
    assert hist.epoch == [0, 1]


def test_checkpoint_json_is_replaced_by_a_rename_of_a_complete_file(tmp_path, monkeypatch):
    old = RunState(epoch=1, last="last-e0001.weights.h5", config={"model": "toy"})
    runs.write_state(str(tmp_path), old)
    path = tmp_path / runs.STATE_FILE
    renames, real_replace = [], os.replace

    def recording(src, dst):  # what both names hold the moment the new state takes the old one's place
        with open(dst) as before, open(src) as after:
            renames.append((os.path.dirname(src), os.path.basename(dst), before.read(), after.read()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    new = RunState(epoch=2, last="last-e0002.weights.h5", config={"model": "toy"})
    runs.write_state(str(tmp_path), new)
    # the new state was complete under another name in the same folder while checkpoint.json still held
    # the old one: a kill at any moment leaves one or the other, never a part
    assert renames == [(str(tmp_path), runs.STATE_FILE, old.to_json(), new.to_json())]
    assert path.read_text() == new.to_json() and os.listdir(tmp_path) == [runs.STATE_FILE]


def test_run_checkpoint_removes_temporary_files_of_killed_runs_only(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    stale = [".tmp-999999-last-e0003.weights.h5", "checkpoint.json.tmp-999999"]
    for name in (*stale, "notes.txt"):
        (ckpt_dir / name).write_text("x")
    x, y = toy_data()
    model = toy_model()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[FakeValPSNR([1.0]), callbacks.RunCheckpoint(str(tmp_path), model, {"model": "toy"})])
    assert sorted(os.listdir(ckpt_dir)) == ["best-e0001.weights.h5", "checkpoint.json", "last-e0001.weights.h5",
                                            "notes.txt"]


def test_bad_numbers_in_flags_say_what_was_expected(capsys):
    parser = training_flags.add_common_args(argparse.ArgumentParser())
    for argv, expected in ((["--steps-per-epoch", "two"], "expected a positive integer, got 'two'"),
                           (["--steps-per-epoch", "0"], "expected a positive integer, got '0'"),
                           (["--lr", "nan"], "expected a positive number, got 'nan'"),
                           (["--val-images", "-1"], "expected an integer >= 0, got '-1'"),
                           (["--augment-p", "high"], "expected a probability in [0, 1], got 'high'")):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert expected in capsys.readouterr().err


def test_fresh_removes_only_what_training_wrote_and_resume_takes_precedence(tmp_path):
    run = tmp_path / "run"
    x, y = toy_data()
    model = toy_model()
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[FakeValPSNR([1.0, 2.0]), callbacks.RunCheckpoint(str(run), model, {"model": "toy"}),
                         keras.callbacks.TensorBoard(str(run / "logs"), write_graph=False)])
    (run / "checkpoints" / ".tmp-999999-last-e0003.weights.h5").write_text("x")
    (run / "notes.txt").write_text("keep")
    (run / "logs" / "mine.txt").write_text("keep")
    (run / "checkpoints" / "other.h5").write_text("keep")
    resume = run_config(run, resume=True, fresh=True)
    assert runs.prepare_run(resume, {"model": "toy"}).epoch == 2
    assert runs.load_state(str(run)).epoch == 2
    fresh = run_config(run, fresh=True)
    assert runs.prepare_run(fresh, {"model": "toy"}) is None
    left = sorted(os.path.relpath(os.path.join(root, f), run) for root, _, files in os.walk(run) for f in files)
    assert left == [os.path.join("checkpoints", "other.h5"), os.path.join("logs", "mine.txt"), "notes.txt"]
    assert runs.prepare_run(run_config(run), {"model": "toy"}) is None
    assert runs.prepare_run(fresh, {"model": "toy"}) is None  # nothing left to remove: no error


def test_prepare_run_refuses_resume_without_checkpoint_and_overwriting_a_run(tmp_path):
    args = run_config(tmp_path / "run", resume=True)
    with pytest.raises(UserError, match="^--resume: no checkpoint in "):
        runs.prepare_run(args, {"model": "toy"})
    x, y = toy_data()
    model = toy_model()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[FakeValPSNR([1.0]), callbacks.RunCheckpoint(args.out, model, {"model": "toy", "filters": 8})])
    assert runs.prepare_run(args, {"model": "toy", "filters": 8}).epoch == 1
    with pytest.raises(UserError, match=r"other settings \(--filters: checkpoint 8, now 16\)"):
        runs.prepare_run(args, {"model": "toy", "filters": 16})
    args = run_config(tmp_path / "run")
    with pytest.raises(UserError, match=r"already holds a run \(checkpoint after epoch 1\); pass --resume .* --fresh"):
        runs.prepare_run(args, {"model": "toy", "filters": 8})


def test_explicit_flags_override_the_preset_and_defaults_fill_the_rest():
    presets = {"small": dict(lr=1e-3, filters=32, batch_norm=False, epochs=5)}
    parser = training_flags.add_common_args(argparse.ArgumentParser(), presets=presets)
    args = training_flags.parse_args(parser, ["--preset", "small", "--lr", "0.5", "--batch-norm"], presets)
    assert (args.lr, args.filters, args.batch_norm, args.epochs) == (0.5, 32, True, 5)
    assert args.batch_size == recipes.REPORT_DEFAULTS["batch_size"]
    plain = training_flags.parse_args(parser, [], presets)
    assert (plain.lr, plain.filters, plain.batch_norm) == (1e-4, 64, True)
    srgan = training_flags.add_common_args(argparse.ArgumentParser(), defaults={"lr_decay_epochs": 150, "patience": 50})
    assert training_flags.parse_args(srgan, []).patience == 50
    assert math.isclose(training_flags.resolve_paths(plain, "srresnet").lr, 1e-4)
    assert plain.out == os.path.join("runs", "srresnet_bicubic_x4")
    assert plain.export == os.path.join("saved_models", "srresnet_bicubic_x4")


# ------------------------------------------------------------------------------ loop.fit wiring

def toy_trainer():
    """A compiled Trainer whose validation "psnr" is minus the MSE (a value fit's callbacks monitor)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((2,))
    model = distribute.Trainer(inp, keras.layers.Dense(1)(inp))
    neg_mse = keras.metrics.MeanMetricWrapper(lambda y, p: -keras.ops.mean(keras.ops.square(y - p), axis=-1),
                                              name="psnr")
    model.compile(keras.optimizers.Adam(0.05), loss="mse", metrics=[neg_mse])
    return model


def fit_toy(out, epochs, resume=False, val_ds=None):
    """loop.fit on the toy trainer, as the scripts call it: prepare_run, restore, fit. The validation
    targets are minus the training targets, so validation gets worse every epoch after the first."""
    x, y = toy_data()
    train = run_config(out, epochs=epochs, steps_per_epoch=2, patience=5, lr=0.05, panel_images=0, resume=resume)
    state = runs.prepare_run(train, {"model": "toy"})
    trainer = toy_trainer()
    if state:
        runs.restore(trainer, train.out, state)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()  # one pass per epoch
    val_ds = val_ds or tf.data.Dataset.from_tensor_slices((x, -y)).batch(4)
    history = loop.fit(train, trainer, trainer, train_ds, val_ds, 4, {"model": "toy"}, state=state)
    return history, runs.load_state(train.out)


def test_fit_resumed_at_an_epoch_boundary_hands_over_every_state(tmp_path):
    history, straight = fit_toy(tmp_path / "straight", 3)
    psnr = history.history["val_psnr"]
    assert psnr[0] > psnr[1] > psnr[2]  # the best is epoch 1; early stopping waits 2 epochs
    fit_toy(tmp_path / "split", 1)
    _, resumed = fit_toy(tmp_path / "split", 3, resume=True)
    assert (resumed.best, resumed.best_epoch, resumed.best_value) == ("best-e0001.weights.h5", 1, psnr[0])
    assert resumed.callbacks == straight.callbacks and resumed.callbacks["early_stopping"]["wait"] == 2
    assert resumed.callbacks["early_stopping"]["best"] == pytest.approx(psnr[0])
    for key, value in straight.logs.items():  # same weights, Adam state and learning rate: same epoch 3
        assert resumed.logs[key] == pytest.approx(value, rel=1e-6), key


def test_fit_stops_a_nan_validation_before_its_checkpoint_is_written(tmp_path):
    x, y = toy_data()
    passes = []

    def validation():  # finite in epoch 1's validation, NaN in epoch 2's
        passes.append(1)
        yield x, (y if len(passes) == 1 else np.full_like(y, np.nan))

    val_ds = tf.data.Dataset.from_generator(validation, output_signature=(
        tf.TensorSpec((8, 2), tf.float32), tf.TensorSpec((8, 1), tf.float32)))
    with pytest.raises(callbacks.NonFiniteLoss, match=r"^val_loss is NaN after epoch 2 \(validation\)"):
        fit_toy(tmp_path, 3, val_ds=val_ds)
    assert runs.load_state(str(tmp_path)).epoch == 1  # epoch 2 was never checkpointed
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["best-e0001.weights.h5", "checkpoint.json",
                                                            "last-e0001.weights.h5"]


def test_select_last_exports_the_last_epoch_and_does_not_stop_early(tmp_path):
    x, y = toy_data()
    train = run_config(tmp_path, epochs=4, steps_per_epoch=2, patience=1, lr=0.05, panel_images=0, select="last")
    trainer = toy_trainer()
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4).repeat()
    val_ds = tf.data.Dataset.from_tensor_slices((x, -y)).batch(4)  # worse every epoch: patience 1 would stop
    history = loop.fit(train, trainer, trainer, train_ds, val_ds, 4, {"model": "toy"})
    assert history.epoch == [0, 1, 2, 3]
    state = runs.load_state(str(tmp_path))
    assert (state.best, state.best_epoch, state.monitor, state.callbacks) == ("best-e0004.weights.h5", 4, None, {})


def test_checkpoint_weights_are_written_under_a_temporary_name_then_renamed(tmp_path, monkeypatch):
    written = []
    real_save = keras.Model.save_weights

    def recording(self, path, *args, **kwargs):
        written.append(os.path.basename(path))
        real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", recording)
    x, y = toy_data()
    model = toy_model()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[FakeValPSNR([1.0]), callbacks.RunCheckpoint(str(tmp_path), model, {"model": "toy"})])
    pid = os.getpid()
    assert written == [f".tmp-{pid}-best-e0001.weights.h5", f".tmp-{pid}-last-e0001.weights.h5"]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["best-e0001.weights.h5", "checkpoint.json",
                                                            "last-e0001.weights.h5"]
