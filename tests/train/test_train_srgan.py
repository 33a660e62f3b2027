"""train_srgan.py end to end on a tiny DIV2K-layout folder, with random VGG weights (offline)."""
import json
import os

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf
from PIL import Image

from sr_keras.archs import models
from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import training_flags
from sr_keras.cli import train_srgan
from sr_keras.core.errors import UserError
from sr_keras.data.imresize import downscale
from sr_keras.exports.savedmodel import export_model
from sr_keras.infer import loading
from sr_keras.train import gan, loop, losses, recipes, runs

TINY = ["--track", "bicubic_x4", "--steps-per-epoch", "2", "--batch-size", "2", "--hr-crop", "48",
        "--val-images", "1", "--panel-images", "1", "--num-blocks", "2", "--filters", "16"]


@pytest.fixture(scope="module")
def div2k(tmp_path_factory):
    """Two training and one validation image in the official archives' layout (x4 bicubic)."""
    root = tmp_path_factory.mktemp("div2k")
    photos = {"0001": skimage.data.astronaut()[100:196, 150:246], "0002": skimage.data.chelsea()[50:146, 100:196],
              "0801": skimage.data.coffee()[100:164, 200:264]}
    for ident, hr in photos.items():
        part = "train" if ident < "0801" else "valid"
        os.makedirs(root / f"DIV2K_{part}_HR", exist_ok=True)
        os.makedirs(root / f"DIV2K_{part}_LR_bicubic" / "X4", exist_ok=True)
        Image.fromarray(hr).save(root / f"DIV2K_{part}_HR" / f"{ident}.png")
        Image.fromarray(downscale(hr, 4)).save(root / f"DIV2K_{part}_LR_bicubic" / "X4" / f"{ident}x4.png")
    return str(root)


@pytest.fixture(scope="module")
def init_export(tmp_path_factory):
    """An SRResNet export as train_srresnet.py writes it (SavedModel + model.keras)."""
    keras.utils.set_random_seed(3)
    config = GeneratorConfig(4, num_blocks=2, filters=16)
    g = config.build()
    out = str(tmp_path_factory.mktemp("init") / "g0")
    export_model(g, out, config)
    return out, g


def test_report_defaults():
    parser = train_srgan.build_parser()
    args = parser.parse_args([])
    assert args.select == "val_psnr" and "--select {val_psnr,last}" in parser.format_help()
    assert (args.lr_decay_epochs, args.patience, args.lr, args.batch_size, args.hr_crop, args.epochs) == (
        150, 50, 1e-4, 8, 180, 300)
    assert (args.vgg_weights, args.content_input, args.content_layer, args.content_scale) == (
        "imagenet", "imagenet", "block5_conv4", 0.006)
    assert (args.pixel_weight, args.content_weight, args.adversarial_weight, args.init_generator) == (
        2.0, 1.0, 0.005, None)


def test_offline_imagenet_vgg_fails_first_with_one_line(monkeypatch, capsys, tmp_path):
    def offline(fname, origin, **kwargs):  # what keras.utils.get_file raises without a network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    # --data does not exist: the VGG check must come before any data is read
    argv = TINY + ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"),
                   "--export", str(tmp_path / "model")]
    with pytest.raises(SystemExit) as e:
        train_srgan.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --vgg-weights imagenet") and "--vgg-weights PATH" in err[0]
    assert not os.path.exists(tmp_path / "run") and not os.path.exists(tmp_path / "model")


class _Stop(Exception):
    pass


def test_init_generator_is_loaded_before_training(div2k, init_export, monkeypatch, tmp_path):
    path, g0 = init_export
    x = np.random.default_rng(0).random((1, 10, 12, 3), dtype=np.float32)
    seen = {}

    def no_training(train, trainer, generator, *rest, **kwargs):
        seen["sr"] = np.asarray(generator(x, training=False))
        seen["same_object"] = trainer.generator is generator
        raise _Stop

    monkeypatch.setattr(loop, "fit", no_training)
    with pytest.raises(_Stop):
        train_srgan.main(TINY + ["--data", div2k, "--out", str(tmp_path / "r"), "--export", str(tmp_path / "m"),
                                 "--vgg-weights", "random", "--init-generator", path])
    assert seen["same_object"]
    np.testing.assert_array_equal(seen["sr"], np.asarray(g0(x, training=False)))


def test_init_generator_of_another_scale_or_architecture_is_refused(init_export, tmp_path):
    path, _ = init_export
    x2 = GeneratorConfig(2, num_blocks=2, filters=16)
    with pytest.raises(UserError, match=f"^model {path} is a x4 model but this run trains x2 "):
        gan.load_init_generator(x2.build(), path, x2)
    three = GeneratorConfig(4, num_blocks=3, filters=16)
    with pytest.raises(UserError, match=r"another architecture \(--num-blocks 2 --filters 16 --batch-norm "
                                        r"--no-bicubic-skip\) than this run's generator \(--num-blocks 3 "):
        gan.load_init_generator(three.build(), path, three)


def _scalar_tags(log_dir):
    tags = {}
    for root, _, files in os.walk(log_dir):
        for f in files:
            if f.startswith("events.out.tfevents"):
                for e in tf.compat.v1.train.summary_iterator(os.path.join(root, f)):
                    for v in e.summary.value:
                        tags[v.tag] = tags.get(v.tag, 0) + 1
    return tags


def test_an_init_generator_error_names_the_model_from_the_library_and_the_flag_from_train_srgan(div2k, tmp_path,
                                                                                              capsys):
    weights = str(tmp_path / "g.weights.h5")
    GeneratorConfig(4, num_blocks=1, filters=8).build().save_weights(weights)
    run = GeneratorConfig(4, num_blocks=2, filters=16)  # TINY's generator: these weights do not fit it
    with pytest.raises(UserError) as e:
        gan.load_init_generator(run.build(), weights, run)
    library = str(e.value)
    assert library.startswith(f"model {weights}: cannot load these weights into a generator with ")
    with pytest.raises(SystemExit):
        train_srgan.main(TINY + ["--data", div2k, "--out", str(tmp_path / "r"), "--export", str(tmp_path / "m"),
                                 "--vgg-weights", "random", "--init-generator", weights])
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: --init-generator " + library[len("model "):]

@pytest.mark.slow  # a whole training run
def test_train_resume_and_export(div2k, init_export, tmp_path, capsys):
    out, export = str(tmp_path / "run"), str(tmp_path / "model")
    argv = TINY + ["--data", div2k, "--out", out, "--export", export, "--vgg-weights", "random",
                   "--init-generator", init_export[0]]
    train_srgan.main(argv + ["--epochs", "1"])
    capsys.readouterr()
    # a resume must repeat G's loss settings: the checkpoint's losses and optimizer state were made with them
    for flag, changed in (("--content-input", ["--content-input", "report"]),
                          ("--content-layer", ["--content-layer", "block4_conv4"]),
                          ("--content-scale", ["--content-scale", "1"]), ("--pixel-weight", ["--pixel-weight", "1"]),
                          ("--content-weight", ["--content-weight", "2"]),
                          ("--adversarial-weight", ["--adversarial-weight", "0.01"]),
                          ("--precision", ["--precision", "mixed_bfloat16"]),
                          ("--degradation", ["--degradation", "realistic"])):
        with pytest.raises(SystemExit) as exit_info:
            train_srgan.main(argv + ["--epochs", "2", "--resume", *changed])
        err = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2 and len(err) == 1, err
        refusal = f"error: --resume: the checkpoint in {out} was made with other settings ({flag}: "
        assert err[0].startswith(refusal), err
    train_srgan.main(argv + ["--epochs", "2", "--resume"])
    stdout = capsys.readouterr().out
    assert "Epoch 2/2" in stdout and "Epoch 1/2" not in stdout and "(G step 2, D step 2)" in stdout

    # the resumed run continued both optimizers: its last checkpoint holds 2 + 2 steps of each
    state = runs.load_state(out)
    assert state.epoch == 2
    model = gan.SRGAN(models.srresnet(4, num_blocks=2, filters=16), models.discriminator(48),
                      losses.pixel_loss, scale=4)
    model.compile(keras.optimizers.Adam(), keras.optimizers.Adam())
    runs.restore(model, out, state)
    assert int(model.g_optimizer.iterations) == 4 and int(model.d_optimizer.iterations) == 4

    tags = _scalar_tags(os.path.join(out, "logs"))
    for name in (*gan.TRAIN_METRICS, "psnr", "ssim"):
        assert tags.get(f"epoch_{name}") == 2, (name, sorted(tags))
    assert any(t.startswith("val_panel/") for t in tags)

    serve = tf.saved_model.load(export).signatures["serving_default"]
    sr = serve(images=tf.zeros((1, 5, 7, 3), tf.uint8))["sr"]
    assert sr.dtype == tf.uint8 and tuple(sr.shape) == (1, 20, 28, 3)
    with open(os.path.join(out, "checkpoints", "checkpoint.json")) as f:
        assert json.load(f)["config"]["model"] == "srgan"


@pytest.mark.slow  # a whole training run
def test_select_last_exports_the_last_epoch_without_early_stopping(div2k, init_export, tmp_path, capsys):
    out, export = str(tmp_path / "run"), str(tmp_path / "model")
    train_srgan.main(TINY + ["--data", div2k, "--out", out, "--export", export, "--vgg-weights", "random",
                             "--init-generator", init_export[0], "--epochs", "2", "--patience", "1", "--select", "last",
                             "--panel-images", "0"])
    assert "exported the last epoch's model (epoch 2)" in capsys.readouterr().out
    state = runs.load_state(out)
    assert (state.epoch, state.best, state.monitor, state.callbacks) == (2, "best-e0002.weights.h5", None, {})
    # the export is the generator of the last checkpoint
    config = GeneratorConfig(4, num_blocks=2, filters=16)
    last = gan.SRGAN(config.build(), models.discriminator(48), losses.pixel_loss, scale=4)
    last.compile(keras.optimizers.Adam(), keras.optimizers.Adam())
    runs.restore(last, out, state)
    x = np.random.default_rng(2).random((1, 6, 6, 3), dtype=np.float32)
    exported = keras.saving.load_model(os.path.join(export, "model.keras"), compile=False, safe_mode=True)
    np.testing.assert_allclose(np.asarray(exported(x)), np.asarray(last.generator(x, training=False)), atol=1e-6)


def test_preset_demo_exports_under_runs_from_the_shipped_demo_models_architecture():
    parsed = training_flags.parse_args(train_srgan.build_parser(), ["--preset", "demo"], recipes.SRGAN_PRESETS)
    args = training_flags.resolve_paths(parsed, "srgan")
    # the shipped, tracked saved_models/ is only read (the parent), never written
    assert args.export == os.path.join("runs", "srgan_demo_x4", "export")
    assert args.init_generator == os.path.join("saved_models", "demo_x4")
    parent = loading.load_generator_config(loading.resolve_model("demo_x4"))
    assert training_flags.generator_config(args, 4, parent) == parent == training_flags.generator_config(args, 4)


def test_init_generator_json_is_compared_before_the_weights_and_a_weights_file_keeps_the_shape_check(tmp_path):
    skip = GeneratorConfig(4, num_blocks=1, filters=8, bicubic_skip=True)
    export_model(skip.build(), str(tmp_path / "skip"), skip)
    plain = GeneratorConfig(4, num_blocks=1, filters=8)  # the same weight shapes: only generator.json tells
    with pytest.raises(UserError, match=r"another architecture \(--num-blocks 1 --filters 8 --batch-norm "
                                        r"--bicubic-skip\) than this run's generator \(.*--no-bicubic-skip\)"):
        gan.load_init_generator(plain.build(), str(tmp_path / "skip"), plain)
    gan.load_init_generator(skip.build(), str(tmp_path / "skip"), skip)
    # a .weights.h5 has no generator.json: the run's flags, checked by the shapes
    weights = str(tmp_path / "g.weights.h5")
    plain.build().save_weights(weights)
    assert loading.load_generator_config(weights) is None
    gan.load_init_generator(plain.build(), weights, plain)
    wider = GeneratorConfig(4, num_blocks=1, filters=16)
    with pytest.raises(UserError, match="cannot load these weights into a generator with --num-blocks 1 --filters 16"):
        gan.load_init_generator(wider.build(), weights, wider)
