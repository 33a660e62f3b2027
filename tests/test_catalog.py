"""sr_keras.catalog: which model for which picture (`upscale.py --list-models`, `sr_keras.list_models()`):
every model a name gives, its scale, what it is for and its card's headline score, read as JSON only."""
import json
import os
import subprocess
import sys

import pytest

from sr_keras import catalog

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _card(name):
    with open(os.path.join(ROOT, "saved_models", name, "model_card.json"), encoding="utf-8") as f:
        return json.load(f)


def _model_folder(folder, name, card=None, raw_card=None):
    """A folder a name resolves to (model.keras need only exist to be listed), with a card."""
    os.makedirs(folder / name)
    (folder / name / "model.keras").write_bytes(b"")
    if card is not None:
        (folder / name / "model_card.json").write_text(json.dumps(card))
    if raw_card is not None:
        (folder / name / "model_card.json").write_text(raw_card)


def _scores(bicubic, model, **extra):
    return {"bicubic": {"psnr_y": bicubic, **extra.get("bicubic_extra", {})},
            "model": {"psnr_y": model, **extra.get("model_extra", {})}}


def test_the_shipped_models_are_listed_with_scale_purpose_and_the_score_of_their_card(monkeypatch):
    monkeypatch.delenv("SR_KERAS_MODELS", raising=False)
    models = {m["name"]: m for m in catalog.list_models()}
    assert {"srresnet_x2", "srresnet_x3", "srresnet_x4", "srresnet_real_x4"} <= set(models)
    assert [models[n]["scale"] for n in ("srresnet_x2", "srresnet_x3", "srresnet_x4", "srresnet_real_x4")] == \
        [2, 3, 4, 4]
    assert models["srresnet_x4"]["purpose"].startswith("clean or downscaled pictures")
    assert models["srresnet_real_x4"]["purpose"].startswith("phone photos, JPEGs, noisy scans")
    t = _card("srresnet_x4")["test_photographs"]
    m, b = t["model"]["psnr_y"], t["bicubic"]["psnr_y"]
    assert models["srresnet_x4"]["score"] == f"test photos {m - b:+.2f} dB PSNR-Y over bicubic ({m:.2f} vs {b:.2f} dB)"
    # the model for noisy pictures also shows its score on noisy JPEG test photographs
    d = _card("srresnet_real_x4")["test_photographs_degraded"]
    assert f"; noisy JPEG test photos {d['model']['psnr_y'] - d['bicubic']['psnr_y']:+.2f} dB" \
        in models["srresnet_real_x4"]["score"]
    assert os.path.samefile(models["srresnet_x4"]["path"], os.path.join(ROOT, "saved_models", "srresnet_x4"))


def test_models_of_sr_keras_models_get_a_purpose_from_the_table_the_card_or_its_training(tmp_path, monkeypatch):
    niqe = {"bicubic_extra": {"niqe": 6.5}, "model_extra": {"niqe": 3.25}}
    _model_folder(tmp_path, "my_srgan_x4", {"architecture": {"scale": 4},
                                            "test_photographs": _scores(31.0, 29.5, **niqe)})
    _model_folder(tmp_path, "mine_x2", {"architecture": {"scale": 2}, "purpose": "my  cat\nphotos",
                                        "test_split": _scores(30.0, 31.0)})
    _model_folder(tmp_path, "noisy_x4", {"architecture": {"scale": 4},
                                         "training_data": {"degradation": "mild"}})
    _model_folder(tmp_path, "sharp_x4", {"command": "python train_srgan.py --data mine/"})
    _model_folder(tmp_path, "broken_x3", raw_card="{not json")
    (tmp_path / "plain_x3.keras").write_bytes(b"")
    monkeypatch.setenv("SR_KERAS_MODELS", str(tmp_path))
    models = {m["name"]: m for m in catalog.list_models()}
    # the shipped GAN model by the table; a user's by its name
    assert models["srgan_x4"]["purpose"] == catalog.PURPOSES["srgan_x4"] and models["srgan_x4"]["purpose"].startswith(
        "texture")
    assert models["my_srgan_x4"]["purpose"].startswith("texture: a GAN")
    assert models["my_srgan_x4"]["score"] == ("test photos -1.50 dB PSNR-Y over bicubic (29.50 vs 31.00 dB), NIQE "
                                              "3.25 (bicubic 6.50, lower = more natural)")
    assert models["mine_x2"]["purpose"] == "my cat photos"  # the card's own words, on one line
    assert models["mine_x2"]["score"] == "test split +1.00 dB PSNR-Y over bicubic (31.00 vs 30.00 dB)"
    assert models["noisy_x4"]["purpose"].startswith("degraded pictures (trained on the mild degradation")
    assert models["noisy_x4"]["score"] is None
    assert models["sharp_x4"]["purpose"].startswith("texture: a GAN")
    assert models["mine_x2"]["scale"] == 2 and models["sharp_x4"]["scale"] == 4  # the card's, else the name's
    assert models["broken_x3"] == {"name": "broken_x3", "scale": 3, "purpose": "unknown: it has no model card",
                                   "score": None, "path": str(tmp_path / "broken_x3")}
    assert models["plain_x3"]["scale"] == 3 and models["plain_x3"]["score"] is None
    text = catalog.format_models(catalog.list_models())
    assert "\nsrgan_x4          x4   texture" in text and "no score on its model card" in text


def test_the_which_model_line_names_the_gan_only_where_it_is_found():
    assert "srresnet_real_x4" in catalog.which_model(["srresnet_x4"]) and "srgan" not in catalog.which_model([])
    assert "texture (fur, grass, fabric): srgan_x4" in catalog.which_model(["srgan_x4"])


@pytest.mark.parametrize("card", [{"test_photographs": {"model": {"psnr_y": "high"}, "bicubic": {"psnr_y": 30}}},
                                  {"test_photographs": [1, 2]}, {"architecture": "x4"}, {}])
def test_a_card_without_usable_scores_lists_no_score(card):
    assert catalog.headline(card) is None


def test_listing_the_models_imports_neither_tensorflow_nor_keras():
    code = ("import sys, sr_keras; models = sr_keras.list_models(); "
            "assert models and not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
