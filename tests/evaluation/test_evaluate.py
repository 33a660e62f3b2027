"""evaluate.py and sr_keras.evaluation.benchmark: folder mode on real photographs against an independent
scorer, output files, curves, errors; hostile inputs (--out under a file, per-image model failures, a full
disk, bombs, float images)."""
import csv
import errno
import io
import json
import os
import shutil
import struct
import zlib

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sr_keras.archs import models
from sr_keras.cli import evaluate
from sr_keras.evaluation import benchmark, figures, scoring, tensorboard


# ---- an independent scorer (the SPEC's convention written out again, not sr_keras.evaluation.metrics)
def y_of(rgb):
    x = rgb.astype(np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def ref_score(sr, hr, s):
    a, b = y_of(sr)[s:-s, s:-s], y_of(hr)[s:-s, s:-s]
    return (peak_signal_noise_ratio(b, a, data_range=255.0),
            structural_similarity(b, a, data_range=255.0, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False))


def pil_down(hr, s):
    h, w = hr.shape[0] // s * s, hr.shape[1] // s * s
    return np.asarray(Image.fromarray(hr[:h, :w]).resize((w // s, h // s), Image.BICUBIC))


def pil_up(lr, s):
    return np.asarray(Image.fromarray(lr).resize((lr.shape[1] * s, lr.shape[0] * s), Image.BICUBIC))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    keras.utils.set_random_seed(2)
    model = models.srresnet(4, num_blocks=2, filters=16)
    path = tmp_path_factory.mktemp("evaluate") / "tiny.keras"
    model.save(path)
    return model, str(path)


def model_sr(model, lr):
    y = model(lr[None].astype(np.float32) / 255.0).numpy()[0]
    return np.clip(np.round(y * 255.0), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """HR crops of three scikit-image photographs; one size is not a multiple of 4."""
    root = tmp_path_factory.mktemp("photos")
    hr_dir = root / "hr"
    hr_dir.mkdir()
    crops = {"astronaut": skimage.data.astronaut()[40:112, 180:276],
             "coffee": skimage.data.coffee()[150:222, 200:298],
             "chelsea": skimage.data.chelsea()[80:155, 120:216]}
    for name, im in crops.items():
        Image.fromarray(np.ascontiguousarray(im)).save(hr_dir / f"{name}.png")
    return hr_dir


def run(argv, capsys):
    code = 0
    try:
        evaluate.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_folder_mode_with_lr_dir_matches_independent_scores(tmp_path, photos, tiny, capsys):
    model, path = tiny
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    for f in sorted(photos.iterdir()):
        # DIV2K names LR files 0801x4.png; plain same-stem names must match too
        name = f"{f.stem}x4.png" if f.stem == "coffee" else f.name
        Image.fromarray(pil_down(np.asarray(Image.open(f)), 4)).save(lr_dir / name)
    out = tmp_path / "ev"
    code, stdout, err = run(["--hr-dir", str(photos), "--lr-dir", str(lr_dir), "--scale", "4",
                             "--model", f"tiny={path}", "--out", str(out)], capsys)
    assert code == 0, err

    doc = json.loads((out / "results.json").read_text())
    assert set(doc) == {"protocol", "metrics", "degradation", "rows"} and doc["protocol"] == "full"
    assert doc["degradation"] is None and doc["metrics"] == ["psnr", "ssim", "niqe"]
    assert [r["model"] for r in doc["rows"]] == ["bicubic", "tiny", "HR"]
    for r in doc["rows"]:
        assert set(r) == {"model", "track", "scale", "psnr", "ssim", "niqe", "images"}
        assert r["track"] is None and r["scale"] == 4 and r["images"] == 3
        assert r["niqe"] is None  # every crop is smaller than NIQE's 96x96 block
    assert "note: no NIQE for 3 image(s)" in err
    hr_row = doc["rows"].pop()
    assert hr_row["psnr"] is None and hr_row["ssim"] is None
    ref = {"bicubic": [], "tiny": []}
    for f in sorted(photos.iterdir()):
        hr = np.asarray(Image.open(f))
        lr = pil_down(hr, 4)
        hr = hr[:lr.shape[0] * 4, :lr.shape[1] * 4]
        ref["bicubic"].append(ref_score(pil_up(lr, 4), hr, 4))
        ref["tiny"].append(ref_score(model_sr(model, lr), hr, 4))
    for r in doc["rows"]:
        p, s = np.mean(ref[r["model"]], axis=0)
        assert r["psnr"] == pytest.approx(p, abs=0.01) and r["ssim"] == pytest.approx(s, abs=0.001)

    per_image = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(per_image) == 9 and {r["image"] for r in per_image} == {"astronaut", "chelsea", "coffee"}
    assert {r["track"] for r in per_image} == {"x4"} and {r["niqe"] for r in per_image} == {""}
    summary = list(csv.DictReader((out / "results.csv").open()))
    assert [r["model"] for r in summary] == ["bicubic", "tiny", "HR"] and summary[0]["images"] == "3"
    assert summary[0]["track"] == "x4"
    md = (out / "results.md").read_text()
    assert "| model | x4 |" in md and "\n| |" not in md
    assert f"| bicubic | {doc['rows'][0]['psnr']:.2f}/{doc['rows'][0]['ssim']:.4f}/- |" in md
    assert "| HR | -/-/- |" in md
    figs = sorted(os.listdir(out / "figures"))
    assert figs == ["x4_astronaut.png", "x4_chelsea.png", "x4_coffee.png"]
    assert Image.open(out / "figures" / figs[0]).size[0] > 400


def degraded(lr, name, sigma, quality):
    """--degrade noise=sigma,jpeg=quality written out again: colour Gaussian noise from a generator seeded
    by crc32 of the image name, rounded and clipped, then a Pillow JPEG round trip."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    noisy = np.clip(np.round(lr + rng.normal(0.0, sigma, lr.shape)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def test_degrade_scores_noisy_jpeg_lr_against_clean_hr_and_records_it(tmp_path, photos, tiny, capsys):
    model, path = tiny
    out = tmp_path / "ev"
    code, stdout, err = run(["--hr-dir", str(photos), "--scale", "4", "--model", f"tiny={path}",
                             "--degrade", "noise=5,jpeg=75", "--figures", "1", "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["degradation"] == {"noise": 5.0, "jpeg": 75, "spec": "noise=5,jpeg=75"}
    ref, clean = {"bicubic": [], "tiny": []}, []
    for f in sorted(photos.iterdir()):
        hr = np.asarray(Image.open(f))
        lr = degraded(pil_down(hr, 4), f.stem, 5.0, 75)
        hr = hr[:lr.shape[0] * 4, :lr.shape[1] * 4]
        ref["bicubic"].append(ref_score(pil_up(lr, 4), hr, 4))
        ref["tiny"].append(ref_score(model_sr(model, lr), hr, 4))
        clean.append(ref_score(pil_up(pil_down(hr, 4), 4), hr, 4)[0])
    for r in doc["rows"][:2]:
        p, s = np.mean(ref[r["model"]], axis=0)
        assert r["psnr"] == pytest.approx(p, abs=0.01) and r["ssim"] == pytest.approx(s, abs=0.001)
    assert doc["rows"][0]["psnr"] < np.mean(clean) - 0.3  # the noise and JPEG cost bicubic
    for name in ("results.csv", "per_image.csv"):
        assert {r["degradation"] for r in csv.DictReader((out / name).open())} == {"noise=5,jpeg=75"}
    md = (out / "results.md").read_text()
    assert "LR degraded with --degrade noise=5,jpeg=75 (Gaussian noise sigma 5 grey levels, then JPEG quality 75)" in md
    assert md in stdout


def test_folder_mode_makes_lr_and_center_crop_protocol(tmp_path, tiny, capsys):
    _, path = tiny
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    hr = np.ascontiguousarray(skimage.data.rocket()[100:303, 200:442])  # 203x242: cropped to 200x240
    Image.fromarray(hr).save(hr_dir / "rocket.png")
    out = tmp_path / "ev"
    code, _, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--model", f"tiny={path}",
                        "--protocol", "center180", "--figures", "0", "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "center180"
    lr = pil_down(hr, 4)  # 50x60 LR; the 45x45 centre window starts at (2, 7)
    lr_c, hr_c = lr[2:47, 7:52], hr[8:188, 28:208]
    p, s = ref_score(pil_up(lr_c, 4), hr_c, 4)
    bic = doc["rows"][0]
    assert bic["psnr"] == pytest.approx(p, abs=0.01) and bic["ssim"] == pytest.approx(s, abs=0.001)
    assert os.listdir(out / "figures") == []


def test_training_curves_from_keras_tensorboard_logs(tmp_path, photos, tiny, capsys):
    _, path = tiny
    run_dir = tmp_path / "run"
    keras.utils.set_random_seed(3)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    # stand-ins named like the trainer's metrics, so Keras writes epoch_psnr / epoch_ssim tags
    m.compile("sgd", "mse", metrics=[keras.metrics.MeanAbsoluteError(name="psnr"),
                                     keras.metrics.MeanSquaredError(name="ssim")])
    x, y = np.random.default_rng(0).normal(size=(2, 16, 4)), np.random.default_rng(1).normal(size=(2, 16, 1))
    hist = m.fit(x[0], y[0], validation_data=(x[1], y[1]), epochs=4, verbose=0,
                 callbacks=[keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False)])
    series = tensorboard.read_scalars(str(run_dir))
    assert {"train", "validation"} <= set(series)
    val = hist.history["val_psnr"]
    assert figures.best_epoch(series) == (int(np.argmax(val)) + 1, pytest.approx(val[int(np.argmax(val))]))
    out = tmp_path / "ev"
    code, _, err = run(["--hr-dir", str(photos), "--scale", "4", "--model", f"tiny={path}", "--figures", "1",
                        "--logs", str(run_dir), "--out", str(out)], capsys)
    assert code == 0, err
    assert sorted(os.listdir(out / "figures")) == ["curves_00_run.png", "x4_astronaut.png"]


def test_grey_16_bit_and_rgba_hr_are_converted_once_with_a_note(tmp_path, capsys):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    grey = skimage.data.camera()[200:272, 200:296]
    Image.fromarray(grey.astype(np.uint16) * 257 + 100).save(hr_dir / "a_grey16.png")
    rgba = np.dstack([skimage.data.coffee()[:72, :96], np.full((72, 96), 90, np.uint8)])
    Image.fromarray(rgba).save(hr_dir / "b_rgba.png")
    out = tmp_path / "ev"
    code, _, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--figures", "0", "--metrics", "psnr,ssim",
                        "--out", str(out)], capsys)
    assert code == 0, err
    assert err.count("note: ") == 1 and "a_grey16.png" in err and "I;16" in err
    rows = {r["image"]: float(r["psnr"]) for r in csv.DictReader((out / "per_image.csv").open())
            if r["model"] == "bicubic"}
    # 16-bit grey becomes 8-bit by rounding v/257 (here exactly the original 8-bit values), not clipping
    g = np.repeat(grey[..., None], 3, axis=2)
    assert rows["a_grey16"] == pytest.approx(ref_score(pil_up(pil_down(g, 4), 4), g, 4)[0], abs=0.01)
    c = rgba[..., :3]
    assert rows["b_rgba"] == pytest.approx(ref_score(pil_up(pil_down(c, 4), 4), c, 4)[0], abs=0.01)


@pytest.mark.parametrize("extra,needle", [
    (["--model", "tiny"], "--model 'tiny' not found"),
    (["--model", "=x"], "NAME=PATH or a model name"),
    (["--model", "bicubic={model}"], "taken by the bicubic row"),
    (["--model", "hr={model}"], "taken by the HR row"),
    (["--model", "a={tmp}/missing"], "missing"),
    (["--lr-dir", "{tmp}/lr"], "no LR image"),
    (["--lr-dir", "{tmp}/lr_wrong"], "not a x4 pair"),
    (["--model", "a={model2}"], "upscales x2"),
    (["--logs", "{tmp}/nologs"], "nologs"),
    (["--hr-dir", "{tmp}/small"], "too small to score"),
    (["--degrade", "noise=5,jpeg=0"], "--degrade 'noise=5,jpeg=0': jpeg=0 must be an integer quality in [1, 100]"),
    (["--degrade", "blur=2"], "--degrade 'blur=2': expected noise=S and/or jpeg=Q"),
])
def test_bad_input_is_one_clean_line(tmp_path, photos, tiny, capsys, extra, needle):
    _, path = tiny
    (tmp_path / "lr").mkdir()
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "lr" / "unrelated.png")
    (tmp_path / "lr_wrong").mkdir()
    for f in photos.iterdir():  # x2-sized LR files given as x4
        Image.fromarray(pil_down(np.asarray(Image.open(f)), 2)).save(tmp_path / "lr_wrong" / f.name)
    (tmp_path / "nologs").mkdir()
    (tmp_path / "small").mkdir()
    Image.fromarray(np.zeros((12, 40, 3), np.uint8)).save(tmp_path / "small" / "thin.png")
    model2 = tmp_path / "x2.keras"
    if "{model2}" in " ".join(extra):
        models.srresnet(2, num_blocks=1, filters=8).save(model2)
    argv = ["--hr-dir", str(photos), "--scale", "4", "--figures", "0", "--out", str(tmp_path / "ev")]
    argv += [a.format(tmp=tmp_path, model=path, model2=model2) for a in extra]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err and needle in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1


def test_help_lists_defaults(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--model", "--hr-dir", "--lr-dir", "--scale", "--protocol", "--track", "--data", "--logs"):
        assert flag in text
    assert "(default: full)" in text and "(default: test)" in text


def test_div2k_mode_all_tracks_with_a_model_per_track(tmp_path, capsys):
    """A DIV2K-layout folder with the six report tracks; {track} picks each track's model."""
    root = tmp_path / "div2k"
    hr_dir = root / "DIV2K_valid_HR"
    hr_dir.mkdir(parents=True)
    photos = {851: skimage.data.astronaut()[:72, 100:172], 852: skimage.data.coffee()[100:172, :72]}
    for i, im in photos.items():
        Image.fromarray(np.ascontiguousarray(im)).save(hr_dir / f"{i:04d}.png")
    Image.fromarray(np.ascontiguousarray(skimage.data.chelsea()[:72, :72])).save(hr_dir / "0801.png")  # validation
    keras.utils.set_random_seed(4)
    for s in (2, 3, 4):
        m = models.srresnet(s, num_blocks=1, filters=8)
        for kind in ("bicubic", "unknown"):
            m.save(tmp_path / f"m_{kind}_x{s}.keras")
            lr_dir = root / f"DIV2K_valid_LR_{kind}" / f"X{s}"
            lr_dir.mkdir(parents=True, exist_ok=True)
            for i, im in photos.items():
                Image.fromarray(pil_down(np.ascontiguousarray(im), s)).save(lr_dir / f"{i:04d}x{s}.png")
    out = tmp_path / "ev"
    code, stdout, err = run(["--data", str(root), "--track", "all", "--split", "test", "--figures", "1",
                             "--model", f"srresnet={tmp_path}/m_{{track}}.keras", "--out", str(out)], capsys)
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["model"], r["track"]) for r in rows] == [
        (m, t) for t in benchmark.REPORT_TRACKS for m in ("bicubic", "srresnet", "HR")]
    assert all(r["images"] == 2 and r["scale"] == int(r["track"][-1]) for r in rows)
    # the bicubic_x3 baseline, independently
    ref = [ref_score(pil_up(pil_down(np.ascontiguousarray(im), 3), 3), np.ascontiguousarray(im)[:72, :72], 3)
           for im in photos.values()]
    bic3 = next(r for r in rows if r["track"] == "bicubic_x3" and r["model"] == "bicubic")
    assert bic3["psnr"] == pytest.approx(np.mean([p for p, _ in ref]), abs=0.01)
    md = (out / "results.md").read_text()
    assert "| model | " + " | ".join(benchmark.REPORT_TRACKS) + " |" in md
    assert md.count("| srresnet |") == 1 and md.count("| bicubic |") == 1
    per_image = list(csv.DictReader((out / "per_image.csv").open()))
    assert {r["image"] for r in per_image} == {"0851", "0852"}
    assert {r["track"] for r in per_image} == set(benchmark.REPORT_TRACKS)
    assert len(os.listdir(out / "figures")) == 6 and (out / "figures" / "bicubic_x4_0851.png").exists()


def test_image_too_small_for_ssim_fails_before_any_model_is_loaded(tmp_path, capsys):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(hr_dir / "t.png")
    # the missing model would fail on loading: the size check must come first
    code, _, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--model", f"a={tmp_path}/missing",
                        "--out", str(tmp_path / "ev")], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: {hr_dir}/t.png: 16x16 is too small to score at x4: SSIM's 11x11 window needs at least "
        "20x20 pixels (11 after the 4-pixel border crop, HR trimmed to a multiple of 4)"]


@pytest.mark.parametrize("width,height,ok", [(20, 20, True), (23, 40, True), (19, 40, False), (40, 19, False)])
def test_smallest_scorable_image_at_x4_is_20_pixels_after_trimming(tmp_path, capsys, width, height, ok):
    # 11 (SSIM window) + 2 x 4 (border crop) = 19, and HR is trimmed to a multiple of 4: 20; 23 trims to 20
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(hr_dir / "edge.png")
    code, _, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--figures", "0", "--out", str(tmp_path / "ev")],
                       capsys)
    if ok:
        assert code == 0, err
        row = json.loads((tmp_path / "ev" / "results.json").read_text())["rows"][0]
        assert 0 < row["ssim"] < 1
    else:
        assert code == 2 and f"{width}x{height} is too small to score at x4" in err


def test_center_crop_takes_the_middle_window_aligned_to_the_scale():
    lr = np.arange(30 * 40).reshape(30, 40)
    hr = np.arange(240 * 320).reshape(240, 320)
    # x8: 180 // 8 = 22 LR pixels; top (30 - 22) // 2 = 4, left (40 - 22) // 2 = 9
    lr_c, hr_c = benchmark.center_crop(lr, hr, 8)
    np.testing.assert_array_equal(lr_c, lr[4:26, 9:31])
    np.testing.assert_array_equal(hr_c, hr[32:208, 72:248])
    # a side shorter than the window is kept whole
    lr_c, hr_c = benchmark.center_crop(lr[:10], hr[:80], 8)
    assert lr_c.shape == (10, 22) and hr_c.shape == (80, 176)


# ---------------------------------------------------------------- hostile inputs

def test_out_under_a_file_fails_before_any_image_or_model(tmp_path, photos, tiny, capsys, monkeypatch):
    def no_loading(*args, **kwargs):
        pytest.fail("a model was loaded before --out was checked")

    monkeypatch.setattr(benchmark, "load_upscaler", no_loading)
    (tmp_path / "afile").write_text("a regular file")
    code, _, err = run(["--hr-dir", str(photos), "--scale", "4", "--model", f"a={tiny[1]}",
                        "--out", str(tmp_path / "afile" / "ev")], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: --out {tmp_path / 'afile' / 'ev'}: cannot write there "
                                        f"({tmp_path / 'afile'} is a file, not a folder)"]


def test_an_image_a_model_cannot_take_is_left_out_of_every_row(tmp_path, photos, tiny, capsys, monkeypatch):
    import tensorflow as tf

    from sr_keras.core.errors import UserError

    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    for name, height in (("a_ok", 72), ("b_oom", 80), ("c_nan", 88)):  # told apart by their LR heights
        Image.fromarray(np.ascontiguousarray(skimage.data.astronaut()[:height, :96])).save(hr_dir / f"{name}.png")
    real = scoring.upscale_image
    failing = {20: tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor"),
               22: UserError("'x': model output is not finite (NaN or inf); nothing is written", argument="model")}

    def flaky(up, lr, **kwargs):
        if lr.shape[0] in failing:
            raise failing[lr.shape[0]]
        return real(up, lr, **kwargs)

    monkeypatch.setattr(scoring, "upscale_image", flaky)
    out = tmp_path / "ev"
    code, stdout, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--model", f"tiny={tiny[1]}",
                             "--figures", "-1", "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error")]
    assert lines == [
        # printed as each image fails, inside the library's loop: in the library's words
        "error: out of memory on image b_oom of x4, model tiny (24x20): use a smaller tile (left out of every row)",
        "error: image c_nan of x4, model tiny: model 'x': model output is not finite (NaN or inf); nothing is "
        "written (left out of every row)",
        "error: 2 image(s) left out of the results: b_oom (x4), c_nan (x4) (reasons above)"]
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["model"], r["images"]) for r in rows] == [("bicubic", 1), ("tiny", 1), ("HR", 1)]
    assert {r["image"] for r in csv.DictReader((out / "per_image.csv").open())} == {"a_ok"}
    assert os.listdir(out / "figures") == ["x4_a_ok.png"]
    assert "results in" in stdout


class _FullDisk(io.FileIO):
    """A file on a full disk: the first write puts a few bytes down, then fails with ENOSPC."""

    def write(self, data):
        super().write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_one_line_and_leaves_no_partial_figure(tmp_path, photos, capsys, monkeypatch):
    from sr_keras.core import imageio

    monkeypatch.setattr(imageio, "open", lambda path, mode: _FullDisk(path, "w"), raising=False)
    out = tmp_path / "ev"
    code, _, err = run(["--hr-dir", str(photos), "--scale", "4", "--figures", "-1", "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    assert [ln for ln in err.replace("\r", "\n").splitlines() if "error" in ln] == [
        f"error: --out '{out}': cannot write: No space left on device; free space and run again "
        "(no partial file is left)"]
    assert not out.exists()  # made by this run, and nothing (no partial figure) was left in it


def test_a_refused_model_leaves_no_out_folder_behind(tmp_path, photos, capsys):
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    out = tmp_path / "new" / "ev"
    code, _, err = run(["--hr-dir", str(photos), "--scale", "4", "--model", f"a={tmp_path / 'broken.keras'}",
                        "--out", str(out)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "broken.keras" in err
    assert os.listdir(tmp_path) == ["broken.keras"]  # neither new/ nor new/ev/ (nor its figures/)


def _damaged(kind, path):
    """Damage an image file so that its header (and, for PNG, every chunk CRC) still reads well but its
    pixels cannot be decoded."""
    if kind == "truncated JPEG":  # JPEG data under a DIV2K .png name: Pillow goes by content
        buf = io.BytesIO()
        Image.open(path).save(buf, format="JPEG", quality=95)
        blob = buf.getvalue()
        scan = blob.index(b"\xff\xda")  # start of scan: the header ends here, cut within the pixel data
        path.write_bytes(blob[:scan + (len(blob) - scan) // 2])
        return
    blob = bytearray(path.read_bytes())  # PNG: IDAT replaced by bytes zlib refuses, with a matching CRC
    at = blob.index(b"IDAT")
    size = struct.unpack(">I", blob[at - 4:at])[0]
    blob[at + 4:at + 4 + size] = b"\xff" * size
    blob[at + 4 + size:at + 8 + size] = struct.pack(">I", zlib.crc32(bytes(blob[at:at + 4 + size])))
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("kind", ["truncated JPEG", "PNG with undecodable data"])
def test_div2k_mode_scores_the_other_images_when_one_cannot_be_decoded(tmp_path, capsys, kind):
    hr_dir = tmp_path / "div2k" / "DIV2K_valid_HR"
    hr_dir.mkdir(parents=True)
    for i, im in ((851, skimage.data.astronaut()), (852, skimage.data.coffee()), (853, skimage.data.chelsea())):
        Image.fromarray(np.ascontiguousarray(im[:48, :48])).save(hr_dir / f"{i:04d}.png")
    _damaged(kind, hr_dir / "0852.png")
    out = tmp_path / "ev"
    code, _, err = run(["--data", str(tmp_path / "div2k"), "--track", "bicubic_x4", "--split", "test",
                        "--figures", "0", "--out", str(out)], capsys)
    assert code == 2 and "Traceback" not in err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error")]
    assert len(lines) == 2
    assert lines[0].startswith(f"error: cannot read image '{hr_dir / '0852.png'}': ")
    assert lines[0].endswith(" (left out of every row)")
    assert lines[1] == "error: 1 image(s) left out of the results: 0852 (bicubic_x4) (reasons above)"
    assert {r["image"] for r in csv.DictReader((out / "per_image.csv").open())} == {"0851", "0853"}
    assert json.loads((out / "results.json").read_text())["rows"][0]["images"] == 2


def test_a_bomb_or_a_float_image_is_refused_before_any_model(tmp_path, photos, capsys, monkeypatch):
    import tifffile

    def no_loading(*args, **kwargs):
        pytest.fail("a model was loaded before the headers were checked")

    monkeypatch.setattr(benchmark, "load_upscaler", no_loading)
    for name, write in (("bomb.png", _bomb_png), ("float.tif", lambda p: tifffile.imwrite(
            p, np.full((40, 40, 3), 0.5, np.float32), photometric="rgb"))):
        hr_dir = tmp_path / name.split(".")[0]
        shutil.copytree(photos, hr_dir)
        write(hr_dir / name)
        code, _, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--model", "a=anything.keras",
                            "--out", str(tmp_path / "ev")], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith(f"error: cannot read image '{hr_dir / name}': ")


def _bomb_png(path):
    """A PNG header claiming 60000x60000 pixels."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- NIQE, --metrics, names, figures

@pytest.fixture(scope="module")
def big_photos(tmp_path_factory):
    """Two HR photographs large enough for NIQE's 96x96 blocks (multiples of 4)."""
    hr_dir = tmp_path_factory.mktemp("big") / "hr"
    hr_dir.mkdir()
    Image.fromarray(np.ascontiguousarray(skimage.data.astronaut()[:192, 100:300])).save(hr_dir / "astronaut.png")
    Image.fromarray(np.ascontiguousarray(skimage.data.coffee()[100:228, :192])).save(hr_dir / "coffee.png")
    return hr_dir


def test_niqe_of_every_output_and_of_hr_with_the_perception_distortion_figure(tmp_path, big_photos, tiny, capsys):
    import sr_keras

    model, path = tiny
    out = tmp_path / "ev"
    code, stdout, err = run(["--hr-dir", str(big_photos), "--scale", "4", "--model", f"tiny={path}",
                             "--figures", "1", "--out", str(out)], capsys)
    assert code == 0, err
    ref = {"bicubic": {}, "tiny": {}, "HR": {}}
    for f in sorted(big_photos.iterdir()):
        hr = np.asarray(Image.open(f))
        lr = pil_down(hr, 4)
        ref["bicubic"][f.stem] = sr_keras.niqe(pil_up(lr, 4))
        ref["tiny"][f.stem] = sr_keras.niqe(model_sr(model, lr))
        ref["HR"][f.stem] = sr_keras.niqe(hr)
    per_image = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(per_image) == 6
    for r in per_image:
        assert float(r["niqe"]) == pytest.approx(ref[r["model"]][r["image"]], abs=1e-4)
    assert [r["psnr"] for r in per_image if r["model"] == "HR"] == ["", ""]
    rows = {r["model"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    for name, values in ref.items():
        assert rows[name]["niqe"] == pytest.approx(np.mean(list(values.values())), abs=1e-9)
    assert rows["HR"]["niqe"] < rows["bicubic"]["niqe"]  # bicubic blur looks less natural
    md = (out / "results.md").read_text()
    assert md.startswith("PSNR (dB) / SSIM / NIQE: ") and f"| HR | -/-/{rows['HR']['niqe']:.3f} |" in md
    assert "note: no NIQE" not in err and "perception_distortion.png" in stdout
    plot = Image.open(out / "perception_distortion.png")
    assert plot.format == "PNG" and plot.size[0] > 400


def test_perception_distortion_figure_marks_each_row(tmp_path, monkeypatch):
    figs = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: figs.append(fig))
    rows = [{"model": "bicubic", "track": None, "scale": 4, "psnr": 27.0, "niqe": 7.5},
            {"model": "gan", "track": None, "scale": 4, "psnr": 28.0, "niqe": 4.0},
            {"model": "HR", "track": None, "scale": 4, "psnr": None, "niqe": 3.0}]
    figures.perception_distortion_figure(str(tmp_path / "pd.png"), rows, "bicubic", "HR")
    ax = figs[0].axes[0]
    points = [tuple(c.get_offsets()[0]) for c in ax.collections]
    assert points == [(27.0, 7.5), (28.0, 4.0)]
    assert [t.get_text() for t in ax.texts] == ["bicubic", "gan"]
    assert list(ax.lines[0].get_ydata()) == [3.0, 3.0] and "HR" in ax.get_legend().get_texts()[0].get_text()
    assert "PSNR-Y" in ax.get_xlabel() and "NIQE" in ax.get_ylabel()


@pytest.mark.parametrize("chosen,keys,models", [
    ("psnr", {"psnr"}, ["bicubic"]),
    ("niqe,ssim", {"ssim", "niqe"}, ["bicubic", "HR"]),
])
def test_metrics_flag_chooses_the_columns(tmp_path, big_photos, capsys, chosen, keys, models):
    out = tmp_path / "ev"
    code, _, err = run(["--hr-dir", str(big_photos), "--scale", "4", "--metrics", chosen, "--figures", "0",
                        "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in doc["rows"]] == models
    assert all(set(r) == {"model", "track", "scale", "images"} | keys for r in doc["rows"])
    header = (out / "per_image.csv").read_text().splitlines()[0].split(",")
    assert header == ["image", "track", "scale", "model"] + [m for m in ("psnr", "ssim", "niqe") if m in keys]
    assert not (out / "perception_distortion.png").exists()  # needs both PSNR and NIQE


def test_a_bad_metrics_list_is_refused(tmp_path, big_photos, capsys):
    code, _, err = run(["--hr-dir", str(big_photos), "--scale", "4", "--metrics", "psnr,lpips",
                        "--out", str(tmp_path / "ev")], capsys)
    assert code == 2 and "Traceback" not in err
    assert "--metrics: expected a comma-separated subset of psnr,ssim,niqe, got 'psnr,lpips'" in err
    assert not (tmp_path / "ev").exists()


def test_a_bare_model_name_or_path_names_its_row(tmp_path, photos, tiny, capsys, monkeypatch):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    shutil.copy(tiny[1], models_dir / "mymodel.keras")
    monkeypatch.setenv("SR_KERAS_MODELS", str(models_dir))  # found by name, as a shipped model is
    out = tmp_path / "ev"
    code, _, err = run(["--hr-dir", str(photos), "--scale", "4", "--model", "mymodel", "--model", tiny[1],
                        "--metrics", "psnr,ssim", "--figures", "0", "--out", str(out)], capsys)
    assert code == 0, err
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["bicubic", "mymodel", "tiny"]
    assert rows[1]["psnr"] == pytest.approx(rows[2]["psnr"], abs=1e-9)  # the same weights


def test_a_file_name_that_is_not_utf8_is_scored_and_written_escaped(tmp_path, photos, capsys):
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    shutil.copy(photos / "astronaut.png", os.path.join(os.fsencode(hr_dir), b"caf\xe9.png"))
    shutil.copy(photos / "coffee.png", hr_dir / "b.png")
    out = tmp_path / "ev"
    code, stdout, err = run(["--hr-dir", str(hr_dir), "--scale", "4", "--figures", "-1", "--out", str(out)], capsys)
    assert code == 0 and "Traceback" not in err
    text = (out / "per_image.csv").read_text(encoding="utf-8")
    assert {r["image"] for r in csv.DictReader(io.StringIO(text))} == {"b", "caf\\xe9"}
    assert sorted(os.listdir(out / "figures")) == ["x4_b.png", "x4_caf_xe9.png"]


@pytest.mark.parametrize("height,width", [(384, 512), (512, 288), (200, 512)])  # 4:3, portrait, wide
def test_the_zoomed_inset_never_covers_the_overview_or_its_box(monkeypatch, height, width):
    figs = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: figs.append(fig))
    hr = np.ascontiguousarray(skimage.data.astronaut()[:height, :width])
    lr = pil_down(hr, 4)
    figures.comparison_figure("unused.png", "t", lr, [("bicubic\n1 dB\nNIQE 5", pil_up(lr, 4))], hr, 4,
                              hr_label="HR\nNIQE 3")
    fig = figs[0]
    fig.canvas.draw()
    boxes = [ax.get_window_extent() for ax in fig.axes]  # as drawn, aspect ratios applied
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0, "two panels overlap"
    overviews = fig.axes[0::2]
    y, x, side = figures.detail_window(hr, max(16, min(height, width) // 4))
    for ax in overviews:
        (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
        assert (x0, y0, x1, y1) == pytest.approx((0, 0, width, height))  # the whole photograph is shown
        assert x0 <= x and x + side <= x1 and y0 <= y and y + side <= y1  # and its red box
        title = ax.title.get_window_extent()
        assert title.y1 <= fig.bbox.y1 and all(title.y0 >= o.get_window_extent().y1 - 1 for o in overviews)
