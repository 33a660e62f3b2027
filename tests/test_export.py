"""sr_keras.export: the uint8 any-size serving signature, model.keras, atomic replace, refusal."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.errors import UserError
from sr_keras.export import export_model, recover_export_dir
from sr_keras.metrics import to_uint8
from sr_keras.models import srresnet


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(1)
    return srresnet(2, num_blocks=1, filters=8, bicubic_skip=True)


def test_serving_signature_is_uint8_any_size_and_rounds_the_model_output(tmp_path, tiny):
    out = export_model(tiny, 2, str(tmp_path / "exp"))
    assert sorted(os.listdir(out)) == ["assets", "fingerprint.pb", "model.keras", "saved_model.pb", "variables"]
    assert os.listdir(tmp_path) == ["exp"]  # no temporary folder left beside it
    fn = tf.saved_model.load(out).signatures["serving_default"]
    (name, spec), = fn.structured_input_signature[1].items()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]
    x = np.random.default_rng(0).integers(0, 256, (2, 13, 21, 3), dtype=np.uint8)
    y = fn(**{name: tf.constant(x)})["sr"].numpy()
    assert y.dtype == np.uint8 and y.shape == (2, 26, 42, 3)
    expected = to_uint8(tiny(x.astype("float32") / 255.0).numpy())
    assert np.abs(y.astype(int) - expected).max() <= 1  # float reassociation may flip a .5 rounding
    assert (y == expected).mean() > 0.99


def test_model_keras_loads_in_safe_mode_with_the_same_weights(tmp_path, tiny):
    out = export_model(tiny, 2, str(tmp_path / "exp"))
    loaded = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    x = np.random.default_rng(1).random((1, 9, 11, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), tiny(x).numpy(), atol=1e-6)


def test_previous_export_is_replaced_but_a_foreign_folder_is_refused(tmp_path, tiny):
    target = tmp_path / "exp"
    export_model(tiny, 2, str(target))
    other = srresnet(2, num_blocks=1, filters=8, bicubic_skip=True)
    export_model(other, 2, str(target))
    reloaded = keras.saving.load_model(str(target / "model.keras"))
    np.testing.assert_array_equal(reloaded.get_weights()[0], other.get_weights()[0])
    assert os.listdir(tmp_path) == ["exp"]

    foreign = tmp_path / "notmodel"
    foreign.mkdir()
    (foreign / "important.txt").write_text("keep")
    with pytest.raises(UserError, match="notmodel"):
        export_model(tiny, 2, str(foreign))
    assert os.listdir(foreign) == ["important.txt"] and (foreign / "important.txt").read_text() == "keep"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="afile"):
        export_model(tiny, 2, str(tmp_path / "afile"))


def test_wrong_scale_is_caught_before_writing(tmp_path, tiny):
    with pytest.raises(ValueError, match="x4"):
        export_model(tiny, 4, str(tmp_path / "exp"))
    assert not (tmp_path / "exp").exists()


def test_a_killed_export_is_recovered_and_its_leftovers_removed(tmp_path, tiny):
    target = tmp_path / "exp"
    export_model(tiny, 2, str(target))
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
    export_model(tiny, 2, str(target))
    assert sorted(os.listdir(tmp_path)) == [".other.tmp-999999", "exp"]
