"""upscale.py: modes kept (RGB, RGBA, grey, 16-bit grey, palette), seamless tiles, bad files skipped by name,
models by name from any working directory; output options (--ext, --outscale, -o, --skip-existing, ICC/EXIF,
--batch-tiles); hostile inputs (a 1x1 picture, out of memory, a full disk, an output under a file, a newline
in a name, SIGTERM while writing)."""
import errno
import io
import os
import re
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import skimage.data
from PIL import Image
from process_helpers import lines_until, run_main

from sr_keras.archs import models
from sr_keras.cli import upscale
from sr_keras.infer.inference import load_upscaler, upscale_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("upscale") / "tiny.keras"
    models.srresnet(2, num_blocks=2, filters=16).save(path)
    return str(path)


@pytest.fixture(scope="module")
def photo():
    return np.ascontiguousarray(skimage.data.chelsea()[100:160, 150:230])  # 60x80 RGB


def run(argv, capsys):
    return run_main(upscale.main, argv, capsys)


def test_mixed_folder_keeps_modes_and_skips_bad_files(tmp_path, model_path, photo, capsys):
    src = tmp_path / "in"
    src.mkdir()
    alpha = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (60, 1))
    Image.fromarray(photo).save(src / "rgb.png")
    Image.fromarray(np.dstack([photo, alpha])).save(src / "rgba.png")
    Image.fromarray(photo).convert("L").save(src / "grey.png")
    grey16 = np.asarray(Image.fromarray(photo).convert("L")).astype(np.uint16) * 256 + 77
    Image.fromarray(grey16).save(src / "grey16.png")
    Image.fromarray(photo).quantize(16).save(src / "palette.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image, and not picked up from a folder")
    Image.fromarray(photo[:20, :20]).save(tmp_path / "rgb.png")  # same stem as in/rgb.png
    out = tmp_path / "out"

    code, stdout, err = run(["--model", model_path, str(src), str(tmp_path / "rgb.png"), "--out", str(out),
                             "--tile", "24"], capsys)

    assert code != 0
    assert "Traceback" not in err
    assert str(src / "broken.png") in err and str(src / "empty.jpg") in err
    assert "notes" not in err
    assert f"'{tmp_path / 'rgb.png'}' would overwrite rgb_x2.png" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "grey16_x2.png", "grey_x2.png", "palette_x2.png", "rgb_x2.png", "rgba_x2.png"]
    rgb, rgba = Image.open(out / "rgb_x2.png"), Image.open(out / "rgba_x2.png")
    grey, g16 = Image.open(out / "grey_x2.png"), Image.open(out / "grey16_x2.png")
    assert (rgb.mode, rgb.size) == ("RGB", (160, 120))  # the first rgb.png's, not overwritten
    assert (rgba.mode, rgba.size) == ("RGBA", (160, 120))
    assert (grey.mode, grey.size) == ("L", (160, 120))
    assert g16.mode.startswith("I") and g16.size == (160, 120)
    assert Image.open(out / "palette_x2.png").mode == "RGB"
    # the alpha is the bicubic upscale of the input's alpha; the colour is the model's
    want_alpha = np.asarray(Image.fromarray(alpha).resize((160, 120), Image.BICUBIC))
    assert np.array_equal(np.asarray(rgba)[..., 3], want_alpha)
    assert np.abs(np.asarray(rgba)[..., :3].astype(int) - np.asarray(rgb).astype(int)).max() <= 1
    # 16-bit in, 16-bit out: values between 8-bit levels survive
    g16a = np.asarray(g16).astype(np.int64)
    assert g16a.max() > 255 and (g16a % 257).any()
    assert np.abs(g16a / 257.0 - np.asarray(grey).astype(float)).max() < 3


def test_tiles_are_seamless_through_the_cli(tmp_path, model_path, photo, capsys):
    f = tmp_path / "p.png"
    Image.fromarray(photo).save(f)
    assert run(["--model", model_path, str(f), "--out", str(tmp_path / "t"), "--tile", "16"], capsys)[0] == 0
    assert run(["--model", model_path, str(f), "--out", str(tmp_path / "w"), "--tile", "0"], capsys)[0] == 0
    a = np.asarray(Image.open(tmp_path / "t" / "p_x2.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "w" / "p_x2.png")).astype(int)
    assert a.shape == (120, 160, 3) and np.abs(a - b).max() <= 1
    # and it is the model's output, not a resize
    direct = upscale_image(load_upscaler(model_path), photo, tile=0).astype(int)
    assert np.abs(b - direct).max() <= 1


@pytest.mark.parametrize("args,needle", [
    (["--model", "{tmp}/nope", "{img}"], "nope"),
    (["--model", "{model}", "{tmp}/missing.png"], "missing.png"),
    (["--model", "{model}", "{tmp}/emptydir"], "emptydir"),
    (["--model", "no_such_model_x4", "{img}"], "'no_such_model_x4' not found"),
])
def test_bad_arguments_give_one_line(tmp_path, model_path, photo, capsys, args, needle):
    img = tmp_path / "a.png"
    Image.fromarray(photo).save(img)
    (tmp_path / "emptydir").mkdir()
    argv = [a.format(tmp=tmp_path, img=img, model=model_path) for a in args] + ["--out", str(tmp_path / "o")]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in err and needle in err
    assert all(line.startswith("error: ") for line in err.strip().splitlines() if not line.startswith("upscale"))


def test_a_negative_tile_is_refused_by_argparse(capsys):
    code, _, err = run(["--model", "m", "a.png", "--out", "o", "--tile", "-1"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].endswith("argument --tile: expected an integer >= 0, got '-1'")


def test_help_lists_defaults(capsys):
    with pytest.raises(SystemExit):
        upscale.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help
    assert "--tile" in text and "(default: as large as --tile-memory" in text and "(default: 16)" in text
    assert "--tile-memory" in text and "(default: auto)" in text


def test_list_models_prints_every_model_with_its_purpose_and_score_and_help_says_which(capsys, monkeypatch):
    monkeypatch.delenv("SR_KERAS_MODELS", raising=False)
    code, out, err = run(["--list-models"], capsys)  # neither --model nor an input needed
    assert code == 0 and err == ""
    lines = out.splitlines()
    x4 = next(i for i, line in enumerate(lines) if line.startswith("srresnet_x4 "))
    assert lines[x4].split()[1] == "x4" and "clean or downscaled pictures" in lines[x4]
    assert re.fullmatch(r"test photos \+\d+\.\d\d dB PSNR-Y over bicubic \(.*\)", lines[x4 + 1].strip())
    real = next(line for line in lines if line.startswith("srresnet_real_x4 "))
    assert "phone photos, JPEGs, noisy scans" in real
    with pytest.raises(SystemExit):
        upscale.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Which model: clean or downscaled pictures: srresnet_x4" in text
    assert "phone photos, JPEGs, noisy scans: srresnet_real_x4" in text and "--list-models" in text
    # without --list-models, --model and an input are still required, in argparse's words
    code, _, err = run(["--out", "o"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].endswith("the following arguments are required: --model, INPUT")


def test_a_mistyped_flag_gets_the_closest_one(capsys):
    code, _, err = run(["--model", "srresnet_x4", "--ouput", "x", "a.png"], capsys)
    assert code == 2
    assert err.strip().splitlines()[-1].endswith("error: unrecognized arguments: --ouput; --ouput: did you mean --out?")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, which takes no new files")
@pytest.mark.parametrize("flag,target", [("--out", "/proc/sr_keras_out"), ("-o", "/proc/self/up.png")])
def test_an_output_under_proc_says_it_cannot_be_written(model_path, photo, tmp_path, capsys, flag, target):
    Image.fromarray(photo).save(tmp_path / "in.png")
    code, _, err = run(["--model", model_path, str(tmp_path / "in.png"), flag, target], capsys)
    parent = os.path.dirname(target) if flag == "-o" else "/proc"
    assert code == 2
    assert err.strip().splitlines() == [f"error: {flag} {target}: cannot write there ({parent} takes no new files "
                                        "or folders)"]


def test_a_model_name_resolves_from_another_working_directory(tmp_path, photo, capsys, monkeypatch):
    Image.fromarray(photo[:24, :20]).save(tmp_path / "p.png")
    monkeypatch.chdir(tmp_path)  # no saved_models/ here: the name is found beside the package
    code, stdout, _ = run(["--model", "demo_x4", "p.png", "--out", "o"], capsys)
    assert code == 0 and "wrote 1 image(s) to o" in stdout
    assert Image.open(tmp_path / "o" / "p_x4.png").size == (80, 96)


def test_an_unknown_model_name_lists_the_known_names(tmp_path, photo, capsys, monkeypatch):
    Image.fromarray(photo).save(tmp_path / "p.png")
    monkeypatch.delenv("SR_KERAS_MODELS", raising=False)
    code, _, err = run(["--model", "srresnet_x5", str(tmp_path / "p.png"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--model 'srresnet_x5' not found" in err and "known names:" in err and "demo_x4" in err
    assert not (tmp_path / "o").exists()


def _jpeg_with_metadata(path, pixels):
    """A JPEG with an ICC profile and EXIF (orientation 1, a camera model), as a phone writes them."""
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x0110] = "test camera"  # Model
    exif[0x0112] = 1  # Orientation
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(path, quality=95, icc_profile=icc, exif=exif.tobytes())
    return icc


def test_jpeg_at_a_final_scale_keeps_icc_and_exif_and_skip_existing_leaves_it(tmp_path, model_path, photo, capsys):
    src = tmp_path / "p.jpg"
    icc = _jpeg_with_metadata(src, photo[:30, :44])  # 44x30
    argv = ["--model", model_path, str(src), "--out", str(tmp_path / "o"), "--ext", "jpg", "--quality", "90",
            "--outscale", "2.5"]
    assert run(argv, capsys)[0] == 0
    out = tmp_path / "o" / "p_x2.5.jpg"
    with Image.open(out) as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (110, 75), "RGB")
        assert im.info["icc_profile"] == icc and im.getexif()[0x0110] == "test camera"
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    code, stdout, _ = run(argv + ["--skip-existing"], capsys)
    assert code == 0 and "wrote 0 image(s)" in stdout and "skipped 1 whose output exists" in stdout
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_outscale_is_lanczos_from_the_model_output(tmp_path, model_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "p.png")  # 80x60, model x2
    assert run(["--model", model_path, str(tmp_path / "p.png"), "-o", str(tmp_path / "big.png"),
                "--outscale", "1.5"], capsys)[0] == 0
    model_out = upscale_image(load_upscaler(model_path), photo, tile=0)
    want = np.asarray(Image.fromarray(model_out).resize((120, 90), Image.LANCZOS))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "big.png")), want)


def test_webp_keeps_alpha_and_jpeg_refuses_alpha_and_16_bit_per_file(tmp_path, model_path, photo, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])).save(src / "rgba.png")
    Image.fromarray(np.asarray(Image.fromarray(photo).convert("L")).astype(np.uint16) * 257).save(src / "g16.png")
    Image.fromarray(photo).save(src / "rgb.png")
    assert run(["--model", model_path, str(src / "rgba.png"), "--out", str(tmp_path / "w"), "--ext", "webp"],
               capsys)[0] == 0
    with Image.open(tmp_path / "w" / "rgba_x2.webp") as im:
        assert (im.format, im.mode, im.size) == ("WEBP", "RGBA", (160, 120))
    code, stdout, err = run(["--model", model_path, str(src), "--out", str(tmp_path / "j"), "--ext", "jpg"], capsys)
    assert code == 2 and "wrote 1 image(s)" in stdout
    assert f"'{src / 'g16.png'}' is 16-bit and JPEG holds 8 bits: use --ext png" in err
    assert f"'{src / 'rgba.png'}' has an alpha channel, which JPEG cannot hold" in err
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["rgb_x2.jpg"]


def test_batched_tiles_give_the_same_pixels_as_one_tile_per_call(tmp_path, model_path, photo, capsys):
    Image.fromarray(photo).save(tmp_path / "p.png")
    for name, batch in (("one", "1"), ("five", "5")):
        assert run(["--model", model_path, str(tmp_path / "p.png"), "--out", str(tmp_path / name), "--tile", "16",
                    "--batch-tiles", batch, "--suffix", ""], capsys)[0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / "p.png")),
                          np.asarray(Image.open(tmp_path / "five" / "p.png")))


@pytest.mark.parametrize("argv,needle", [
    (["{img}", "{img}", "-o", "{tmp}/x.png"], "-o '{tmp}/x.png' takes one input file"),
    (["{img}", "-o", "{tmp}/x.tiff"], "-o '{tmp}/x.tiff': cannot tell the format from its extension"),
    (["{img}", "-o", "{tmp}/x.jpg", "--ext", "png"], "-o '{tmp}/x.jpg' names a jpg file but --ext is png"),
])
def test_bad_output_choices_give_one_line(tmp_path, model_path, photo, capsys, argv, needle):
    img = tmp_path / "a.png"
    Image.fromarray(photo).save(img)
    code, _, err = run(["--model", model_path] + [a.format(tmp=tmp_path, img=img) for a in argv], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {needle.format(tmp=tmp_path)}")


# ---------------------------------------------------------------- hostile inputs: one line per file, the rest written

@pytest.fixture(scope="module")
def skip_model_path(tmp_path_factory):
    """A tiny x4 model with a bicubic skip: its symmetric 2-pixel padding cannot take a 1-pixel side."""
    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("skip") / "skip_x4.keras"
    models.srresnet(4, num_blocks=1, filters=8, batch_norm=False, bicubic_skip=True).save(path)
    return str(path)


def _error_lines(err):
    return [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error")]


def test_one_pixel_image_is_named_and_the_good_one_after_it_is_written(tmp_path, skip_model_path, photo, capsys):
    src = tmp_path / "mixed"
    src.mkdir()
    Image.new("RGB", (1, 1), (10, 200, 30)).save(src / "a_one.png")
    Image.fromarray(photo[:40, :56]).save(src / "b_good.png")
    Image.fromarray(photo[:1, :30]).save(src / "c_thin.png")  # 1 pixel high
    code, _, err = run(["--model", skip_model_path, str(src), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "Traceback" not in err
    lines = _error_lines(err)
    assert f"'{src / 'a_one.png'}': the model cannot upscale this 1x1 image (paddings must be" in lines[0]
    assert f"'{src / 'c_thin.png'}': the model cannot upscale this 30x1 image" in lines[1]
    assert lines[2] == (f"error: 2 input(s) failed: '{src / 'a_one.png'}', '{src / 'c_thin.png'}' (reasons above); "
                        "the other 1 were written")
    assert os.listdir(tmp_path / "o") == ["b_good_x4.png"]
    assert Image.open(tmp_path / "o" / "b_good_x4.png").size == (224, 160)


@pytest.mark.parametrize("flag,target", [("--out", "afile/sub"), ("-o", "afile/sub.png")])
def test_an_output_under_a_file_fails_before_the_model_is_loaded(tmp_path, model_path, photo, capsys, monkeypatch,
                                                                 flag, target):
    from sr_keras.infer import inference

    def no_loading(*args, **kwargs):
        pytest.fail("the model was loaded before the output was checked")

    monkeypatch.setattr(inference, "load_upscaler", no_loading)
    Image.fromarray(photo).save(tmp_path / "in.png")
    (tmp_path / "afile").write_text("a regular file")
    code, _, err = run(["--model", model_path, str(tmp_path / "in.png"), flag, str(tmp_path / target)], capsys)
    assert code == 2
    assert err.strip().splitlines() == [f"error: {flag} {tmp_path / target}: cannot write there "
                                        f"({tmp_path / 'afile'} is a file, not a folder)"]


@pytest.mark.parametrize("flag,target", [("--out", "new/up"), ("-o", "new/up/photo.png")])
def test_a_refused_model_leaves_no_output_folder_behind(tmp_path, photo, capsys, flag, target):
    Image.fromarray(photo).save(tmp_path / "in.png")
    (tmp_path / "broken.keras").write_bytes(b"not a zip archive")
    code, _, err = run(["--model", str(tmp_path / "broken.keras"), str(tmp_path / "in.png"), flag,
                        str(tmp_path / target)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "broken.keras" in err
    assert sorted(os.listdir(tmp_path)) == ["broken.keras", "in.png"]  # neither new/ nor new/up/


def test_a_failure_of_the_png_writer_is_not_reported_as_the_models(tmp_path, model_path, photo, monkeypatch):
    from sr_keras.infer import pictures

    def broken_write(self, rows):
        raise RuntimeError("the PNG stream broke")

    monkeypatch.setattr(pictures.PngStream, "write", broken_write)
    Image.fromarray(photo).save(tmp_path / "in.png")
    with pytest.raises(RuntimeError, match="^the PNG stream broke$"):  # not "the model cannot upscale ..."
        pictures.upscale_file(load_upscaler(model_path), str(tmp_path / "in.png"), str(tmp_path / "out.png"))
    assert os.listdir(tmp_path) == ["in.png"]


def test_out_of_memory_on_one_picture_is_one_line_and_the_others_are_written(tmp_path, model_path, photo, capsys,
                                                                             monkeypatch):
    import tensorflow as tf

    from sr_keras.infer.inference import Upscaler

    real = Upscaler.batch

    def small_memory(self, lrs):  # as a device that cannot hold more than 1000 LR pixels per call
        if lrs.shape[1] * lrs.shape[2] > 1000:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real(self, lrs)

    monkeypatch.setattr(Upscaler, "batch", small_memory)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo).save(src / "big.png")  # 60x80 in one tile: 4800 pixels
    Image.fromarray(photo[:20, :20]).save(src / "small.png")
    code, _, err = run(["--model", model_path, str(src), "--out", str(tmp_path / "o"), "--tile", "0"], capsys)
    assert code == 2 and "Traceback" not in err
    assert _error_lines(err)[0] == (f"error: out of memory on '{src / 'big.png'}' (80x60): use a smaller tile, "
                                    "tile memory or tile batch (skipped)")
    assert os.listdir(tmp_path / "o") == ["small_x2.png"]


class _FullDisk(io.FileIO):
    """A file on a full disk: the first write puts a few bytes down, then fails with ENOSPC."""

    def write(self, data):
        super().write(bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_is_reported_once_and_leaves_no_temporary_file(tmp_path, model_path, photo, capsys,
                                                                  monkeypatch):
    from sr_keras.infer import pictures

    monkeypatch.setattr(pictures, "open", lambda path, mode: _FullDisk(path, "w"), raising=False)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(photo[:20, :20]).save(src / name)
    code, _, err = run(["--model", model_path, str(src), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "Traceback" not in err
    assert _error_lines(err) == [f"error: cannot write '{tmp_path / 'o' / 'a_x2.png'}': No space left on device; "
                                 "stopped with 0 image(s) written"]
    assert not (tmp_path / "o").exists()  # made by this run and left empty: removed again


def test_format_size_limits_are_per_file_errors(tmp_path, model_path, photo, capsys):
    Image.fromarray(photo[:20, :20]).save(tmp_path / "in.png")
    code, _, err = run(["--model", model_path, str(tmp_path / "in.png"), "--out", str(tmp_path / "o"),
                        "--ext", "webp", "--outscale", "1000"], capsys)
    assert code == 2 and "Traceback" not in err
    assert _error_lines(err)[0] == (f"error: '{tmp_path / 'in.png'}' would become 20000x20000, over WEBP's largest "
                                    "side of 16383 pixels: use a smaller --outscale or another --ext (skipped)")


def test_a_newline_in_a_file_name_does_not_split_the_error_line(tmp_path, model_path, photo, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "odd\nname.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    Image.fromarray(photo[:20, :20]).save(src / "good.png")
    code, _, err = run(["--model", model_path, str(src), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    lines = err.replace("\r", "\n").splitlines()
    assert not any(ln.startswith("name.png") for ln in lines)
    escaped = str(src / "odd\\nname.png")
    assert f"error: cannot read image '{escaped}': " in _error_lines(err)[0]
    assert _error_lines(err)[1] == f"error: 1 input(s) failed: '{escaped}' (reasons above); the other 1 were written"


SLOW_UPSCALE = """
import sys
from sr_keras.cli import upscale
from sr_keras.infer import pictures

real = pictures.upscale_pixels


def slow(*args, **kwargs):  # a model slow enough to be stopped while it writes
    for row, band in real(*args, **kwargs):
        yield row, band
        print("band written", flush=True)
        sys.stdin.readline()  # blocks until the test's SIGTERM ends it


pictures.upscale_pixels = slow
upscale.main(sys.argv[1:])
"""


def test_sigterm_while_writing_leaves_no_temporary_file(tmp_path, model_path, photo):
    Image.fromarray(photo).save(tmp_path / "in.png")
    out = tmp_path / "o"
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", SLOW_UPSCALE, "--model", model_path, str(tmp_path / "in.png"),
                             "--out", str(out), "--tile", "16"], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines_until(proc, "band written", timeout_s=240)
        assert [n for n in os.listdir(out) if n.startswith(".")]  # the partial output exists now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert "Traceback" not in err and err.rstrip().endswith("terminated")
    assert not out.exists()  # no temporary file left: the folder this run made was empty and is gone
