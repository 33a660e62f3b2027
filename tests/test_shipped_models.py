"""The shipped models: each folder of saved_models/ is an export with its model card, the card's
parameter count is the model's, and the README's table is generated from the cards."""
import json
import os
import subprocess
import sys

import pytest

from sr_keras.loading import load_generator_config, load_keras_model
from sr_keras.models import count_trainable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
