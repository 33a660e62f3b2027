"""sr_keras.api: load and upscale by model name, from arrays, paths and PIL images, as upscale.py does."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image

from sr_keras import api
from sr_keras.cli import upscale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(skimage.data.chelsea()[100:130, 150:190])  # 30x40 RGB


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: model names must still resolve
    return tmp_path


def _upscale_py(path, out_dir, tile):
    """What `upscale.py --model demo_x4 PATH` writes (it exits only on an error)."""
    upscale.main(["--model", "demo_x4", str(path), "--out", str(out_dir), "--tile", str(tile)])
    return np.asarray(Image.open(out_dir / f"{path.stem}_x4.png"))


@pytest.mark.parametrize("tile", [12, 0])
def test_upscale_of_an_array_equals_upscale_py_for_the_same_image(elsewhere, photo, tile):
    Image.fromarray(photo).save(elsewhere / "cat.png")
    want = _upscale_py(elsewhere / "cat.png", elsewhere / "out", tile)
    got = api.upscale(photo, model="demo_x4", tile=tile)
    assert got.dtype == np.uint8 and got.shape == (120, 160, 3)
    np.testing.assert_array_equal(got, want)


def test_paths_pil_images_grey_and_alpha_come_back_as_upscale_py_writes_them(elsewhere, photo):
    alpha = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    Image.fromarray(np.dstack([photo, alpha])).save(elsewhere / "rgba.png")
    Image.fromarray(photo).convert("L").save(elsewhere / "grey.png")
    for name, shape in (("rgba", (120, 160, 4)), ("grey", (120, 160))):
        want = _upscale_py(elsewhere / f"{name}.png", elsewhere / "out", 16)
        assert want.shape == shape
        np.testing.assert_array_equal(api.upscale(elsewhere / f"{name}.png", model="demo_x4", tile=16), want)
        np.testing.assert_array_equal(api.upscale(str(elsewhere / f"{name}.png"), model="demo_x4", tile=16), want)
        with Image.open(elsewhere / f"{name}.png") as im:
            np.testing.assert_array_equal(api.upscale(im, model="demo_x4", tile=16), want)
    grey = np.asarray(Image.open(elsewhere / "grey.png"))
    np.testing.assert_array_equal(api.upscale(grey, model="demo_x4", tile=16),
                                  _upscale_py(elsewhere / "grey.png", elsewhere / "out", 16))
    palette = Image.fromarray(photo).quantize(16)
    np.testing.assert_array_equal(api.upscale(palette, model="demo_x4", tile=16),
                                  api.upscale(np.asarray(palette.convert("RGB")), model="demo_x4", tile=16))


def test_load_resolves_names_from_anywhere_and_caches_per_model_file(elsewhere, monkeypatch):
    up = api.load("demo_x4")
    assert up.scale == 4 and api.load("demo_x4") is up
    mine = elsewhere / "models"
    shutil.copytree(os.path.join(ROOT, "saved_models", "demo_x4"), mine / "copy_x4")
    monkeypatch.setenv("SR_KERAS_MODELS", str(mine))
    copy = api.load("copy_x4")
    assert copy is not up and copy.scale == 4 and api.load(str(mine / "copy_x4")) is copy
    os.utime(mine / "copy_x4", ns=(1, 1))  # what re-exporting into the folder does to it: a new folder
    assert api.load("copy_x4") is not copy


def test_upscale_takes_the_upscaler_load_returned(elsewhere, photo):
    up = api.load("demo_x4")
    assert api.load(up) is up
    assert np.array_equal(api.upscale(photo, model=up), api.upscale(photo, model="demo_x4"))


def test_load_keeps_a_tf_log_level_the_user_set(elsewhere, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    api.load("demo_x4")
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_the_api_hides_tensorflow_s_start_up_noise_and_passes_the_rest_on(tmp_path):
    # what a user's script prints: no absl banner, oneDNN or CUDA lines, its own stderr kept
    code = ("import sys, numpy as np, sr_keras\n"
            "print('mine before', file=sys.stderr, flush=True)\n"
            "up = sr_keras.load('srresnet_x2')\n"
            "out = sr_keras.upscale(np.zeros((10, 12, 3), np.uint8), model=up)\n"
            "assert out.shape == (20, 24, 3), out.shape\n"
            "import os; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
            "print('mine after', file=sys.stderr)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
    assert proc.stdout.strip() == "2"  # set before TensorFlow was imported, as it was not set
    for noise in ("cuInit", "cuda_diagnostics", "oneDNN custom operations", "absl::InitializeLog", "cudart_stub"):
        assert noise not in proc.stderr, proc.stderr
    assert proc.stderr.splitlines()[0] == "mine before" and "mine after" in proc.stderr


def test_bad_inputs_are_refused_clearly(elsewhere, photo):
    from sr_keras.core.errors import UserError

    with pytest.raises(UserError, match=r"^model 'srresnet_x5' not found.*known names: .*demo_x4"):
        api.upscale(photo, model="srresnet_x5")
    with pytest.raises(TypeError, match="Received: image=<class 'list'>"):
        api.upscale(photo.tolist(), model="demo_x4")
    with pytest.raises(ValueError, match=r"Received: shape=\(30, 40, 5\)"):
        api.upscale(np.zeros((30, 40, 5), np.uint8), model="demo_x4")
    with pytest.raises(UserError, match="cannot read image 'missing.png'"):
        api.upscale("missing.png", model="demo_x4")


def test_import_sr_keras_is_light_and_exposes_load_and_upscale(tmp_path):
    code = ("import sys, sr_keras; assert 'tensorflow' not in sys.modules, 'TensorFlow imported eagerly'; "
            "from sr_keras import api; assert sr_keras.load is api.load and sr_keras.upscale is api.upscale")
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.strip().splitlines()[-1:]
