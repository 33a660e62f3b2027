import json
import os

import keras
import numpy as np
import pytest

from sr_keras.archs.config import GeneratorConfig
from sr_keras.archs.models import srresnet
from sr_keras.archs.rrdb import rrdbnet
from sr_keras.cli import interpolate
from sr_keras.exports.interpolation import architecture_difference, interpolate as blend_models
from sr_keras.exports.savedmodel import export_model

TINY_RRDB = GeneratorConfig(2, arch="rrdbnet", num_blocks=1, filters=16, growth=8)


def randomised(model, seed):
    """The model with every weight random, BatchNorm moving statistics included (variances positive)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def weights_by_path(model):
    return {w.path: np.asarray(w) for w in model.weights}


def test_every_weight_including_bn_statistics_is_blended_exactly():
    a, b = randomised(srresnet(2, num_blocks=1, filters=8), 1), randomised(srresnet(2, num_blocks=1, filters=8), 2)
    wa, wb = weights_by_path(a), weights_by_path(b)
    out = weights_by_path(blend_models(a, b, 0.25))
    assert any("moving_variance" in p for p in out) and any("moving_mean" in p for p in out)
    assert out.keys() == wa.keys()
    for p in out:
        np.testing.assert_array_equal(out[p], np.float32(0.75) * wa[p] + np.float32(0.25) * wb[p], err_msg=p)
    for p, w in weights_by_path(a).items():  # the inputs are left alone
        np.testing.assert_array_equal(w, wa[p])


@pytest.mark.parametrize("alpha,side", [(0.0, "a"), (1.0, "b")])
def test_alpha_at_either_end_gives_that_model(alpha, side):
    a, b = randomised(rrdbnet(2, num_blocks=1, filters=8, growth=4), 1), randomised(
        rrdbnet(2, num_blocks=1, filters=8, growth=4), 2)
    expected = weights_by_path(a if side == "a" else b)
    out = blend_models(a, b, alpha)
    for p, w in weights_by_path(out).items():
        np.testing.assert_array_equal(w, expected[p], err_msg=p)
    x = np.random.default_rng(0).random((1, 6, 7, 3), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(out(x)), np.asarray((a if side == "a" else b)(x)))


def test_models_that_differ_only_in_upsampling_factor_are_not_one_architecture():
    # x2 and x3 RRDBNets hold weights of identical shapes: only the upsampling layer's size tells them apart
    difference = architecture_difference(rrdbnet(2, num_blocks=1, filters=8, growth=4),
                                         rrdbnet(3, num_blocks=1, filters=8, growth=4))
    assert difference == "layer 'up0_nearest' differs in size"


def test_cli_writes_the_blend_as_an_export(tmp_path, capsys):
    a = randomised(TINY_RRDB.build(), 1)
    export_model(a, str(tmp_path / "a"), TINY_RRDB)  # A: an export folder carrying generator.json
    b = randomised(TINY_RRDB.build(), 2)
    b.save(tmp_path / "b.keras")  # B: a bare .keras file
    interpolate.main([str(tmp_path / "a"), str(tmp_path / "b.keras"), "--alpha", "0.25", "--out", str(tmp_path / "ab")])
    assert {"saved_model.pb", "variables", "model.keras", "generator.json"} <= set(os.listdir(tmp_path / "ab"))
    with open(tmp_path / "ab" / "generator.json") as f:
        assert GeneratorConfig.from_dict(json.load(f)) == TINY_RRDB
    out = keras.saving.load_model(tmp_path / "ab" / "model.keras", compile=False, safe_mode=True)
    wa, wb = weights_by_path(a), weights_by_path(b)
    for p, w in weights_by_path(out).items():
        np.testing.assert_array_equal(w, np.float32(0.75) * wa[p] + np.float32(0.25) * wb[p], err_msg=p)
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'ab'}: 0.75 * ")


def test_bare_keras_files_get_their_config_from_the_layers(tmp_path):
    model = randomised(srresnet(3, num_blocks=2, filters=8, batch_norm=False, bicubic_skip=True), 3)
    model.save(tmp_path / "a.keras")
    interpolate.main([str(tmp_path / "a.keras"), str(tmp_path / "a.keras"), "--alpha", "0.5", "--out",
                      str(tmp_path / "aa")])
    with open(tmp_path / "aa" / "generator.json") as f:
        assert GeneratorConfig.from_dict(json.load(f)) == GeneratorConfig(3, num_blocks=2, filters=8, batch_norm=False,
                                                                          bicubic_skip=True)


def test_srresnet_and_rrdbnet_are_refused_and_nothing_is_written(tmp_path, capsys):
    srresnet(2, num_blocks=1, filters=16).save(tmp_path / "srresnet.keras")
    TINY_RRDB.build().save(tmp_path / "rrdb.keras")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SystemExit) as e:
        interpolate.main([str(tmp_path / "srresnet.keras"), str(tmp_path / "rrdb.keras"), "--alpha", "0.25",
                          "--out", str(tmp_path / "out" / "blend")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot interpolate ")
    assert f"'{tmp_path / 'srresnet.keras'}' and '{tmp_path / 'rrdb.keras'}': not the same architecture" in err
    assert sorted(os.listdir(tmp_path)) == before  # no --out, not even its parent or a temporary folder


@pytest.mark.parametrize("alpha", ["1.5", "-0.1", "nan", "half"])
def test_alpha_outside_the_unit_interval_is_refused(alpha, capsys):
    with pytest.raises(SystemExit) as e:
        interpolate.parse_args(["a", "b", "--alpha", alpha, "--out", "o"])
    assert e.value.code == 2
    assert f"argument --alpha: expected a number in [0, 1], got '{alpha}'" in capsys.readouterr().err


def test_help_states_the_range_of_alpha(capsys):
    with pytest.raises(SystemExit):
        interpolate.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "weight of B, in [0, 1]: 0 gives A, 1 gives B" in help_text and "(default: None)" not in help_text


def test_one_loader_for_two_models_names_each_as_its_argument(tmp_path, capsys):
    TINY_RRDB.build().save(tmp_path / "a.keras")
    (tmp_path / "b.keras").write_bytes(b"not a zip")
    with pytest.raises(SystemExit):
        interpolate.main([str(tmp_path / "a.keras"), str(tmp_path / "b.keras"), "--alpha", "0.5",
                          "--out", str(tmp_path / "out")])
    assert capsys.readouterr().err == f"error: B '{tmp_path / 'b.keras'}': cannot load {tmp_path / 'b.keras'}: " \
                                      "not a .keras archive (not a zip file)\n"

def test_out_that_is_a_file_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(SystemExit):
        interpolate.main([str(tmp_path / "missing_a.keras"), str(tmp_path / "missing_b.keras"), "--alpha", "0.5",
                          "--out", str(tmp_path / "taken")])
    assert capsys.readouterr().err.startswith("error: A '")  # A is checked first, then --out, then loading
    TINY_RRDB.build().save(tmp_path / "a.keras")
    with pytest.raises(SystemExit):
        interpolate.main([str(tmp_path / "a.keras"), str(tmp_path / "a.keras"), "--alpha", "0.5",
                          "--out", str(tmp_path / "taken")])
    assert capsys.readouterr().err == f"error: --out '{tmp_path / 'taken'}' is a file, not a folder: give a new or " \
                                      "empty folder, or a previous export\n"
