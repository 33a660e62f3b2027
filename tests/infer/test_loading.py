"""sr_keras.infer.loading: model names (saved_models/, then $SR_KERAS_MODELS, from any folder), the Keras
loader, generator.json, the one scale probe."""
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_keras.archs.config import GeneratorConfig
from sr_keras.core.errors import UserError
import sr_keras
from sr_keras.infer.loading import (ModelRef, known_models, load_generator_config, load_keras_model, probe_scale,
    resolve, resolve_model)

REPO_MODELS = Path(sr_keras.__file__).resolve().parent.parent / "saved_models"


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    """A $SR_KERAS_MODELS folder holding mine_x2.keras, an export-like folder named demo_x4 (shadowed by
    the repository's), a SavedModel folder, a folder that is no model and a hidden file."""
    folder = tmp_path / "user_models"
    folder.mkdir()
    (folder / "mine_x2.keras").write_bytes(b"")
    (folder / "demo_x4").mkdir()
    (folder / "demo_x4" / "model.keras").write_bytes(b"")
    (folder / "served").mkdir()
    (folder / "served" / "saved_model.pb").write_bytes(b"")
    (folder / "notes").mkdir()
    (folder / ".tmp-1-hidden.keras").write_bytes(b"")
    monkeypatch.setenv("SR_KERAS_MODELS", str(folder))
    monkeypatch.chdir(tmp_path)  # not the repository: names must not depend on the working directory
    return folder


def test_names_resolve_in_saved_models_first_then_the_user_folder(user_models):
    assert resolve_model("demo_x4") == str(REPO_MODELS / "demo_x4")
    assert resolve_model("mine_x2") == str(user_models / "mine_x2.keras")
    assert resolve_model("served") == str(user_models / "served")
    known = known_models()  # saved_models/ may hold more models than the demo
    assert (known["demo_x4"], known["mine_x2"]) == (str(REPO_MODELS / "demo_x4"), str(user_models / "mine_x2.keras"))
    assert known["served"] == str(user_models / "served")
    assert "notes" not in known and not [n for n in known if n.startswith(".")]


def test_a_name_is_not_shadowed_by_the_working_directory_but_a_path_is_used_as_given(user_models, tmp_path):
    (tmp_path / "demo_x4").mkdir()  # a folder of that name in the working directory (planted or not)
    (tmp_path / "demo_x4" / "saved_model.pb").write_bytes(b"")
    assert resolve_model("demo_x4") == str(REPO_MODELS / "demo_x4")  # the shipped model, from any folder
    assert resolve_model("./demo_x4") == "./demo_x4"  # a path names the folder
    assert resolve_model(str(tmp_path / "demo_x4")) == str(tmp_path / "demo_x4")
    (tmp_path / "mine.keras").write_bytes(b"")  # a bare name that is no known model is a path
    assert resolve_model("mine.keras") == "mine.keras"
    assert resolve_model(tmp_path / "user_models" / "notes") == str(tmp_path / "user_models" / "notes")


@pytest.mark.parametrize("given", ["srresnet_x5", "notes", "sub/demo_x4", ""])
def test_an_unknown_name_is_one_line_listing_the_known_names(user_models, given):
    with pytest.raises(UserError) as e:
        resolve_model(given)
    text = str(e.value)
    assert e.value.argument == "model" and text.startswith(f"model '{given}' not found") and "\n" not in text
    assert f"(known names: {', '.join(known_models())})" in text
    assert {"demo_x4", "mine_x2", "served"} <= set(known_models())


def test_without_the_user_folder_only_saved_models_names_are_known(monkeypatch, tmp_path):
    monkeypatch.delenv("SR_KERAS_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert "demo_x4" in known_models() and "mine_x2" not in known_models()
    with pytest.raises(UserError, match="known names: .*demo_x4"):
        resolve_model("mine_x2")


def test_load_keras_model_by_name_and_probe_its_scale(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    model = load_keras_model("demo_x4")
    assert model.name == "srresnet_x4"
    assert probe_scale(lambda x: model(x, training=False), "demo_x4") == 4


def test_load_keras_model_errors_name_the_model_and_path(tmp_path):
    (tmp_path / "weights.h5").write_bytes(b"x")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    for name, needle in [("weights.h5", "neither a .keras file nor an export folder"),
                         ("broken.keras", "not a .keras archive"), ("sm", "a folder without model.keras")]:
        with pytest.raises(UserError) as e:
            load_keras_model(str(tmp_path / name))
        assert str(e.value).startswith(f"model '{tmp_path / name}'") and needle in str(e.value)


def test_generator_config_comes_from_generator_json_or_is_none(tmp_path):
    (tmp_path / "exp").mkdir()
    assert load_generator_config(tmp_path / "exp") is None  # an export written before generator.json
    config = GeneratorConfig(3, num_blocks=2, filters=16, batch_norm=False)
    (tmp_path / "exp" / "generator.json").write_text(config.to_json())
    assert load_generator_config(tmp_path / "exp") == config
    assert load_generator_config(tmp_path / "exp" / "model.keras") == config
    assert load_generator_config(tmp_path / "exp" / "other.keras") is None
    (tmp_path / "exp" / "generator.json").write_text("{not json")
    with pytest.raises(UserError, match=r"cannot read the generator config '.*exp/generator\.json'"):
        load_generator_config(tmp_path / "exp")


def _upscales(s, channels=3):
    """An image function that repeats each pixel s x s times (and keeps `channels` channels)."""
    return lambda x: np.repeat(np.repeat(x, s, axis=1), s, axis=2)[..., :1].repeat(channels, axis=3)


def _returns(shape):
    return lambda x: np.zeros(shape, np.float32)


@pytest.mark.parametrize("fn,scale", [(_upscales(2), 2), (_upscales(3), 3), (_upscales(4), 4), (lambda x: x, 1)])
def test_probe_scale_reads_the_integer_factor(fn, scale):
    assert probe_scale(fn, "m") == scale


def test_probe_scale_refuses_another_channel_count():
    with pytest.raises(UserError) as e:
        probe_scale(_upscales(2, channels=1), "path/m.keras")
    assert str(e.value) == "model 'path/m.keras' is not an RGB upscaler: an 8x8 image came back (16, 16, 1)"


@pytest.mark.parametrize("fn,seen", [
    (_returns((1, 12, 12, 3)), "8x8 -> 12x12 and 8x12 -> 12x12; a fixed output size"),
    (lambda x: np.zeros((1, 12, x.shape[2] * 3 // 2, 3)), "8x8 -> 12x12 and 8x12 -> 12x18"),  # x1.5
    (lambda x: np.zeros((1, 2 * x.shape[2], 2 * x.shape[1], 3)), "8x8 -> 16x16 and 8x12 -> 24x16"),  # transposed
    (_returns((1, 4, 4, 3)), "8x8 -> 4x4 and 8x12 -> 4x4; a fixed output size"),
    (_returns((1, 64, 64, 3)), "8x8 -> 64x64 and 8x12 -> 64x64; a fixed output size"),  # x8 only for 8x8
])
def test_probe_scale_refuses_what_is_not_an_integer_upscaler(fn, seen):
    with pytest.raises(UserError) as e:
        probe_scale(fn, "path/m.keras")
    assert str(e.value) == f"model 'path/m.keras' is not an upscaler at an integer scale: {seen}"


@pytest.mark.parametrize("fn,shown", [(_returns((1, 10)), "[N, 10]"), (_returns((16, 16, 3)), "[N, 16, 3]"),
                                      (_returns((2, 16, 16, 3)), "[N, 16, 16, 3]")])
def test_probe_scale_names_a_model_that_returns_no_image_batch(fn, shown):
    # a classifier's logits, an unbatched image, two images for one: none is an image-to-image model
    with pytest.raises(UserError) as e:
        probe_scale(fn, "cls.keras")
    assert str(e.value) == f"model 'cls.keras': not an image-to-image model (its output is {shown})"


def test_probe_scale_lets_a_refusal_of_the_model_through():
    def refuses(x):
        raise UserError("'nan.keras': model output is not finite (NaN or inf); nothing is written", argument="model")

    with pytest.raises(UserError, match=r"^model 'nan.keras': model output is not finite"):
        probe_scale(refuses, "nan.keras")


def test_probe_scale_names_the_model_when_it_fails_on_the_input():
    def fixed_size(x):
        raise ValueError("Input 0 of layer is incompatible: expected shape=(None, 48, 48, 3)\nmore")

    with pytest.raises(UserError) as e:
        probe_scale(fixed_size, "d.keras")
    assert str(e.value) == ("model 'd.keras' cannot upscale an 8x8 RGB image: Input 0 of layer is incompatible: "
                            "expected shape=(None, 48, 48, 3)")


def test_resolve_checks_only_a_savedmodel_folder_without_model_keras(user_models):
    folder = user_models
    assert resolve("mine_x2").path == str(folder / "mine_x2.keras") and not resolve("mine_x2").checked
    assert resolve("demo_x4").kind == "export"  # model.keras is preferred: loaded in safe mode, not run
    # a SavedModel without model.keras: refused unless vouched for, then its graph is checked all the same
    with pytest.raises(UserError, match=r"^model '.*served': refused: a SavedModel without model.keras "
                                        r"is a program .* pass trust_model=True if you wrote this model yourself$"):
        resolve("served")
    # "served" holds an empty saved_model.pb: parsed, it has no object graph (a TF1 SavedModel)
    with pytest.raises(UserError, match=r"^model '.*served': refused: it is a TF1 SavedModel"):
        resolve("served", trust_model=True)


def test_resolve_gives_one_model_ref_naming_the_kind_the_loaders_dispatch_on(user_models):
    (user_models / "lite.tflite").write_bytes(b"")
    kinds = {given: resolve(given) for given in ("mine_x2", "demo_x4", "lite", str(user_models / "notes"))}
    assert kinds["mine_x2"] == ModelRef(str(user_models / "mine_x2.keras"), "mine_x2", "keras")
    assert [ref.kind for ref in kinds.values()] == ["keras", "export", "tflite", "other"]
    assert not any(ref.checked for ref in kinds.values())  # nothing to check: their loaders check them
    assert all(resolve(ref) is ref for ref in kinds.values())  # a ModelRef is not resolved again


def test_a_savedmodel_ref_is_checked_by_resolve_and_no_hand_made_ref_skips_the_check(user_models):
    unchecked = resolve("served", check=False)
    assert (unchecked.kind, unchecked.checked) == ("savedmodel", False)
    # the check resolve runs at once, or on the unchecked ModelRef later: the same messages either way
    for given in ("served", unchecked, ModelRef(str(user_models / "served"), "served", "savedmodel")):
        with pytest.raises(UserError, match=r"^model '.*served': refused: a SavedModel without model.keras"):
            resolve(given)
        with pytest.raises(UserError, match=r"^model '.*served': refused: it is a TF1 SavedModel"):
            resolve(given, trust_model=True)
    with pytest.raises(TypeError):
        ModelRef(str(user_models / "served"), "served", "savedmodel", True)  # only resolve marks one checked


def _export_with_config(tmp_path, text):
    folder = tmp_path / "exp"
    folder.mkdir(exist_ok=True)
    (folder / "generator.json").write_text(text)
    return folder


@pytest.mark.parametrize("text,needle", [
    ("[" * 200000 + "]" * 200000, "over 64 kB"),  # refused unread: parsing it would recurse 200,000 deep
    ("[" * 30000 + "]" * 30000, "nested too deeply"),  # under the size limit, over the parser's depth
    ('{"scale": 4, "num_blocks": 100000000}', r"num_blocks must be in 1\.\.100"),
    ('{"scale": 4, "filters": -8}', r"filters must be in 1\.\.512"),
    ('{"scale": 4, "growth": 0}', r"growth must be in 1\.\.256"),
    ('{"scale": "4"}', "'scale' must be of type int"),
    ('{"scale": true}', "'scale' must be of type int"),
    ('{"scale": 4.0}', "'scale' must be of type int"),
    ('{"scale": 4, "batch_norm": 1}', "'batch_norm' must be of type bool"),
    ('{"scale": 4, "arch": ["srresnet"]}', "'arch' must be of type str"),
    ('{"scale": 4, "arch": "unet"}', "arch must be one of"),
    ('{"scale": 5}', r"scale must be one of \(2, 3, 4, 8\)"),
    ('{"scale": 4, "blocks": {"num_blocks": 3}}', "unknown generator config keys \\['blocks'\\]"),
    ('{"num_blocks": 3}', "no 'scale' key"),
    ("[4]", "a generator config is a JSON object"),
    ('"x4"', "a generator config is a JSON object"),
])
def test_a_hostile_generator_json_is_refused_in_one_line_before_anything_is_built(tmp_path, monkeypatch, text, needle):
    def build(self):
        raise AssertionError("a generator was built from a refused config")

    monkeypatch.setattr(GeneratorConfig, "build", build)
    folder = _export_with_config(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_generator_config(folder)
    message = str(e.value)
    assert message.startswith(f"cannot read the generator config '{folder / 'generator.json'}': ")
    assert re.search(needle, message) and "\n" not in message and len(message) < 300


def test_the_export_and_upscale_commands_refuse_a_hostile_generator_json(tmp_path, capsys):
    from sr_keras.cli import export as export_cli
    from sr_keras.cli import upscale as upscale_cli

    folder = tmp_path / "gj"
    shutil.copytree(REPO_MODELS / "demo_x4", folder)
    (folder / "generator.json").write_text('{"scale": 4, "num_blocks": 100000000, "filters": 32}')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    for main, argv in [(export_cli.main, [str(folder), "--format", "savedmodel", "--out", str(tmp_path / "o")]),
                       (upscale_cli.main, ["--model", str(folder), str(tmp_path / "a.png"),
                                           "--out", str(tmp_path / "u")])]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and "\n" not in err, err
        assert "generator.json': num_blocks must be in 1..100" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "u").exists()
