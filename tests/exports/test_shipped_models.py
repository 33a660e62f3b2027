"""The shipped models: each folder of saved_models/ is an export with its model card, the card's
parameter count is the model's, and the README's table is generated from the cards."""
import json
import os
import subprocess
import sys

import pytest

from sr_keras.archs.models import count_trainable
from sr_keras.core.errors import UserError
from sr_keras.infer.loading import load_generator_config, load_keras_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "saved_models")
SHIPPED = sorted(n for n in os.listdir(MODELS) if os.path.isdir(os.path.join(MODELS, n)))
TABLE1 = {2: 1_401_749, 3: 1_586_389, 4: 1_549_462}


def test_the_report_models_ship_at_every_scale():
    assert {"srresnet_x2", "srresnet_x3", "srresnet_x4", "demo_x4"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_model_has_a_card_that_matches_it(name):
    folder = os.path.join(MODELS, name)
    with open(os.path.join(folder, "model_card.json")) as f:
        card = json.load(f)
    config = load_generator_config(folder)
    assert card["architecture"] == config.to_dict()
    assert card["trainable_parameters"] == count_trainable(load_keras_model(folder))
    for key in ("training_data", "optimizer_steps", "batch", "hr_crop", "wall_time_s", "hardware", "command",
                "commit"):
        assert card[key], key
    if name.startswith("srresnet_x"):
        assert card["trainable_parameters"] == TABLE1[config.scale]  # the report's Table 1, to the unit


def test_readme_table_is_generated_from_the_cards():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "models_table.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_table_row_of_a_fine_tuned_model_counts_every_stage(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import models_table

    stage = dict(optimizer_steps=2400, batch=16, hr_crop=96, wall_time_s=3600)
    score = {"psnr_y": 30.0, "ssim_y": 0.8}
    card = dict(name="tuned_x4", architecture={"scale": 4}, trainable_parameters=1_549_462,
                training_data={"train_images": 17}, degradation="bicubic (Pillow) x1/4",
                optimizer_steps=2000, batch=16, hr_crop=128, wall_time_s=1800, initialised_from=stage,
                test_photographs={"bicubic": score, "model": {"psnr_y": 31.5, "ssim_y": 0.85},
                                  "gain": {"psnr_y": 1.5}})
    (tmp_path / "tuned_x4").mkdir()
    (tmp_path / "tuned_x4" / "model_card.json").write_text(json.dumps(card))
    row = models_table.rows(str(tmp_path))[-1]
    assert "| 2,400 (16 x 96) + 2,000 (16 x 128) | 90 min |" in row and "(+1.50 dB)" in row


def test_table_row_names_every_stage_degradation_and_the_corpus_scales(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import models_table

    score = {"psnr_y": 30.0, "ssim_y": 0.8}
    first = dict(optimizer_steps=100, batch=16, hr_crop=96, wall_time_s=60, degradation="bicubic (Pillow) x1/4")
    second = dict(optimizer_steps=100, batch=16, hr_crop=96, wall_time_s=60, degradation={"name": "mild"},
                  initialised_from=first)
    third = dict(optimizer_steps=100, batch=4, hr_crop=192, wall_time_s=60, degradation={"name": "phone"},
                 initialised_from=second)
    card = dict(name="real_x4", architecture={"scale": 4}, trainable_parameters=1_549_462,
                training_data={"train_images": 51, "train_photographs": 17, "train_scales": [1.0, 0.75, 0.5]},
                degradation={"name": "mild"}, optimizer_steps=100, batch=4, hr_crop=192, wall_time_s=60,
                initialised_from=third,
                test_photographs={"bicubic": score, "model": score, "gain": {"psnr_y": 0.0}})
    (tmp_path / "real_x4").mkdir()
    (tmp_path / "real_x4" / "model_card.json").write_text(json.dumps(card))
    row = models_table.rows(str(tmp_path))[-1]
    # stages first to last: bicubic, mild, phone, mild -> each degraded LR model once, in order
    assert "| 17 photos at 3 scales, mild, phone LR |" in row


def test_card_recipe_comes_from_the_last_training_command_not_a_later_interpolation():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import model_card

    commands = ["python train_srresnet.py --epochs 30", "python train_srresnet.py --epochs 30 --resume --epochs 20",
                "python interpolate.py a b --alpha 0.5 --out c"]
    assert model_card.last_training_command(commands) == commands[1]
    assert model_card.recipe(model_card.last_training_command(commands))["epochs"] == 20
    with pytest.raises(UserError, match="no train_srresnet.py or train_srgan.py command"):
        model_card.last_training_command(commands[2:])


def test_card_recipe_of_a_gan_run_names_its_losses_and_discriminator():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import model_card

    commands = ["python train_srgan.py --init-generator srresnet_x4 --content-weight 0 --adversarial-weight 1e-3 "
                "--pixel-weight 1 --epochs 4", "python train_srgan.py --content-weight 0 --resume --epochs 8"]
    rec = model_card.recipe(model_card.last_training_command(commands))
    assert (rec["epochs"], rec["content_weight"], rec["discriminator"], rec["gan"]) == (8, 0.0, "report", "standard")
    # the second command leaves the weights at their defaults: the card reports what that command ran
    assert rec["generator_loss"] == ("2 x MSE pixel (no VGG content loss: --content-weight 0, no VGG built) + "
                                     "0.005 x standard adversarial against the report discriminator")
    assert "one for G and one for D" in rec["optimizer"]
