"""sr_keras.infer.inference: loading (.keras, export folder, SavedModel only, old exports), exact tiling."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import tracemalloc
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from PIL import Image

from process_helpers import lines_until
from sr_keras.archs import models
from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import upscale as upscale_cli
from sr_keras.core.errors import UserError
from sr_keras.exports.savedmodel import export_model
from sr_keras.infer import inference, memory
from sr_keras.infer.inference import Upscaler, analyse, load_upscaler, receptive_radius, tile_side, upscale_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def textured(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    base = 128 + 60 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None]
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random x4 SRResNet as .keras and as a real export folder."""
    keras.utils.set_random_seed(0)
    model = models.srresnet(4, num_blocks=2, filters=16)
    root = tmp_path_factory.mktemp("inference")
    model.save(root / "m.keras")
    export_model(model, str(root / "export"), GeneratorConfig(4, num_blocks=2, filters=16))
    return model, root


def test_keras_file_loads_with_scale_and_radius(tiny):
    model, root = tiny
    up = load_upscaler(root / "m.keras")
    assert up.scale == 4
    # head 9x9 (4) + 2 blocks x two 3x3 (4) + body 3x3 (1) + up convs (1 + 1/2) + tail 9x9 at x4 (1)
    assert up.radius == 12
    lr = textured(20, 24)
    want = np.clip(np.round(model(lr[None].astype(np.float32) / 255.0).numpy()[0] * 255), 0, 255)
    assert np.abs(up(lr).astype(int) - want.astype(int)).max() <= 1


def test_export_folder_and_savedmodel_signature_agree(tiny):
    _, root = tiny
    sm_only = root / "sm_only"
    shutil.copytree(root / "export", sm_only)
    os.remove(sm_only / "model.keras")
    a, b, c = load_upscaler(root / "export"), load_upscaler(sm_only, trust_model=True), load_upscaler(root / "m.keras")
    # b's radius is measured by the impulse probe: what one changed pixel reaches, plus one
    assert a.radius == 12 and 12 <= b.radius <= 13 and b.scale == 4 and not b.whole_image
    assert a.config == b.config == GeneratorConfig(4, num_blocks=2, filters=16) and c.config is None
    lr = textured(18, 22, 1)
    outs = [u(lr).astype(int) for u in (a, b, c)]
    assert outs[0].shape == (72, 88, 3)
    assert np.abs(outs[0] - outs[1]).max() <= 1 and np.abs(outs[0] - outs[2]).max() <= 1


def test_an_export_written_before_generator_json_still_loads(tiny, tmp_path):
    _, root = tiny
    old = tmp_path / "old"
    shutil.copytree(root / "export", old)
    os.remove(old / "generator.json")
    up = load_upscaler(old)
    assert (up.scale, up.radius, up.config) == (4, 12, None)


def test_a_generator_json_that_contradicts_the_model_is_refused(tiny, tmp_path):
    _, root = tiny
    bad = tmp_path / "bad"
    shutil.copytree(root / "export", bad)
    (bad / "generator.json").write_text(GeneratorConfig(2, num_blocks=2, filters=16).to_json())
    with pytest.raises(UserError, match=r"upscales x4 but its generator.json says x2"):
        load_upscaler(bad)
    (bad / "generator.json").write_text('{"scale": 4, "layers": 3}')  # written by some other tool
    with pytest.raises(UserError, match=r"generator config '.*generator.json'.*layers"):
        load_upscaler(bad)


def test_receptive_radius_bounds_the_real_dependence(tiny):
    # One changed LR pixel may only change outputs within `radius` LR pixels of it (and does reach ~that far).
    model, _ = tiny
    r = receptive_radius(model)
    x = np.full((1, 41, 41, 3), 0.5, np.float32)
    y = x.copy()
    y[0, 20, 20] = 1.0
    diff = np.abs(model(y).numpy()[0] - model(x).numpy()[0]).max(axis=2) > 0
    rows, cols = np.nonzero(diff)
    reach = max(np.abs(rows // 4 - 20).max(), np.abs(cols // 4 - 20).max())
    assert r - 1 <= reach <= r
    assert receptive_radius(models.srresnet(4)) == 40


def _near_a_rounding_tie(model, lr):
    """Where the float output lies within 0.02 of a half level: there a last-bit difference of the float
    sums (another tile shape, another summation order) may flip the rounded level, margin or not."""
    y = model(lr[None].astype(np.float32) / 255.0).numpy()[0] * 255.0
    return np.abs(y - np.floor(y) - 0.5) < 0.02


@pytest.mark.parametrize("variant", ["srresnet", "demo-like"])
def test_tiled_equals_whole_image_exactly_and_one_pixel_less_margin_does_not(tiny, tmp_path, variant):
    model, root = tiny
    path = root / "m.keras"
    if variant == "demo-like":  # no BN, bicubic skip (BicubicUpsample pads at its own borders)
        path = tmp_path / "demo.keras"
        model = models.srresnet(4, num_blocks=1, filters=8, batch_norm=False, bicubic_skip=True)
        model.save(path)
    up = load_upscaler(path)
    lr = textured(70, 53, 2)
    whole = upscale_image(up, lr, tile=0)
    tiled = upscale_image(up, lr, tile=16, overlap=0)  # margin raised to the radius
    assert whole.shape == (280, 212, 3)
    # exact: every pixel equal, but for a rounding tie (none at all for the srresnet variant)
    ties = _near_a_rounding_tie(model, lr)
    assert ((tiled == whole) | ties).all() and (tiled != whole).sum() <= 2
    if variant == "srresnet":
        np.testing.assert_array_equal(tiled, whole)
    # guard: a margin one pixel short of the radius changes more pixels than the check above lets through
    up.radius -= 1
    assert (upscale_image(up, lr, tile=16, overlap=0) != whole).sum() > 2


def test_a_margin_below_the_radius_shows_seams(tiny):
    # Guards the test above: without the radius, 2 pixels of context are visibly not enough.
    _, root = tiny
    up = load_upscaler(root / "m.keras")
    lr = textured(48, 48, 3)
    whole = upscale_image(up, lr, tile=0).astype(int)
    up.radius = None
    assert np.abs(upscale_image(up, lr, tile=16, overlap=2).astype(int) - whole).max() > 1


def test_grey_and_16_bit(tiny):
    _, root = tiny
    up = load_upscaler(root / "m.keras")
    rgb = textured(20, 30, 4)
    grey8 = rgb[..., 1]
    out8 = upscale_image(up, grey8, tile=8)
    assert out8.shape == (80, 120) and out8.dtype == np.uint8
    rgb_out = upscale_image(up, np.repeat(grey8[..., None], 3, axis=2), tile=0).astype(np.float64)
    luma = rgb_out @ [0.299, 0.587, 0.114]
    assert np.abs(out8 - luma).max() <= 1.0
    grey16 = grey8.astype(np.uint16) * 257 + 100  # values between the 8-bit levels
    out16 = upscale_image(up, grey16, tile=8)
    assert out16.dtype == np.uint16 and out16.shape == (80, 120)
    assert (out16 % 257).any()  # real 16-bit output, not 8-bit levels scaled up
    assert np.abs(out16 / 257.0 - out8).max() < 3


def test_memory_stays_near_the_output_size(tiny):
    # Tiles go straight into one uint8 output: no float or full-size copies on the NumPy side.
    _, root = tiny
    up = load_upscaler(root / "m.keras")
    lr = textured(200, 200, 5)
    up(lr[:8, :8])  # warm up outside the measurement
    tracemalloc.start()
    out = upscale_image(up, lr, tile=32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (800, 800, 3)
    # one more full-size uint8 copy would be 2x, a float32 one 5x; one band, its tiles and the tiles'
    # model outputs add about half the output at this small size (measured 1.50x)
    assert peak < 1.75 * out.nbytes


@pytest.mark.parametrize("make,needle", [
    (lambda d: d / "missing", "not found"),
    (lambda d: d.mkdir() or d, "without model.keras"),
    (lambda d: (d.with_suffix(".h5").write_bytes(b"x"), d.with_suffix(".h5"))[1], "neither"),
    (lambda d: (d.with_suffix(".keras").write_bytes(b"not a zip"), d.with_suffix(".keras"))[1], "cannot load"),
])
def test_bad_model_paths_raise_user_error_naming_the_model_and_path(tmp_path, make, needle):
    path = make(tmp_path / "m")
    with pytest.raises(UserError) as e:
        load_upscaler(str(path))
    assert str(e.value).startswith(f"model '{path}'") and needle in str(e.value)
    assert "\n" not in str(e.value)


def test_tiles_shrink_to_the_memory_budget():
    full = SimpleNamespace(radius=40, act_bytes=4096.0, whole_image=False)  # the report's x4 SRResNet, see analyse()
    assert analyse(models.srresnet(4)) == (40, 4096.0)
    # (141 + 2 * 40)^2 LR pixels x 4 x 4096 B = 763 MiB <= 768 MiB
    assert tile_side(full, 256, 16, 768) == 141
    assert tile_side(full, 256, 16, 0) == 256  # no limit
    assert tile_side(full, 0, 16, 768) == 0  # one pass stays one pass
    assert tile_side(SimpleNamespace(radius=12, act_bytes=1024.0, whole_image=False), 256, 16, 768) == 256


def test_the_default_tile_is_as_large_as_the_memory_left_allows(monkeypatch):
    full = SimpleNamespace(radius=40, act_bytes=4096.0, whole_image=False)  # the report's x4 SRResNet
    monkeypatch.setattr(memory, "memory_left", lambda: 64 * 2 ** 30)
    assert memory.auto_tile_mb() == 4096  # a quarter of what is left, at most 4 GiB
    # the 300x199 photo: 4 x 4096 B x 300 x 199 = 933 MiB fits, so one pass (the old fixed
    # 256 under 768 MB cut it into 6 tiles of 141 + 2 x 40)
    assert tile_side(full, None, 16, "auto", (199, 300)) == 0
    # a larger picture: square tiles as large as 4 GiB allows, sqrt(4096 MiB / 16 KiB) = 512 a side
    assert tile_side(full, None, 16, "auto", (2000, 3000)) == 512 - 2 * 40
    assert tile_side(full, 128, 16, "auto", (2000, 3000)) == 128  # an explicit --tile stays the largest
    monkeypatch.setattr(memory, "memory_left", lambda: 2 * 2 ** 30)  # little left: a quarter of it
    assert memory.auto_tile_mb() == 512 and tile_side(full, None, 16, "auto", (199, 300)) == 181 - 2 * 40
    monkeypatch.setattr(memory, "memory_left", lambda: None)
    assert memory.auto_tile_mb() == memory.FALLBACK_TILE_MB
    # a model whose activation size is unknown (SavedModel, TFLite) keeps the fixed default side
    assert tile_side(SimpleNamespace(radius=8, act_bytes=None, whole_image=False), None, 16, "auto") == 256


def test_default_tiling_runs_a_picture_that_fits_in_one_call_and_bounds_a_larger_one(tiny, monkeypatch):
    _, root = tiny
    up = load_upscaler(root / "m.keras")
    calls = []
    run = up._run[np.dtype(np.uint8)]
    up._run[np.dtype(np.uint8)] = lambda x: calls.append(x.shape[1:3]) or run(x)
    lr = textured(60, 90)
    whole = upscale_image(up, lr, tile=0)
    calls.clear()
    assert np.array_equal(upscale_image(up, lr), whole) and calls == [(60, 90)]
    # a budget that holds a 60x60 window at most: smaller tiles, the same pixels
    monkeypatch.setattr(memory, "memory_left", lambda: 4 * memory.ACT_OVERHEAD * up.act_bytes * 60 * 60)
    monkeypatch.setattr(memory, "AUTO_TILE_MB", (0, 4096))
    calls.clear()
    assert np.array_equal(upscale_image(up, lr), whole)
    assert len(calls) > 1 and all(h * w <= 60 * 60 for h, w in calls)


def _x4_savedmodel(path, batch, serve_fn):
    """A tiny x4 uint8 SavedModel whose signature takes `batch` images per call (None: any number)."""
    import tensorflow as tf

    class Model(tf.Module):
        def __init__(self):
            self.k = tf.Variable(np.random.default_rng(0).random((3, 3, 3, 48), np.float32) / 27.0)

        @tf.function(input_signature=[tf.TensorSpec([batch, None, None, 3], tf.uint8, name="images")])
        def serve(self, images):
            x = tf.nn.conv2d(serve_fn(tf.cast(images, tf.float32) / 255.0), self.k, 1, "SAME")
            return {"sr": tf.cast(tf.clip_by_value(tf.round(tf.nn.depth_to_space(x, 4) * 255.0), 0, 255), tf.uint8)}

    m = Model()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return str(path)


def test_a_savedmodel_fixed_to_one_image_per_batch_is_probed_and_tiled(tmp_path):
    fixed = load_upscaler(_x4_savedmodel(tmp_path / "batch1", 1, lambda x: x), trust_model=True)
    free = load_upscaler(_x4_savedmodel(tmp_path / "any", None, lambda x: x), trust_model=True)
    # one 3x3 conv: each output pixel depends on 1 LR pixel each side, +1 for the probe's rounding margin
    assert fixed.scale == free.scale == 4 and fixed.radius == free.radius == 2
    lr = textured(21, 17)
    whole = upscale_image(free, lr, tile=0)
    for batch in (1, 4):  # four tiles per model call go through the fixed signature one at a time
        np.testing.assert_array_equal(upscale_image(fixed, lr, tile=8, overlap=0, batch=batch), whole)


def test_a_savedmodel_failing_on_the_reach_probe_is_refused_in_one_line(tmp_path):
    import tensorflow as tf

    # even sizes only: 8x8 and 8x12 (the scale probe) pass, the 97x97 reach probe does not
    path = _x4_savedmodel(tmp_path / "even", None, lambda x: tf.nn.depth_to_space(tf.nn.space_to_depth(x, 2), 2))
    with pytest.raises(UserError) as e:
        load_upscaler(path, trust_model=True)
    text = str(e.value)
    assert text.startswith(f"model '{path}' cannot upscale a 97x97 RGB image: ") and "\n" not in text


def _fake_upscaler(run):
    """An Upscaler around a NumPy function (uint8 batch -> batch), as a model's call would be."""
    return Upscaler("fake.keras", run, run)


def _x4(x):
    return np.repeat(np.repeat(x, 4, axis=1), 4, axis=2)


@pytest.mark.parametrize("run,came_back", [
    (lambda x: _x4(x) if x.shape[1] <= 20 else np.repeat(np.repeat(x, 2, axis=1), 2, axis=2), "1x60x60x3"),  # x2
    (lambda x: _x4(x) if x.shape[1] <= 20 else np.concatenate([_x4(x), _x4(x)[..., :1]], axis=3), "1x120x120x4"),
    (lambda x: _x4(x)[:1], None),  # drops batch items: 1 image back for 2
])
def test_every_call_s_output_shape_is_checked(run, came_back):
    up = _fake_upscaler(run)
    assert up.scale == 4  # the 8x8 and 8x12 probes pass
    lr = textured(30, 30)
    with pytest.raises(UserError) as e:
        upscale_image(up, lr, tile=16, overlap=0, batch=2) if came_back is None else upscale_image(up, lr, tile=0)
    text = str(e.value)
    assert text.startswith("model 'fake.keras': ") and "nothing of it is written" in text and "\n" not in text
    assert (came_back or "1x") in text and "x4" in text


def _size_switch_savedmodel(path):
    """x4 up to 20 px high, x2 above (tf.cond on the input's size): passes the probes, not a photo."""
    import tensorflow as tf

    class SizeSwitch(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
        def serve(self, images):
            s = tf.shape(images)
            x = tf.cast(images, tf.float32)
            y = tf.cond(s[1] > 100, lambda: tf.image.resize(x, s[1:3] * 2, method="nearest"),
                        lambda: tf.image.resize(x, s[1:3] * 4, method="nearest"))
            return {"sr": tf.cast(y, tf.uint8)}

    m = SizeSwitch()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    return str(path)


def test_upscale_py_names_each_file_whose_output_has_the_wrong_size_and_writes_none_of_it(tmp_path, capsys):
    model = _size_switch_savedmodel(tmp_path / "switch")
    Image.fromarray(textured(120, 130)).save(tmp_path / "big.png")
    Image.fromarray(textured(24, 32)).save(tmp_path / "small.png")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        upscale_cli.main(["--trust-model", "--model", model, "--tile", "0", str(tmp_path / "big.png"),
                          str(tmp_path / "small.png"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 2 and "big.png" in lines[0] and "came back as 1x240x260x3" in lines[0]
    assert lines[1].startswith("error: 1 input(s) failed: ")
    assert sorted(os.listdir(tmp_path / "out")) == ["small_x4.png"]  # no output, partial or not, for big.png


def test_a_model_call_that_loops_still_ends_on_sigterm(tmp_path):
    # TensorFlow's C++ runtime runs no Python signal handler: a graph that loops would ignore SIGTERM
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent("""
        import sys
        import tensorflow as tf
        from sr_keras.core.errors import cli_entry
        from sr_keras.infer.inference import interruptible

        @tf.function(input_signature=[])
        def count():
            with tf.control_dependencies([tf.print("in-graph", output_stream=sys.stdout)]):
                return tf.while_loop(lambda i: i < 2147483647, lambda i: i + 1, [tf.constant(0)])[0]

        cli_entry(lambda: interruptible(count))()
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"})
    try:
        lines_until(proc, "in-graph", timeout_s=240)  # the loop is running in TensorFlow now
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert code == 128 + signal.SIGTERM and "terminated" in err and "Traceback" not in err


def test_whole_image_inference_beyond_the_memory_left_is_the_one_line_out_of_memory_error(tiny, tmp_path,
                                                                                           monkeypatch, capsys):
    # TensorFlow aborts (std::bad_alloc) under a memory limit instead of raising: the need is checked first
    _, root = tiny
    up = load_upscaler(root / "m.keras")
    calls = []
    run = up._run[np.dtype(np.uint8)]
    up._run[np.dtype(np.uint8)] = lambda x: calls.append(x.shape) or run(x)
    left = 200 * 2 ** 20
    monkeypatch.setattr(memory, "memory_left", lambda: left)
    need = inference.ACT_OVERHEAD * up.act_bytes * 400 * 300  # 400x300 in one pass
    assert need > left
    with pytest.raises(MemoryError, match=r"one model call on 1 400x300 tile\(s\) needs about .* GiB"):
        upscale_image(up, textured(400, 300), tile=0)
    assert calls == []  # refused before the model ran
    assert upscale_image(up, textured(40, 30), tile=0).shape == (160, 120, 3)  # what fits still runs
    Image.fromarray(textured(400, 300)).save(tmp_path / "huge.png")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        upscale_cli.main(["--model", str(root / "m.keras"), "--tile", "0", str(tmp_path / "huge.png"),
                          "--out", str(tmp_path / "out")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert exit_.value.code == 2 and err[0].startswith(f"error: out of memory on '{tmp_path / 'huge.png'}' (300x400)")
    assert "Traceback" not in "".join(err) and not (tmp_path / "out").exists()


def test_memory_left_reads_the_address_space_limit(monkeypatch):
    import resource

    mapped = memory.memory_left()
    assert mapped is None or mapped > 0
    monkeypatch.setattr(resource, "getrlimit", lambda which: (2 ** 20, resource.RLIM_INFINITY))  # 1 MiB: spent
    assert memory.memory_left() == 0


def test_model_cache_loads_a_file_once_and_again_after_it_is_replaced(tmp_path, monkeypatch):
    from sr_keras.infer import inference

    path = str(tmp_path / "m.keras")
    models.srresnet(2, num_blocks=1, filters=4).save(path)
    loads = []
    real = inference.load_upscaler
    monkeypatch.setattr(inference, "load_upscaler", lambda *a, **k: loads.append(a) or real(*a, **k))
    cache = inference.ModelCache()
    first = cache.get(path)
    assert cache.get(path) is first and len(loads) == 1
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 10**9))  # a re-export: a new modification time
    assert cache.get(path) is not first and len(loads) == 2
    assert cache.get(path, trust_model=True) is not first and len(loads) == 3  # trust is part of the key
