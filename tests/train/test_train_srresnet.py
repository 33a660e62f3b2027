"""train_srresnet.py end to end on a tiny DIV2K-layout folder written from scikit-image photographs."""
import glob
import json
import os
import signal
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
from process_helpers import lines_until
import skimage.data
import tensorflow as tf
from PIL import Image

from sr_keras.archs.config import GeneratorConfig
from sr_keras.archs.models import BicubicUpsample, count_trainable
from sr_keras.cli import training_flags
from sr_keras.cli import train_srresnet
from sr_keras.core.errors import UserError
from sr_keras.data.imresize import downscale
from sr_keras.exports.savedmodel import export_model
from sr_keras.infer import loading
from sr_keras.train import distribute, ema, loop, recipes, runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina", "hubble_deep_field")


@pytest.fixture(scope="module")
def div2k(tmp_path_factory):
    """4 training (0001-0004), 2 validation (0801-0802) and 1 test (0851) pairs, HR 96x96, x4 LR."""
    root = tmp_path_factory.mktemp("div2k")
    ids = ["0001", "0002", "0003", "0004", "0801", "0802", "0851"]
    for name, i in zip(PHOTOS, ids):
        img = getattr(skimage.data, name)()[..., :3]
        h, w = img.shape[:2]
        hr = np.ascontiguousarray(img[h // 2 - 48:h // 2 + 48, w // 2 - 48:w // 2 + 48])
        part = "train" if int(i) <= 800 else "valid"
        for folder, arr, fname in ((f"DIV2K_{part}_HR", hr, f"{i}.png"),
                                   (f"DIV2K_{part}_LR_bicubic/X4", downscale(hr, 4), f"{i}x4.png")):
            os.makedirs(root / folder, exist_ok=True)
            Image.fromarray(arr).save(root / folder / fname)
    return str(root)


def small_args(div2k, tmp, *extra):
    return ["--track", "bicubic_x4", "--data", div2k, "--out", str(tmp / "run"), "--export", str(tmp / "model"),
            "--steps-per-epoch", "2", "--batch-size", "2", "--hr-crop", "32", "--val-images", "1",
            "--panel-images", "1", "--num-blocks", "1", "--filters", "8", *extra]


def read_events(logdir):
    """{tag: [(step, summary value)]} over every event file below logdir."""
    tags = {}
    for f in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(f):
            for v in event.summary.value:
                tags.setdefault(v.tag, []).append((event.step, v))
    return tags


def restored_iterations(run):
    state = runs.load_state(run)
    trainer, _ = loop.build_srresnet_trainer(GeneratorConfig(4, num_blocks=1, filters=8))
    runs.restore(trainer, run, state)
    return state.epoch, int(trainer.optimizer.iterations)


@pytest.mark.slow  # a whole training run
def test_short_run_exports_logs_checkpoints_and_resume_continues(div2k, tmp_path, capsys):
    train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "2"))
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "exported the best model" in out

    model = tmp_path / "model"
    fn = tf.saved_model.load(str(model)).signatures["serving_default"]
    (name, spec), = fn.structured_input_signature[1].items()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]
    sr = fn(**{name: tf.zeros((1, 7, 9, 3), tf.uint8)})["sr"]
    assert sr.dtype == tf.uint8 and sr.shape == (1, 28, 36, 3)
    assert (model / "model.keras").is_file()
    card = json.loads((model / "model_card.json").read_text())
    assert card["architecture"] == json.loads((model / "generator.json").read_text())
    assert card["epochs_completed"] == 2 and card["optimizer_steps"] == 2 * card["training"]["steps_per_epoch"]
    assert card["trainable_parameters"] == count_trainable(keras.saving.load_model(str(model / "model.keras")))
    assert card["command"].startswith("python ") and card["wall_time_s"] >= 0

    run = str(tmp_path / "run")
    tags = read_events(os.path.join(run, "logs"))
    for tag in ("epoch_loss", "epoch_psnr", "epoch_ssim", "epoch_learning_rate"):
        assert tags[tag][0][1].metadata.plugin_data.plugin_name == "scalars", tag
    assert sorted(step for step, _ in tags["epoch_learning_rate"]) == [0, 1]
    assert len(tags["epoch_psnr"]) == 4  # training and validation, each epoch
    panels = tags["val_panel/0"]
    assert [step for step, _ in panels] == [0, 1] and panels[0][1].metadata.plugin_data.plugin_name == "images"
    png = tf.make_ndarray(panels[0][1].tensor)[2]  # [width, height, PNG...] for tf.summary.image
    img = tf.io.decode_png(png).numpy()
    assert img.shape == (96, 3 * 96, 3)  # bicubic | SR | HR of the 96x96 validation photo

    assert restored_iterations(run) == (2, 4)
    assert os.path.exists(runs.best_weights_path(run))

    # a resume must repeat the settings its optimizer state and network depend on
    for flag, argv in (("--precision", ["--precision", "mixed_float16"]), ("--bicubic-skip", ["--bicubic-skip"]),
                       ("--loss", ["--loss", "l1"]), ("--degradation", ["--degradation", "mild"])):
        with pytest.raises(SystemExit) as exit_info:
            train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "3", "--resume", *argv))
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1, err
        refusal = f"error: --resume: the checkpoint in {run} was made with other settings ({flag}: "
        assert err[0].startswith(refusal), err
    assert runs.load_state(run).epoch == 2

    train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "3", "--resume", "--precision", "float32"))
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "Epoch 1/3" not in out and "Epoch 2/3" not in out
    assert restored_iterations(run) == (3, 6)  # optimizer state carried on, not restarted
    tags = read_events(os.path.join(run, "logs"))
    assert len(tags["epoch_psnr"]) == 6 and sorted(s for s, _ in tags["epoch_learning_rate"]) == [0, 1, 2]

    # --fresh starts the run over: epoch 1 again, a new optimizer, only the new run's logs
    train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "2", "--fresh", "--panel-images", "0"))
    out = capsys.readouterr().out
    assert "--fresh: removed" in out and "Epoch 1/2" in out
    assert restored_iterations(run) == (2, 4)
    tags = read_events(os.path.join(run, "logs"))
    assert len(tags["epoch_psnr"]) == 4 and "val_panel/0" not in tags


def test_nan_stops_with_a_clear_message_and_saves_nothing(div2k, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "2", "--lr", "1e12"))
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: ") and ("NaN" in err or "Inf" in err) and "Traceback" not in err
    assert not (tmp_path / "model").exists() and runs.load_state(str(tmp_path / "run")) is None


@pytest.mark.parametrize("case", ["resume-nothing", "export-clobber", "existing-run"])
def test_bad_run_folders_fail_before_training(div2k, tmp_path, capsys, case):
    extra = ["--epochs", "1"]
    if case == "resume-nothing":
        extra.append("--resume")
        word = "resume"
    elif case == "export-clobber":
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / "important.txt").write_text("keep")
        word = str(tmp_path / "model")
    else:
        os.makedirs(tmp_path / "run" / "checkpoints")
        state = {"epoch": 5, "last": "last-e0005.weights.h5", "config": {}}
        (tmp_path / "run" / "checkpoints" / "checkpoint.json").write_text(json.dumps(state))
        h5py.File(tmp_path / "run" / "checkpoints" / state["last"], "w").close()
        word = "--resume"
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(small_args(div2k, tmp_path, *extra))
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and word in captured.err and "Epoch" not in captured.out
    if case == "export-clobber":
        assert os.listdir(tmp_path / "model") == ["important.txt"]


def test_preset_demo_is_the_documented_recipe_and_flags_override_it():
    # docs/training.md documents these values and saved_models/demo_x4 was trained with them
    assert recipes.SRRESNET_PRESETS["demo"] == dict(
        data="samples", track="bicubic_x4", num_blocks=6, filters=32, batch_norm=False, bicubic_skip=True,
        loss="mse", lr=1e-3, lr_schedule="cosine", hr_crop=96, batch_size=16, augment_p=0.5, epochs=10,
        steps_per_epoch=90, patience=1000, seed=0, test_images=-1, fresh=True, out=os.path.join("runs", "demo_x4"),
        export=os.path.join("runs", "demo_x4", "export"))
    parser = train_srresnet.build_parser()
    parsed = training_flags.parse_args(parser, ["--preset", "demo", "--epochs", "3", "--no-bicubic-skip"],
                                       recipes.SRRESNET_PRESETS)
    args = training_flags.resolve_paths(parsed, "srresnet")
    assert (args.data, args.num_blocks, args.filters, args.batch_norm, args.lr) == ("samples", 6, 32, False, 1e-3)
    assert (args.epochs, args.bicubic_skip, args.fresh) == (3, False, True)  # a second demo run starts over
    # the demo exports under runs/: the shipped, tracked saved_models/demo_x4 stays as shipped
    assert args.export == os.path.join("runs", "demo_x4", "export")
    assert sorted(args.given_architecture) == ["bicubic_skip"]  # typed on the command line, not the preset's
    assert not training_flags.parse_args(parser, ["--preset", "demo", "--no-fresh"], recipes.SRRESNET_PRESETS).fresh
    assert not training_flags.parse_args(parser, [], recipes.SRRESNET_PRESETS).fresh
    help_text = " ".join(parser.format_help().split())  # as read, whatever the terminal's line wrapping
    for flag in ("--precision", "--jit", "--strategy", "--loss", "--lr-schedule", "--preset", "--val-images",
                 "--fresh"):
        assert flag in help_text
    assert "(default: 0.0001)" in help_text and "(default: 300)" in help_text


@pytest.mark.slow  # killed with SIGKILL and resumed
def test_kill_9_then_resume_continues_from_the_last_completed_epoch(div2k, tmp_path, capsys):
    cmd = [sys.executable, os.path.join(ROOT, "train_srresnet.py"), *small_args(div2k, tmp_path, "--epochs", "6"),
           "--panel-images", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines_until(proc, "Epoch 4/6")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # epoch 3 was saved before "Epoch 4/6" was printed; the child may have finished another meanwhile
    epoch, iterations = restored_iterations(str(tmp_path / "run"))
    assert 3 <= epoch < 6 and iterations == 2 * epoch  # weights and checkpoint.json agree
    train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "6", "--panel-images", "0", "--resume"))
    out = capsys.readouterr().out
    assert f"Epoch {epoch + 1}/6" in out and f"Epoch {epoch}/6" not in out
    assert restored_iterations(str(tmp_path / "run")) == (6, 12)


def test_bicubic_skip_trainer_starts_from_exactly_bicubic():
    x = np.random.default_rng(0).random((1, 10, 12, 3)).astype("float32")
    _, generator = loop.build_srresnet_trainer(GeneratorConfig(4, num_blocks=1, filters=8, bicubic_skip=True))
    expected = BicubicUpsample(4)(x).numpy()
    np.testing.assert_allclose(generator(x).numpy(), expected, atol=1e-5)
    _, plain = loop.build_srresnet_trainer(GeneratorConfig(4, num_blocks=1, filters=8))
    assert np.abs(plain.get_layer("tail_conv").kernel.numpy()).max() > 0  # report model: default init


def test_mixed_precision_trainer_computes_its_loss_on_a_float32_output():
    distribute.set_precision("mixed_float16")
    try:
        trainer, generator = loop.build_srresnet_trainer(GeneratorConfig(4, num_blocks=1, filters=8))
    finally:
        distribute.set_precision("float32")
    x = np.random.default_rng(0).random((1, 6, 6, 3)).astype("float32")
    assert generator(x).dtype == "float16"  # the network computes in float16 ...
    assert trainer(x).dtype == "float32"  # ... and the trainer hands losses and metrics float32
    assert trainer.get_layer("sr_float32").dtype_policy.compute_dtype == "float32"


def test_init_trunk_copies_every_layer_before_the_upsampling_from_another_scale(tmp_path):
    source = GeneratorConfig(2, num_blocks=2, filters=8, batch_norm=False)
    keras_source = source.build()
    export_model(keras_source, str(tmp_path / "x2"), source)
    generator = loop.make_generator(GeneratorConfig(4, num_blocks=2, filters=8, batch_norm=False))
    tail_before = generator.get_layer("tail_conv").get_weights()[0]
    assert loop.init_trunk(generator, str(tmp_path / "x2")) == 9  # head conv + PReLU, 2 x 3 per block, body
    for name in ("head_conv", "head_prelu", "block0_conv1", "block0_prelu", "block1_conv2", "body_conv"):
        for got, want in zip(generator.get_layer(name).get_weights(), keras_source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(generator.get_layer("tail_conv").get_weights()[0], tail_before)


@pytest.mark.slow  # a whole training run
def test_rrdb_generator_with_ema_trains_exports_the_average_and_refuses_another_decay_on_resume(
        div2k, tmp_path, capsys):
    argv = small_args(div2k, tmp_path, "--generator", "rrdb", "--growth", "4", "--loss", "l1", "--ema", "0.5",
                      "--epochs", "1")
    train_srresnet.main(argv)
    assert "RRDBNet x4: " in capsys.readouterr().out
    config = GeneratorConfig(4, arch="rrdbnet", num_blocks=1, filters=8, growth=4)
    with open(tmp_path / "model" / "generator.json") as f:
        assert GeneratorConfig.from_json(f.read()) == config
    state = runs.load_state(str(tmp_path / "run"))
    assert (state.config["arch"], state.config["growth"], state.config["ema"]) == ("rrdbnet", 4, 0.5)
    # the export is the average of the two steps' weights, the trainer checkpoint the trained weights
    trainer, generator = loop.build_srresnet_trainer(config, loss="l1", ema=0.5)
    runs.restore(trainer, str(tmp_path / "run"), state)
    exported = config.build()
    exported.load_weights(str(tmp_path / "run" / "checkpoints" / state.best))
    for (_, average), weight in zip(ema.WeightAverage(trainer.optimizer).pairs(), exported.trainable_weights):
        np.testing.assert_array_equal(np.asarray(average), np.asarray(weight))
    assert not np.array_equal(np.asarray(exported.trainable_weights[0]), np.asarray(generator.trainable_weights[0]))
    with pytest.raises(SystemExit):
        train_srresnet.main(argv[:-1] + ["2", "--ema", "0.9", "--resume"])
    err = capsys.readouterr().err
    assert "--ema: checkpoint 0.5, now 0.9" in err


def test_init_generator_starts_from_all_the_given_weights(div2k, tmp_path, capsys):
    config = GeneratorConfig(4, num_blocks=1, filters=8, batch_norm=False)
    keras.utils.set_random_seed(7)
    source = config.build()
    export_model(source, str(tmp_path / "src"), config)
    # a learning rate too small to move any weight: the export must equal the source
    train_srresnet.main(small_args(div2k, tmp_path, "--no-batch-norm", "--epochs", "1", "--steps-per-epoch", "1",
                                   "--lr", "1e-30", "--panel-images", "0", "--init-generator", str(tmp_path / "src")))
    assert f"generator initialised from {tmp_path / 'src'}" in capsys.readouterr().out
    trained = keras.saving.load_model(str(tmp_path / "model" / "model.keras"))
    for a, b in zip(source.weights, trained.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)


def test_init_trunk_and_init_generator_together_are_refused(div2k, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_srresnet.main(small_args(div2k, tmp_path, "--init-trunk", "a", "--init-generator", "b"))
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == ("error: --init-trunk and --init-generator both start the generator: "
                                               "give one of them")


def test_warm_start_takes_the_parents_architecture_and_refuses_a_contradicting_flag(div2k, tmp_path, capsys):
    # a bicubic skip and no BatchNorm: this run's defaults would build another network under its weights
    parent = GeneratorConfig(4, num_blocks=2, filters=8, batch_norm=False, bicubic_skip=True)
    source = str(tmp_path / "src")
    export_model(parent.build(), source, parent)
    argv = ["--track", "bicubic_x4", "--data", div2k, "--out", str(tmp_path / "run"), "--export",
            str(tmp_path / "model"), "--steps-per-epoch", "1", "--batch-size", "2", "--hr-crop", "32",
            "--val-images", "1", "--panel-images", "0", "--epochs", "1", "--init-generator", source]
    for given, refusal in ((["--num-blocks", "4"], "has 2 blocks; --num-blocks 4 contradicts it"),
                           (["--no-bicubic-skip"], "has a bicubic skip; --no-bicubic-skip contradicts it")):
        with pytest.raises(SystemExit) as exit_info:
            train_srresnet.main(argv + given)
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1, err
        assert err[0].startswith(f"error: --init-generator {source} {refusal}"), err
        assert not (tmp_path / "run").exists()  # refused before anything was made
    train_srresnet.main(argv + ["--filters", "8"])  # a flag that agrees with the parent is accepted
    out = capsys.readouterr().out
    assert f"generator initialised from {source} (--num-blocks 2 --filters 8 --no-batch-norm --bicubic-skip)" in out
    with open(tmp_path / "model" / "generator.json") as f:
        assert GeneratorConfig.from_json(f.read()) == parent


def test_a_warm_start_from_a_shipped_model_without_flags_builds_that_model():
    args = training_flags.parse_args(train_srresnet.build_parser(), ["--init-generator", "srresnet_x4"])
    parent = loading.load_generator_config(loading.resolve_model("srresnet_x4"))
    assert parent.bicubic_skip and training_flags.generator_config(args, 4) != parent  # the defaults alone: another network
    assert training_flags.generator_config(args, 4, parent) == parent
    with pytest.raises(UserError, match=r"^--init-generator srresnet_x4 is a x4 model but this run trains x2 "):
        training_flags.generator_config(args, 2, parent, "--init-generator srresnet_x4")


def test_a_run_whose_export_scores_below_bicubic_ends_with_a_warning(div2k, tmp_path, capsys):
    # an untrained SRResNet without the bicubic skip (the weights cannot move at this rate): far below bicubic
    train_srresnet.main(small_args(div2k, tmp_path, "--epochs", "1", "--steps-per-epoch", "1", "--lr", "1e-30",
                                   "--panel-images", "0", "--test-images", "1"))
    last = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last[0].startswith(f"WARNING: the exported model in {tmp_path / 'model'} scores "), last
    assert " dB below bicubic on the test images (PSNR-Y " in last[0], last
    assert last[1] == f"the exported model and its card: {tmp_path / 'model'}"
    scores = {"bicubic": (25.0, 0.7), "model": (9.8, 0.1)}
    assert loop.below_bicubic_warning(scores, "m").startswith("WARNING: the exported model in m scores 15.20 dB")
    assert loop.below_bicubic_warning({**scores, "model": (25.0, 0.7)}, "m") is None
    assert loop.below_bicubic_warning(None, "m") is None


@pytest.mark.slow  # a whole training run
def test_shortened_demo_exports_under_runs_not_over_the_shipped_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the preset's relative folders land here
    train_srresnet.main(["--preset", "demo", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2"])
    export = os.path.join("runs", "demo_x4", "export")
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"the exported model and its card: {export}"
    assert (tmp_path / export / "model.keras").is_file() and (tmp_path / export / "model_card.json").is_file()
    assert not (tmp_path / "saved_models").exists()
