"""sr_keras.evaluation.scoring: the one scorer behind evaluate.py, the training scripts' --test-images table
(benchmark.bicubic_vs_model) and tools/model_card.py."""
import importlib.util
import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.archs.config import GeneratorConfig
from sr_keras.core.errors import UserError
from sr_keras.data import imresize, loaders
from sr_keras.evaluation import benchmark, metrics, results, scoring
from sr_keras.exports.savedmodel import export_model
from sr_keras.infer.inference import load_upscaler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = GeneratorConfig(4, num_blocks=1, filters=8, bicubic_skip=True)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    keras.utils.set_random_seed(3)
    return export_model(CONFIG.build(), str(tmp_path_factory.mktemp("scoring") / "exp"), CONFIG)


@pytest.fixture(scope="module")
def test_pairs():
    """The float pairs the training scripts score: the samples source's two test photographs."""
    return [(lr[0].numpy(), hr[0].numpy()) for lr, hr in loaders.eval_dataset("samples", "bicubic_x4", "test")]


def test_bicubic_vs_model_gives_what_the_serving_signature_scored_untiled(export, test_pairs):
    # the computation bicubic_vs_model made before it went through the one scorer, written out again
    serve = tf.saved_model.load(export).signatures["serving_default"]
    rows = {"bicubic": [], "model": []}
    for lr, hr in test_pairs:
        lr8, hr8 = metrics.float_to_uint8(lr), metrics.float_to_uint8(hr)
        sr8 = serve(images=tf.constant(lr8[None]))["sr"][0].numpy()
        for name, img in (("bicubic", imresize.upscale_bicubic(lr8, 4)), ("model", sr8)):
            rows[name].append((metrics.psnr_y(hr8, img, 4), metrics.ssim_y(hr8, img, 4)))
    before = {name: tuple(float(np.mean(col)) for col in zip(*vals)) for name, vals in rows.items()}
    after = benchmark.bicubic_vs_model(export, test_pairs, 4)
    assert list(after) == ["bicubic", "model"]
    for name in before:
        assert after[name][0] == pytest.approx(before[name][0], abs=1e-6)
        assert after[name][1] == pytest.approx(before[name][1], abs=1e-8)


@pytest.fixture(scope="module")
def model_card():
    """tools/model_card.py, loaded from its file (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location("model_card", os.path.join(ROOT, "tools", "model_card.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_the_training_table_and_the_model_card_score_alike(export, test_pairs, model_card, tmp_path):
    table = benchmark.bicubic_vs_model(export, test_pairs, 4)
    card = model_card.test_scores(export, "samples", "bicubic_x4", 4)
    benchmark.evaluate([benchmark.Div2kTrack("samples", "bicubic_x4", "test")], [("model", export)],
                       str(tmp_path / "ev"), benchmark.Options(figures=0, metrics=("psnr", "ssim")))
    rows = json.loads((tmp_path / "ev" / "results.json").read_text())["rows"]
    evaluated = {r["model"]: (r["psnr"], r["ssim"]) for r in rows}
    assert list(evaluated) == ["bicubic", "model"]
    for name in ("bicubic", "model"):
        assert evaluated[name] == pytest.approx(table[name], abs=1e-6)
        # the card rounds each photo's values to 4 decimals before its mean
        assert (card[name]["psnr_y"], card[name]["ssim_y"]) == pytest.approx(table[name], abs=1e-4)
    assert table["model"] != pytest.approx(table["bicubic"], abs=1e-3)  # two rows, each its own output


def test_score_pair_rows_bicubic_each_model_then_the_hr_images_niqe(export, test_pairs):
    up = load_upscaler(export)
    lr, hr = (metrics.float_to_uint8(x) for x in test_pairs[0])
    rows = scoring.score_pair(lr, hr, 4, [("a", up), ("b", up)], "photo")
    assert [(name, set(values)) for name, _, values in rows] == [
        ("bicubic", {"psnr", "ssim", "niqe"}), ("a", {"psnr", "ssim", "niqe"}), ("b", {"psnr", "ssim", "niqe"}),
        ("HR", {"niqe"})]
    (_, bicubic, _), (_, sr, a_values) = rows[:2]
    np.testing.assert_array_equal(bicubic, imresize.upscale_bicubic(lr, 4))
    np.testing.assert_array_equal(sr, up(lr))  # tiled as memory allows: the whole-image pass's pixels
    assert a_values["psnr"] == metrics.psnr_y(hr, sr, 4) and a_values["ssim"] == metrics.ssim_y(hr, sr, 4)
    assert rows[1][2] == rows[2][2] and rows[3][1] is None
    with pytest.raises(UserError, match="^tiny: 16x16 is too small to score at x4"):
        scoring.score_pair(lr[:4, :4], hr[:16, :16], 4, [("a", up)], "tiny", ("psnr", "ssim"))


def test_a_model_card_refuses_a_photo_without_niqe_rather_than_average_a_gap(export, model_card, monkeypatch):
    monkeypatch.setattr(results, "niqe_or_nan", lambda img: math.nan)  # as for a photo below 96x96
    with pytest.raises(UserError, match="^samples:stereo_motorcycle_left: no NIQE for the bicubic image"):
        model_card.test_scores(export, "samples", "bicubic_x4", 4, niqe=True)
