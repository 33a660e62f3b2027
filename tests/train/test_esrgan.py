"""ESRGAN training: RRDBNet + VGG-style D with both GAN types, resume of D, both optimizers and the EMA,
and train_srgan.py's ESRGAN flags and presets end to end on a tiny HR folder (random VGG weights)."""
import json
import os

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image

from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import train_srgan, train_srresnet
from sr_keras.infer.inference import load_upscaler
from sr_keras.train import ema, gan, losses, recipes

pytestmark = pytest.mark.slow  # end-to-end ESRGAN training commands

TINY_RRDB = GeneratorConfig(4, arch="rrdbnet", num_blocks=1, filters=16, growth=8)
# the smoke command of docs/esrgan.md, plus the size of a test run
CONTRACT = ["--generator", "rrdb", "--gan", "relativistic", "--discriminator", "vgg", "--ema", "0.9",
            "--vgg-weights", "random", "--num-blocks", "1", "--filters", "16", "--hr-crop", "64"]
SMALL = ["--steps-per-epoch", "1", "--batch-size", "2", "--panel-images", "1"]


@pytest.fixture(scope="module")
def content():
    return losses.VGGContentLoss(weights="random", activation="before", criterion="l1", scale=1.0)


def _esrgan(content, gan_type, seed=0, decay=0.9):
    keras.utils.set_random_seed(seed)
    return gan.build_srgan_trainer(TINY_RRDB.build(), 64, content, 4, pixel_weight=1e-2, content_weight=1.0,
                                   adversarial_weight=5e-3, gan=gan_type, discriminator="vgg", pixel_loss="l1",
                                   ema=decay)


def _batch(seed=0, n=2):
    hr = np.random.default_rng(seed).random((n, 64, 64, 3), dtype=np.float32)
    return hr.reshape(n, 16, 4, 16, 4, 3).mean(axis=(2, 4)), hr


@pytest.mark.parametrize("gan_type", gan.GAN_TYPES)
def test_two_steps_train_rrdbnet_and_the_vgg_discriminator(content, gan_type):
    m = _esrgan(content, gan_type)
    assert m.discriminator.name == "vgg_discriminator_64" and m.gan == gan_type
    g0, d0 = m.generator.get_weights(), m.discriminator.get_weights()
    for i in range(2):
        logs = {k: float(v) for k, v in m.train_step(_batch(i)).items()}
    assert set(logs) == set(gan.TRAIN_METRICS) and all(np.isfinite(v) for v in logs.values())
    for name, before, net in (("G", g0, m.generator), ("D", d0, m.discriminator)):
        unchanged = [w.path for b, w in zip(before, net.weights) if w.trainable and np.array_equal(b, np.asarray(w))]
        assert not unchanged, f"{name} weights not updated: {unchanged}"
    assert int(m.g_optimizer.iterations) == 2 and int(m.d_optimizer.iterations) == 2


def test_checkpoint_restores_d_both_optimizers_and_the_ema(content, tmp_path):
    m = _esrgan(content, "relativistic")
    for i in range(2):
        m.train_step(_batch(i))
    path = str(tmp_path / "ckpt.weights.h5")
    m.save_weights(path)
    fresh = _esrgan(content, "relativistic", seed=1)
    fresh.load_weights(path)
    for a, b in [(m.generator, fresh.generator), (m.discriminator, fresh.discriminator),
                 (m.g_optimizer, fresh.g_optimizer), (m.d_optimizer, fresh.d_optimizer)]:
        assert len(a.variables) == len(b.variables)
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=va.path)
    averages = [np.asarray(a) for _, a in ema.WeightAverage(fresh.g_optimizer).pairs()]
    for got, want in zip(averages, [np.asarray(a) for _, a in ema.WeightAverage(m.g_optimizer).pairs()]):
        np.testing.assert_array_equal(got, want)
    # the average is its own state, not a copy of the weights (0.9 * w1 + 0.1 * w2 after two steps)
    assert not all(np.array_equal(a, np.asarray(w)) for a, w in zip(averages, fresh.generator.trainable_weights))


@pytest.fixture(scope="module")
def hr_folder(tmp_path_factory):
    """Three HR photos, no subfolders: train, validation and test by sorted name."""
    root = tmp_path_factory.mktemp("hr")
    for i, hr in enumerate([skimage.data.astronaut()[100:196, 150:246], skimage.data.chelsea()[50:146, 100:196],
                            skimage.data.coffee()[100:196, 200:296]]):
        Image.fromarray(hr).save(root / f"{i:02d}.png")
    return str(root)


def test_help_lists_the_esrgan_flags():
    text = train_srgan.build_parser().format_help()
    for flag in ("--generator {srresnet,rrdb}", "--gan {standard,relativistic}", "--discriminator {report,vgg}",
                 "--content-activation {after,before}", "--content-criterion {mse,l1}", "--pixel-loss {mse,l1}",
                 "--ema DECAY", "--growth GROWTH", "--preset {demo,esrgan}", "--lr-milestones E1,E2,..."):
        assert flag in text, flag
    assert "--generator {srresnet,rrdb}" in train_srresnet.build_parser().format_help()


def test_smoke_command_trains_exports_and_resumes(hr_folder, tmp_path, capsys):
    run, export = str(tmp_path / "run"), str(tmp_path / "model")
    argv = CONTRACT + SMALL + ["--data", hr_folder, "--out", run, "--export", export]
    train_srgan.main(argv + ["--epochs", "1"])
    out = capsys.readouterr().out
    assert "ESRGAN x4: G (rrdbnet) 293,987 and D (vgg) 13,885,001 trainable parameters" in out
    with open(os.path.join(export, "generator.json")) as f:
        assert json.load(f) == TINY_RRDB.to_dict() | {"growth": 32}  # --growth not given: ESRGAN's 32
    upscaler = load_upscaler(export)
    sr = upscaler(np.full((12, 10, 3), 128, np.uint8))
    assert sr.shape == (48, 40, 3) and sr.dtype == np.uint8
    with open(os.path.join(run, "checkpoints", "checkpoint.json")) as f:
        saved = json.load(f)["config"]
    assert {k: saved[k] for k in ("arch", "gan", "discriminator", "content_activation", "pixel_loss", "ema")} == {
        "arch": "rrdbnet", "gan": "relativistic", "discriminator": "vgg", "content_activation": "after",
        "pixel_loss": "mse", "ema": 0.9}

    for changed, flag in ((["--gan", "standard"], "--gan"), (["--ema", "0.5"], "--ema"),
                          (["--content-activation", "before"], "--content-activation"),
                          (["--pixel-loss", "l1"], "--pixel-loss"), (["--discriminator", "report"], "--discriminator")):
        with pytest.raises(SystemExit) as e:
            train_srgan.main(argv + changed + ["--epochs", "2", "--resume"])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: --resume:") and f"{flag}: checkpoint" in err[0], err

    train_srgan.main(argv + ["--epochs", "2", "--resume"])
    assert f"resuming {run} after epoch 1 (G step 1, D step 1)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--hr-crop", "80"], "error: --hr-crop 80: --discriminator vgg needs an HR crop divisible by 32"),
    (["--hr-crop", "70"], "error: --hr-crop 70: --discriminator vgg needs an HR crop divisible by 32 (68 after rounding"),
    (["--bicubic-skip"], "error: --bicubic-skip: --generator rrdb has no bicubic skip"),
])
def test_bad_esrgan_settings_fail_in_one_line_before_reading_data(extra, message, tmp_path, capsys):
    argv = CONTRACT + ["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"),
                       "--export", str(tmp_path / "model")] + extra
    with pytest.raises(SystemExit) as e:
        train_srgan.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message) and "\n" not in err[0]
    assert not os.path.exists(tmp_path / "run")


def test_esrgan_preset_is_the_papers_gan_stage(capsys):
    from sr_keras.cli import training_flags

    parsed = training_flags.parse_args(train_srgan.build_parser(), ["--preset", "esrgan"], recipes.SRGAN_PRESETS)
    args = training_flags.resolve_paths(parsed, "srgan")
    config = training_flags.generator_config(args, 4)
    assert config == GeneratorConfig(4, arch="rrdbnet", num_blocks=23, filters=64, growth=32)
    assert (args.gan, args.discriminator, args.content_layer, args.content_activation, args.content_criterion,
            args.content_scale, args.pixel_loss) == ("relativistic", "vgg", "block5_conv4", "before", "l1", 1.0, "l1")
    assert (args.pixel_weight, args.content_weight, args.adversarial_weight) == (1e-2, 1.0, 5e-3)
    train = training_flags.train_config(args)
    assert (train.lr, train.lr_schedule, train.lr_milestones, train.lr_decay_factor, train.steps_per_epoch,
            train.epochs, train.hr_crop, train.batch_size, train.ema) == (
        1e-4, "milestones", (50, 100, 200, 300), 0.5, 1000, 400, 128, 16, None)
    # the learning rate of the paper's iterations 0, 50k, 100k, 200k, 300k (epochs of 1000 steps)
    from sr_keras.train.callbacks import lr_schedule

    rate = lr_schedule(train)
    assert [rate(e) for e in (0, 49, 50, 100, 199, 200, 300, 399)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 2.5e-5, 2.5e-5, 1.25e-5, 6.25e-6, 6.25e-6])
    assert args.init_generator == os.path.join("saved_models", "rrdb_psnr_bicubic_x4")
    assert train.export == os.path.join("saved_models", "esrgan_bicubic_x4")


def test_rrdb_psnr_preset_trains_rrdbnet_with_l1_and_adam_2e_4():
    from sr_keras.cli import training_flags

    parsed = training_flags.parse_args(train_srresnet.build_parser(), ["--preset", "rrdb-psnr"],
                                       recipes.SRRESNET_PRESETS)
    args = training_flags.resolve_paths(parsed, "srresnet")
    assert training_flags.generator_config(args, 4) == GeneratorConfig(4, arch="rrdbnet", num_blocks=23, filters=64,
                                                                       growth=32)
    train = training_flags.train_config(args)
    assert (args.loss, train.lr, train.lr_decay_epochs, train.lr_decay_factor, train.hr_crop, train.batch_size) == (
        "l1", 2e-4, 200, 0.5, 128, 16)
    assert train.export == os.path.join("saved_models", "rrdb_psnr_bicubic_x4")
