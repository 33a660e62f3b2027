"""TFLite export and loading: dynamic sizes, uint8 in/out within one level of the SavedModel, fp16, the
same tiler as upscale.py, and the op allowlist that refuses Flex/custom ops before anything runs."""
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.archs import models
from sr_keras.core.errors import UserError
from sr_keras.exports import tflite
from sr_keras.exports.savedmodel import serving_module
from sr_keras.infer import tflite_runner
from sr_keras.infer.inference import load_upscaler, upscale_image


@pytest.fixture(scope="module")
def generator():
    import keras

    keras.utils.set_random_seed(3)
    return models.srresnet(2, num_blocks=1, filters=8, bicubic_skip=True)


@pytest.fixture(scope="module")
def exported(generator, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    return str(tflite.export_tflite(generator, str(folder / "m.tflite"))), folder


def _interpreter(path):
    with open(path, "rb") as f:
        return tflite_runner._interpreter(f.read(), 1)


def test_a_resized_input_matches_the_savedmodel_within_one_level(generator, exported):
    path, folder = exported
    serving_module(generator).write_out(str(folder / "sm"), verbose=False)
    reference = tf.saved_model.load(str(folder / "sm")).signatures["serving_default"]
    x = np.random.default_rng(0).integers(0, 256, (1, 37, 53, 3), dtype=np.uint8)
    it = _interpreter(path)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape_signature"]) == [-1, -1, -1, 3] and inp["dtype"] == np.uint8 and out["dtype"] == np.uint8
    it.resize_tensor_input(inp["index"], [1, 37, 53, 3])
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    got = it.get_tensor(out["index"]).astype(int)
    want = reference(images=tf.constant(x))["sr"].numpy().astype(int)
    assert got.shape == (1, 74, 106, 3) and np.abs(got - want).max() <= 1


def test_fp16_roughly_halves_the_file(tmp_path):
    wide = models.srresnet(2, num_blocks=1, filters=32)  # weights, not the graph, dominate the file
    full = len(open(tflite.export_tflite(wide, str(tmp_path / "f.tflite")), "rb").read())
    half = len(open(tflite.export_tflite(wide, str(tmp_path / "h.tflite"), fp16=True), "rb").read())
    assert 0.45 * full < half < 0.6 * full


def test_upscale_runs_it_through_the_tiler_seamlessly_and_batched_tiles_change_nothing(exported):
    path, _ = exported
    upscaler = load_upscaler(path)
    assert upscaler.scale == 2 and upscaler.radius >= 2  # the bicubic skip alone reads 2 pixels each side
    img = np.random.default_rng(1).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    whole = upscale_image(upscaler, img, tile=0)
    assert np.array_equal(upscale_image(upscaler, img, tile=16, overlap=0), whole)
    assert np.array_equal(upscale_image(upscaler, img, tile=16, overlap=0, batch=4), whole)


def test_the_python_api_takes_a_tflite_path_and_the_upscaler_it_loaded(exported):
    import sr_keras

    path, _ = exported
    img = np.random.default_rng(2).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    want = upscale_image(load_upscaler(path), img, tile=0)
    assert np.array_equal(sr_keras.upscale(img, model=path), want)
    assert np.array_equal(sr_keras.upscale(img, model=sr_keras.load(path)), want)


def test_a_model_with_flex_file_ops_is_refused_before_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def writes_a_file(images):
        written = tf.io.write_file("pwned.txt", tf.strings.as_string(tf.shape(images)[0]))
        with tf.control_dependencies([written]):
            return tf.identity(images)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([writes_a_file.get_concrete_function()], writes_a_file)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    (tmp_path / "evil.tflite").write_bytes(converter.convert())
    with pytest.raises(UserError) as e:
        load_upscaler(str(tmp_path / "evil.tflite"))
    assert str(e.value).startswith("model '") and "evil.tflite' uses custom op 'Flex" in str(e.value)
    assert "\n" not in str(e.value) and not (tmp_path / "pwned.txt").exists()


def test_a_file_that_is_not_tflite_is_named_in_one_line(tmp_path):
    (tmp_path / "x.tflite").write_bytes(b"not a flatbuffer at all")
    with pytest.raises(UserError, match=r"^model '.*x\.tflite': cannot read the TFLite model: not a TFLite model"):
        load_upscaler(str(tmp_path / "x.tflite"))


def test_operator_names_reads_the_flatbuffer(exported):
    path, _ = exported
    names = tflite_runner.operator_names(open(path, "rb").read())
    assert {"CONV_2D", "DEPTH_TO_SPACE", "CAST", "ROUND"} <= set(names)
    assert set(names) <= set(tflite_runner.ALLOWED_OPS.values())


def _resize_tflite(path, size):
    """A .tflite of allowed ops only (SHAPE, STRIDED_SLICE, MUL, ...) that resizes its input to size(h_w)."""
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(images):
        hw = tf.shape(images)[1:3]
        return {"sr": tf.cast(tf.image.resize(tf.cast(images, tf.float32), size(hw), method="nearest"), tf.uint8)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], None)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    data = converter.convert()
    assert set(tflite_runner.operator_names(data)) <= set(tflite_runner.ALLOWED_OPS.values())  # the op check passes it
    path.write_bytes(data)
    return str(path)


def test_a_tflite_asking_for_a_huge_output_is_refused_and_the_interpreter_never_crashes_this_process(tmp_path):
    # x40 on the probes: refused from the output's shape, before its bytes are taken
    x40 = _resize_tflite(tmp_path / "x40.tflite", lambda hw: hw * 40)
    with pytest.raises(UserError) as e:
        load_upscaler(x40)
    assert str(e.value) == (f"model '{x40}' cannot upscale an 8x8 RGB image: an input of 8x8 gave an output of "
                            "shape [1, 320, 320, 3], over x16 per side; refused unread")
    # x4 on the 8x8 and 8x12 probes, then 700,000 px a side at the 97x97 reach probe: LiteRT does not
    # check that allocation and segfaults; it does so in the child process, and this one reports it
    bomb = _resize_tflite(tmp_path / "bomb.tflite", lambda hw: hw * 4 + tf.maximum(hw - 90, 0) * 100000)
    with pytest.raises(UserError) as e:
        load_upscaler(bomb)
    text = str(e.value)
    # reported as every runtime's failure on the reach probe is (sr_keras.infer.reach.probe_reach)
    assert text.startswith(f"model '{bomb}' cannot upscale a 97x97 RGB image: the TFLite interpreter crashed "
                           "on an input of 97x97 (killed by signal ")
    assert "\n" not in text
    # this process is fine and runs the next model
    ok = load_upscaler(_resize_tflite(tmp_path / "x2.tflite", lambda hw: hw * 2))
    assert ok.scale == 2 and upscale_image(ok, np.zeros((5, 7, 3), np.uint8), tile=0).shape == (10, 14, 3)



def test_the_tflite_savedmodel_and_keras_upscalers_of_one_model_get_one_radius_from_one_probe(generator, exported,
                                                                                             tmp_path):
    import keras

    path, _ = exported
    serving_module(generator).write_out(str(tmp_path / "sm"), verbose=False)  # a SavedModel alone
    # a layer the graph reader does not know (identity when not training): the Keras upscaler is probed too
    inp = keras.Input((None, None, 3))
    keras.Model(inp, generator(keras.layers.GaussianNoise(0.1)(inp))).save(tmp_path / "unread.keras")
    lite, saved = load_upscaler(path), load_upscaler(str(tmp_path / "sm"), trust_model=True)
    unread = load_upscaler(str(tmp_path / "unread.keras"))
    assert lite.radius == saved.radius == unread.radius and not (lite.whole_image or unread.whole_image)
    # the probe (its measured reach, plus one) covers the radius read from the plain model's layer graph
    generator.save(tmp_path / "g.keras")
    graph = load_upscaler(str(tmp_path / "g.keras")).radius
    assert graph <= lite.radius <= graph + 1


def test_a_tflite_reaching_past_the_probe_runs_whole_pictures_as_a_savedmodel_does(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(images):  # every output pixel depends on the whole picture (its mean)
        x = tf.cast(images, tf.float32)
        x = 0.5 * x + 0.5 * tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        return {"sr": tf.cast(tf.image.resize(x, tf.shape(images)[1:3] * 2, method="nearest"), tf.uint8)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], None)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    (tmp_path / "mean.tflite").write_bytes(converter.convert())
    up = load_upscaler(str(tmp_path / "mean.tflite"))
    assert up.scale == 2 and up.radius is None and up.whole_image
    lr = np.random.default_rng(3).integers(0, 256, (120, 110, 3), dtype=np.uint8)  # wider than twice the probe
    np.testing.assert_array_equal(upscale_image(up, lr, tile=8), upscale_image(up, lr, tile=0))
