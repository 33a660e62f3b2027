"""Hostile run folders and outputs of the training scripts: checked before anything slow, one line each.

A run folder is held by one process (run.lock), a damaged state or weights file is named with --fresh as
the way out, --fresh deletes nothing outside the run folder, a full disk during a checkpoint and running
out of memory are one line each; numeric flags and training images are refused before epoch 1.
"""
import errno
import json
import os
import signal
import struct
import subprocess
import sys
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import export as export_cli
from sr_keras.cli import interpolate, train_srgan, train_srresnet
from sr_keras.core.errors import UserError
from sr_keras.data import loaders
from sr_keras.train import callbacks, loop, runs
from sr_keras.train.settings import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# a child that holds a run folder's lock until its stdin closes (or it is killed)
HOLDER = ("import sys\nfrom sr_keras.train import runs\nwith runs.run_lock(sys.argv[1]):\n"
          "    print('locked', flush=True)\n    sys.stdin.read()\n")


def toy_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(keras.optimizers.Adam(0.1), loss="mse")
    return model


class FakeValPSNR(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["val_psnr"] = float(epoch)


def toy_run(out, epochs=1, checkpoint=None, initial_epoch=0):
    """A run folder written by RunCheckpoint on a toy model (state, best and last weights, logs)."""
    x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    checkpoint = checkpoint or callbacks.RunCheckpoint(str(out), toy_model(), {"model": "toy"})
    model = checkpoint.generator
    model.fit(x, x.sum(axis=1, keepdims=True), epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              callbacks=[FakeValPSNR(), checkpoint, keras.callbacks.TensorBoard(str(out / "logs"), write_graph=False)])
    return runs.load_state(str(out))


def run_config(out, **kw):
    return TrainConfig(track="bicubic_x4", data="samples", out=str(out), export=str(out) + "-export", **kw)


def start_holder(out):
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"  # blocks until the child holds the lock
    return proc


def tiny_argv(tmp_path, *extra):
    return ["--track", "bicubic_x4", "--data", "samples", "--out", str(tmp_path / "run"), "--export",
            str(tmp_path / "model"), "--steps-per-epoch", "1", "--batch-size", "2", "--hr-crop", "48",
            "--num-blocks", "1", "--filters", "8", "--epochs", "1", *extra]


def one_line_error(capsys, exit_info):
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert exit_info.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), captured.err
    assert "Epoch 1/" not in captured.out
    return err[0]


# ------------------------------------------------------------------------------ the lock

def test_a_folder_held_by_another_process_is_refused_naming_its_pid(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    proc = start_holder(out)
    try:
        with pytest.raises(UserError, match=rf"^--out {out} is in use by another run \(pid {proc.pid} on "):
            with runs.run_lock(str(out)):
                pass
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    assert not (out / runs.LOCK_FILE).exists()  # released cleanly: a finished run leaves no lock file


def test_a_lock_left_by_a_killed_run_is_taken_over_saying_so(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    proc = start_holder(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with runs.run_lock(str(out)):
        assert f"pid {os.getpid()} on " in (out / runs.LOCK_FILE).read_text()
    said = capsys.readouterr().out
    assert f"taking over the lock of a run that ended without releasing it (pid {proc.pid} on " in said
    with runs.run_lock(str(out)):  # released cleanly: the next run says nothing
        pass
    assert capsys.readouterr().out == ""


def test_training_on_a_folder_in_use_stops_before_any_work(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    proc = start_holder(tmp_path / "run")
    try:
        with pytest.raises(SystemExit) as exit_info:
            train_srresnet.main(tiny_argv(tmp_path, "--resume"))
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert "is in use by another run" in one_line_error(capsys, exit_info)


def test_a_run_folder_made_for_a_run_that_wrote_nothing_is_removed_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with runs.run_lock(str(out), created=True):
        pass
    assert not out.exists()
    out.mkdir()
    with runs.run_lock(str(out), created=True):
        (out / "checkpoints").mkdir()
    assert sorted(os.listdir(out)) == ["checkpoints"]  # kept: the run wrote something; the lock file is gone


def test_a_lock_file_removed_by_a_finishing_run_is_never_the_one_taken(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    path = str(out / runs.LOCK_FILE)
    real_open, raced = os.open, []

    def open_then_holder_finishes(name, flags, mode=0o777, **kwargs):
        fd = real_open(name, flags, mode, **kwargs)
        if name == path and not raced:  # the holder removes the file between this open and the flock
            raced.append(fd)
            os.remove(path)
        return fd

    monkeypatch.setattr(runs.os, "open", open_then_holder_finishes)
    with runs.run_lock(str(out)):
        held = os.stat(path).st_ino
        # a run that locked the unlinked file would not exclude one that opens the new file
        with pytest.raises(UserError, match="is in use by another run"):
            with runs.run_lock(str(out)):
                pass
        assert os.stat(path).st_ino == held
    assert len(raced) == 1 and not os.path.exists(path)


def test_non_chief_workers_share_the_chiefs_folder_without_its_lock(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    cluster = {"worker": ["a:1", "b:2"]}
    with runs.run_lock(str(out)):  # the chief holds the folder (flock: a second descriptor conflicts)
        held = (out / runs.LOCK_FILE).read_text()
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
        with loop.holding_run_folder(run_config(out, strategy="multiworker")):
            assert (out / runs.LOCK_FILE).read_text() == held  # the worker neither waits for nor writes it
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
        with pytest.raises(UserError, match="is in use by another run"):  # a second chief is refused
            with loop.holding_run_folder(run_config(out, strategy="multiworker")):
                pass
    assert not (out / runs.LOCK_FILE).exists()  # the worker left the chief's release intact
    assert loop.is_chief_worker("default", "")
    assert loop.is_chief_worker("multiworker", json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                                             "index": 0}}))
    assert not loop.is_chief_worker("multiworker", json.dumps({"cluster": cluster,
                                                                   "task": {"type": "worker", "index": 1}}))
    with_chief = {**cluster, "chief": ["c:3"]}
    assert not loop.is_chief_worker("multiworker", json.dumps({"cluster": with_chief,
                                                                   "task": {"type": "worker", "index": 0}}))



@pytest.mark.parametrize("tf_config", ["{not json", "[1, 2]", '{"task": {"type": "worker", "index": "x"}}'])
def test_a_malformed_tf_config_is_one_line_naming_it_before_any_folder_is_made(tmp_path, capsys, monkeypatch,
                                                                             tf_config):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(tiny_argv(tmp_path, "--strategy", "multiworker"))
    assert one_line_error(capsys, exit_info).startswith("error: TF_CONFIG is not a cluster description for "
                                                        "--strategy multiworker (")
    assert os.listdir(tmp_path) == []


def test_a_refused_run_leaves_no_export_parent_folder_behind(tmp_path, capsys):
    argv = tiny_argv(tmp_path, "--resume")  # nothing to resume: refused after the outputs were checked
    argv[argv.index("--export") + 1] = str(tmp_path / "exports" / "x4" / "model")
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(argv)
    assert "--resume: no checkpoint in" in one_line_error(capsys, exit_info)
    assert os.listdir(tmp_path) == []  # neither exports/x4 nor the run folder made for the check


@pytest.mark.parametrize("created", [True, False])
def test_the_lock_is_released_even_when_removing_and_emptying_its_file_fail(tmp_path, monkeypatch, created):
    out = tmp_path / "run"
    out.mkdir()

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output error"):
        with runs.run_lock(str(out), created=created):
            monkeypatch.setattr(os, "remove", broken)
            monkeypatch.setattr(os, "ftruncate", broken)
    monkeypatch.undo()
    with runs.run_lock(str(out)):  # the descriptor was closed: the lock can be taken again at once
        pass
    assert os.listdir(out) == []  # and this clean end removed the file the failed one could not


# ------------------------------------------------------------------------------ damaged run folders

def truncate(path, keep):
    with open(path, "rb") as f:
        head = f.read(keep)
    with open(path, "wb") as f:
        f.write(head)


def edit_state(path, change):
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


DAMAGE = {
    "state cut to 20 bytes": (lambda run, s: truncate(run / "checkpoints" / "checkpoint.json", 20),
                              "checkpoint.json is damaged (not valid JSON, e.g. cut short"),
    "state not JSON": (lambda run, s: (run / "checkpoints" / "checkpoint.json").write_bytes(b"\xff\x00garbage"),
                       "checkpoint.json is damaged ("),
    "state without config": (lambda run, s: edit_state(run / "checkpoints" / "checkpoint.json",
                                                       lambda v: v.pop("config")),
                             "checkpoint.json is damaged (no 'config' key)"),
    "best_value not a number": (lambda run, s: edit_state(run / "checkpoints" / "checkpoint.json",
                                                          lambda v: v.update(best_value="x")),
                                "checkpoint.json is damaged ('best_value' has the wrong type. Received: "
                                "best_value='x')"),
    "best_epoch a float": (lambda run, s: edit_state(run / "checkpoints" / "checkpoint.json",
                                                     lambda v: v.update(best_epoch=1.5)),
                           "checkpoint.json is damaged ('best_epoch' has the wrong type"),
    "time a boolean": (lambda run, s: edit_state(run / "checkpoints" / "checkpoint.json",
                                                 lambda v: v.update(time=True)),
                       "checkpoint.json is damaged ('time' has the wrong type"),
    "state with a list": (lambda run, s: (run / "checkpoints" / "checkpoint.json").write_text("[1, 2]"),
                          "checkpoint.json is damaged (not a JSON object"),
    "last weights missing": (lambda run, s: os.remove(run / "checkpoints" / s.last),
                             "checkpoint.json is damaged (it names last-e0001.weights.h5, which is missing)"),
    "best weights cut short": (lambda run, s: truncate(run / "checkpoints" / s.best, 3000),
                               "best-e0001.weights.h5 is damaged (not a complete weights file"),
    # a name that leads out of checkpoints/: restored, then deleted by the epoch-end cleanup, if trusted
    "last names a file outside": (lambda run, s: edit_state(run / "checkpoints" / "checkpoint.json",
                                                            lambda v: v.update(last="../../victim.weights.h5")),
                                  "checkpoint.json is damaged ('last' is not a last-eNNNN.weights.h5 file name. "
                                  "Received: '../../victim.weights.h5')"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_run_is_named_with_fresh_as_the_way_out_and_fresh_starts_it_over(tmp_path, damage):
    run = tmp_path / "run"
    state = toy_run(run)
    spoil, named = DAMAGE[damage]
    spoil(run, state)
    with pytest.raises(runs.DamagedRun, match="start the run over with --fresh instead of --resume") as resumed:
        runs.prepare_run(run_config(run, resume=True), {"model": "toy"})
    assert named in str(resumed.value) and "\n" not in str(resumed.value)
    with pytest.raises(runs.DamagedRun, match=r"start the run over with --fresh \(it removes") as plain:
        runs.prepare_run(run_config(run), {"model": "toy"})
    assert named in str(plain.value)
    assert runs.prepare_run(run_config(run, fresh=True), {"model": "toy"}) is None
    assert not (run / "checkpoints").exists()  # every file training wrote is gone, the rest was nothing
    assert runs.prepare_run(run_config(run), {"model": "toy"}) is None  # and a plain start now works


def test_an_intact_run_passes_the_weights_check(tmp_path):
    run = tmp_path / "run"
    toy_run(run, epochs=2)
    assert runs.prepare_run(run_config(run, resume=True), {"model": "toy"}).epoch == 2


def test_fresh_unlinks_symlinks_and_deletes_nothing_outside_the_run_folder(tmp_path):
    run = tmp_path / "run"
    toy_run(run)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "train").mkdir(parents=True)
    precious = [elsewhere / "train" / "events.out.tfevents.1.host", elsewhere / "last-e0001.weights.h5",
                elsewhere / "events.out.tfevents.2.host"]
    for path in precious:
        path.write_text("not the run's")
    os.rename(run / "logs", tmp_path / "old-logs")
    os.symlink(elsewhere, run / "logs")  # logs -> a folder outside the run
    (run / "logs-workers").mkdir()
    os.symlink(elsewhere / "train", run / "logs-workers" / "7")  # a linked folder inside a log folder
    os.symlink(elsewhere / "last-e0001.weights.h5", run / "checkpoints" / "last-e0009.weights.h5")
    runs.prepare_run(run_config(run, fresh=True), {"model": "toy"})
    assert all(path.read_text() == "not the run's" for path in precious)
    assert sorted(os.listdir(run)) == []  # the links are gone, not followed
    assert sorted(os.listdir(elsewhere)) == ["events.out.tfevents.2.host", "last-e0001.weights.h5", "train"]


def test_the_epoch_end_cleanup_removes_only_the_files_this_run_wrote(tmp_path):
    run = tmp_path / "run"
    first = toy_run(run)
    ckpt = run / "checkpoints"
    planted = {"keep-backup.weights.h5": "a user's backup", "best-e0007.weights.h5": "copied in by hand",
               "last-e0001.weights.h5.bak": "another backup"}
    for name, text in planted.items():
        (ckpt / name).write_text(text)
    state = runs.prepare_run(run_config(run, resume=True), {"model": "toy"})
    checkpoint = callbacks.RunCheckpoint(str(run), toy_model(), {"model": "toy"}, state=state)
    last = toy_run(run, epochs=3, checkpoint=checkpoint, initial_epoch=1)
    assert (first.last, first.best) == ("last-e0001.weights.h5", "best-e0001.weights.h5")
    assert (last.last, last.best) == ("last-e0003.weights.h5", "best-e0003.weights.h5")
    # epoch 1's and epoch 2's files, which this run wrote and its state named, are gone; nothing else is
    assert sorted(os.listdir(ckpt)) == sorted(["checkpoint.json", "last-e0003.weights.h5", "best-e0003.weights.h5",
                                               *planted])
    assert all((ckpt / name).read_text() == text for name, text in planted.items())


def test_a_linked_checkpoint_folder_is_refused_and_fresh_removes_only_the_link(tmp_path):
    other = tmp_path / "other"
    toy_run(other)  # another run, whose checkpoints/ the link points to
    before = {name: (other / "checkpoints" / name).read_bytes() for name in os.listdir(other / "checkpoints")}
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(other / "checkpoints", run / "checkpoints")
    for resume in (False, True):
        with pytest.raises(UserError, match=rf"^--out {run}: {run / 'checkpoints'} is a symbolic link \(to "):
            runs.prepare_run(run_config(run, resume=resume), {"model": "toy"})
    assert runs.prepare_run(run_config(run, fresh=True), {"model": "toy"}) is None
    assert os.listdir(run) == []
    assert {name: (other / "checkpoints" / name).read_bytes() for name in os.listdir(other / "checkpoints")} == before


# ------------------------------------------------------------------------------ full disk, out of memory

def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    run = tmp_path / "run"
    checkpoint = callbacks.RunCheckpoint(str(run), toy_model(), {"model": "toy"})
    toy_run(run, epochs=1, checkpoint=checkpoint)
    before = sorted(os.listdir(run / "checkpoints"))
    state_before = (run / "checkpoints" / "checkpoint.json").read_text()
    calls = []

    def full(model, path):  # the best file gets written, then the disk is full for the trainer's
        calls.append(os.path.basename(path))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(model, path)

    real = runs.atomic_save_weights
    monkeypatch.setattr(runs, "atomic_save_weights", full)
    with pytest.raises(callbacks.CheckpointWriteError) as failed:
        toy_run(run, epochs=2, checkpoint=checkpoint, initial_epoch=1)
    assert calls == ["best-e0002.weights.h5", "last-e0002.weights.h5"]  # epoch 2 improved: both were due
    assert str(failed.value) == (f"cannot save the checkpoint of epoch 2 in {run / 'checkpoints'} (No space left "
                                 "on device): training stopped; epoch 1's checkpoint is kept: make room, then "
                                 "continue with --resume")
    assert sorted(os.listdir(run / "checkpoints")) == before  # the half-saved epoch's file was removed
    assert (run / "checkpoints" / "checkpoint.json").read_text() == state_before
    assert runs.prepare_run(run_config(run, resume=True), {"model": "toy"}).epoch == 1


def test_a_disk_too_full_for_the_weights_is_refused_before_writing(tmp_path, monkeypatch):
    model = toy_model()
    need = runs.weights_bytes(model)
    assert need >= 4 * 3 * 3  # kernel 2x1, bias 1, Adam's two moments of each, in float32 (and more)
    usage = type("Usage", (), {"free": need - 1})
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(OSError) as refused:
        runs.atomic_save_weights(model, str(tmp_path / "w.weights.h5"))
    assert refused.value.errno == errno.ENOSPC and os.listdir(tmp_path) == []


def test_running_out_of_memory_is_one_line_naming_the_flags_that_shrink_a_run(tmp_path):
    train = run_config(tmp_path / "run", batch_size=64, hr_crop=256)
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError) as oom:
        with loop.holding_run_folder(train):
            raise tf.errors.ResourceExhaustedError(None, None, "Graph execution error:\n\nOOM when allocating tensor "
                                                   "with shape[64,64,256,256] and type float\n more")
    assert str(oom.value) == ("out of memory (OOM when allocating tensor with shape[64,64,256,256]): try a smaller "
                              "--batch-size (it is 64) or --hr-crop (it is 256), or a smaller generator")
    with runs.run_lock(str(tmp_path / "run")):  # the lock was released
        pass


# ------------------------------------------------------------------------------ outputs checked first

@pytest.mark.parametrize("flag", ["--out", "--export"])
def test_an_output_under_a_regular_file_fails_before_training(tmp_path, capsys, flag):
    (tmp_path / "afile").write_text("")
    argv = tiny_argv(tmp_path)
    argv[argv.index(flag) + 1] = str(tmp_path / "afile" / "inner")
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(argv)
    line = one_line_error(capsys, exit_info)
    assert line == f"error: {flag} {tmp_path / 'afile' / 'inner'}: cannot write there ({tmp_path / 'afile'} is a " \
                   "file, not a folder)"


def test_the_library_says_which_output_of_a_run_cannot_be_written(tmp_path):
    # the export is checked as an output path (argument `out`) but named as the run's `export`, the
    # name the scripts turn into --export (the test above)
    (tmp_path / "afile").write_text("")
    for field in ("out", "export"):
        bad = str(tmp_path / "afile" / "inner")
        paths = {"out": str(tmp_path / "run"), "export": str(tmp_path / "model"), field: bad}
        with pytest.raises(UserError) as e:
            loop.check_outputs(TrainConfig(track="bicubic_x4", data="samples", **paths))
        assert e.value.argument == field
        assert str(e.value) == f"{field} {bad}: cannot write there ({tmp_path / 'afile'} is a file, not a folder)"


def test_export_and_interpolate_check_their_out_before_loading(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    bad = str(tmp_path / "afile" / "x")
    for main, argv in ((export_cli.main, ["missing_model.keras", "--format", "tflite", "--out", bad + ".tflite"]),
                       (interpolate.main, ["missing_a.keras", "missing_b.keras", "--alpha", "0.5", "--out", bad])):
        for model in argv[:2]:
            if model.endswith(".keras"):
                keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(tmp_path / model)
        with pytest.raises(SystemExit) as exit_info:
            main([str(tmp_path / a) if a.endswith(".keras") else a for a in argv])
        assert f"--out {bad}" in one_line_error(capsys, exit_info)


# ------------------------------------------------------------------------------ numeric flags

@pytest.mark.parametrize("argv, named", [
    (["--seed", "-1"], "argument --seed: expected an integer in [0, 4294967295]"),
    (["--seed", str(2 ** 32)], "argument --seed: expected an integer in [0, 4294967295]"),
    (["--steps-per-epoch", str(2 ** 31)], "argument --steps-per-epoch: expected a positive integer"),
    (["--lr", "inf"], "argument --lr: expected a positive number"),
    (["--test-images", "-2"], "argument --test-images: expected an integer >= -1"),
])
def test_out_of_range_numbers_name_the_flag(tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(tiny_argv(tmp_path, *argv))
    assert exit_info.value.code == 2 and named in capsys.readouterr().err


@pytest.mark.parametrize("track, crop, least", [("bicubic_x4", "16", 20), ("bicubic_x4", "19", 20),
                                                ("bicubic_x2", "15", 16), ("bicubic_x3", "17", 18)])
def test_an_hr_crop_too_small_for_ssims_window_is_refused(tmp_path, capsys, track, crop, least):
    argv = tiny_argv(tmp_path, "--hr-crop", crop)
    argv[argv.index("--track") + 1] = track
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(argv)
    assert one_line_error(capsys, exit_info).startswith(f"error: --hr-crop {crop}: x{track[-1]} training needs an "
                                                        f"HR crop of at least {least} pixels")
    assert not (tmp_path / "run").exists()


def test_the_smallest_hr_crop_allowed_trains(tmp_path):
    assert loop.check_hr_crop(20, 4) == 20 and loop.check_hr_crop(23, 4) == 20
    train = run_config(tmp_path / "run", batch_size=2, hr_crop=20, steps_per_epoch=1, val_images=1)
    trainer, _ = loop.build_srresnet_trainer(GeneratorConfig(4, num_blocks=1, filters=8))
    logs = trainer.fit(loop.datasets(train, 0)[0], steps_per_epoch=1, verbose=0).history
    assert np.isfinite(logs["ssim"][0]) and np.isfinite(logs["loss"][0])


@pytest.mark.parametrize("flag", ["--pixel-weight", "--content-weight", "--adversarial-weight", "--content-scale"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_srgan_loss_weights_must_be_finite_and_not_negative(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        train_srgan.main(tiny_argv(tmp_path, "--vgg-weights", "random", flag, value))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {flag}: expected a finite number >= 0, got '{value}'" in err


def test_help_shows_the_ranges_of_numeric_flags(capsys):
    with pytest.raises(SystemExit):
        train_srgan.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("0 to 2**32 - 1", "20 at x4", "1 to 2**31 - 1", "weight of the pixel loss in G's loss (finite, >= 0)",
                  "in [0, 1]"):
        assert shown in text, shown


# ------------------------------------------------------------------------------ hostile training images

def bomb_png(path, side=60000):
    """A valid PNG header claiming side x side RGB pixels (a few kilobytes on disk)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
                     + chunk(b"IEND", b""))


def div2k_tree(root):
    rng = np.random.default_rng(0)
    for i in ("0001", "0002", "0801"):
        part = "train" if i < "0800" else "valid"
        for folder, side, name in ((f"DIV2K_{part}_HR", 64, f"{i}.png"), (f"DIV2K_{part}_LR_bicubic/X4", 16,
                                                                            f"{i}x4.png")):
            os.makedirs(root / folder, exist_ok=True)
            Image.fromarray((rng.random((side, side, 3)) * 255).astype(np.uint8)).save(root / folder / name)
    return root


@pytest.mark.parametrize("side", [60000, 10000])  # over twice Pillow's limit (an error), and just over it (a warning)
def test_a_decompression_bomb_in_a_training_folder_is_named_before_training(tmp_path, side):
    root = div2k_tree(tmp_path / "div2k")
    bomb_png(root / "DIV2K_train_HR" / "0002.png", side)
    for degradation in (None, "realistic"):  # paired LR, and HR only
        with pytest.raises(UserError, match=r"DIV2K_train_HR/0002\.png': its header claims [0-9,]+ pixels, over the "):
            loaders.training_dataset(str(root), "bicubic_x4", batch_size=2, hr_crop=32, seed=0, degradation=degradation)


def test_an_unreadable_training_image_is_named(tmp_path):
    root = div2k_tree(tmp_path / "div2k")
    os.remove(root / "DIV2K_train_HR" / "0002.png")
    os.mkdir(root / "DIV2K_train_HR" / "0002.png")  # a folder where the image was: not listed as an image
    (root / "DIV2K_train_HR" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(UserError, match=r"^cannot read image '.*DIV2K_train_HR/0001\.png': "):
        loaders.training_dataset(str(root), "bicubic_x4", batch_size=2, hr_crop=32, seed=0)
