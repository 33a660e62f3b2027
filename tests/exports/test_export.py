"""sr_keras.exports.savedmodel: the uint8 any-size serving signature, model.keras, generator.json, atomic replace,
refusal."""
import io
import json
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.archs.config import GeneratorConfig
from sr_keras.core.errors import UserError
from sr_keras.evaluation.metrics import float_to_uint8
from sr_keras.exports.savedmodel import export_model, recover_export_dir
from sr_keras.infer.inference import load_upscaler
from sr_keras.infer.loading import load_generator_config

CONFIG = GeneratorConfig(2, num_blocks=1, filters=8, bicubic_skip=True)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return CONFIG.build()


def test_serving_signature_is_uint8_any_size_and_rounds_the_model_output(tmp_path, tiny):
    out = export_model(tiny, str(tmp_path / "exp"), CONFIG)
    assert sorted(os.listdir(out)) == ["assets", "fingerprint.pb", "generator.json", "model.keras",
                                       "saved_model.pb", "variables"]
    assert os.listdir(tmp_path) == ["exp"]  # no temporary folder left beside it
    fn = tf.saved_model.load(out).signatures["serving_default"]
    (name, spec), = fn.structured_input_signature[1].items()
    assert name == "images" and list(fn.structured_outputs) == ["sr"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]
    x = np.random.default_rng(0).integers(0, 256, (2, 13, 21, 3), dtype=np.uint8)
    y = fn(**{name: tf.constant(x)})["sr"].numpy()
    assert y.dtype == np.uint8 and y.shape == (2, 26, 42, 3)
    expected = float_to_uint8(tiny(x.astype("float32") / 255.0).numpy())
    assert np.abs(y.astype(int) - expected).max() <= 1  # float reassociation may flip a .5 rounding
    assert (y == expected).mean() > 0.99


def test_generator_json_restores_the_config_on_loading(tmp_path, tiny):
    out = export_model(tiny, str(tmp_path / "exp"), CONFIG)
    with open(os.path.join(out, "generator.json")) as f:
        saved = json.load(f)
    assert {k: saved[k] for k in ("scale", "arch", "num_blocks", "filters", "batch_norm", "bicubic_skip")} == {
        "scale": 2, "arch": "srresnet", "num_blocks": 1, "filters": 8, "batch_norm": True, "bicubic_skip": True}
    assert load_generator_config(out) == CONFIG
    assert load_generator_config(os.path.join(out, "model.keras")) == CONFIG
    assert load_upscaler(out).config == CONFIG


def test_model_keras_loads_in_safe_mode_with_the_same_weights_and_no_optimizer_state(tmp_path):
    keras.utils.set_random_seed(2)
    model = CONFIG.build()
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(np.zeros((2, 8, 8, 3)), np.ones((2, 16, 16, 3)), verbose=0)  # Adam now holds moments
    out = export_model(model, str(tmp_path / "exp"), CONFIG)
    loaded = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    x = np.random.default_rng(1).random((1, 9, 11, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)
    with zipfile.ZipFile(os.path.join(out, "model.keras")) as z, \
            h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        assert "layers" in f and "optimizer" not in f


def test_previous_export_is_replaced_but_a_foreign_folder_is_refused(tmp_path, tiny):
    target = tmp_path / "exp"
    export_model(tiny, str(target), CONFIG)
    other = CONFIG.build()
    export_model(other, str(target), CONFIG)  # its generator.json must not make it look foreign
    reloaded = keras.saving.load_model(str(target / "model.keras"))
    np.testing.assert_array_equal(reloaded.get_weights()[0], other.get_weights()[0])
    assert os.listdir(tmp_path) == ["exp"]

    foreign = tmp_path / "notmodel"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep")
    with pytest.raises(UserError, match="notmodel"):
        export_model(tiny, str(foreign), CONFIG)
    assert os.listdir(foreign) == ["important.txt"] and (foreign / "important.txt").read_text() == "keep"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="afile"):
        export_model(tiny, str(tmp_path / "afile"), CONFIG)


@pytest.mark.parametrize("config,needle", [
    (GeneratorConfig(4, num_blocks=1, filters=8, bicubic_skip=True),
     r"upscales x2, its config \(generator.json\) says x4$"),
    (GeneratorConfig(2, num_blocks=2, filters=8, bicubic_skip=True), "do not match"),
    (GeneratorConfig(2, num_blocks=1, filters=8, batch_norm=False, bicubic_skip=True), "do not match"),
])
def test_a_config_that_does_not_describe_the_model_is_refused_before_writing(tmp_path, tiny, config, needle):
    with pytest.raises(UserError, match=needle):  # one line, as export.py prints it
        export_model(tiny, str(tmp_path / "exp"), config)
    assert not (tmp_path / "exp").exists()


def test_a_killed_export_is_recovered_and_its_leftovers_removed(tmp_path, tiny):
    target = tmp_path / "exp"
    export_model(tiny, str(target), CONFIG)
    # kill -9 between export_model's two renames: the previous export only exists as .exp.tmp-PID.old,
    # beside the new export's half-written temporary folder
    os.replace(target, tmp_path / ".exp.tmp-999999.old")
    (tmp_path / ".exp.tmp-999999").mkdir()
    (tmp_path / ".exp.tmp-999999" / "saved_model.pb").write_text("half")
    (tmp_path / ".other.tmp-999999").mkdir()  # another export's folder: not ours to touch
    recover_export_dir(str(target))
    assert sorted(os.listdir(tmp_path)) == [".other.tmp-999999", "exp"]
    reloaded = keras.saving.load_model(str(target / "model.keras"))
    np.testing.assert_array_equal(reloaded.get_weights()[0], tiny.get_weights()[0])
    # a leftover beside an intact export is removed by the next export
    (tmp_path / ".exp.tmp-999998").mkdir()
    export_model(tiny, str(target), CONFIG)
    assert sorted(os.listdir(tmp_path)) == [".other.tmp-999999", "exp"]
