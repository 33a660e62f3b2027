"""Hostile files and folders (security round 3): only raster decoders, exclusive temporaries, inputs never
overwritten, metadata an output cannot carry, outputs too big to hold, damaged TensorBoard logs, an
export over the working folder, and the write probe of an existing folder."""
import errno
import os
import stat
import struct
import subprocess
import tempfile
import zlib

import keras
import numpy as np
import pytest
from PIL import EpsImagePlugin, Image
from process_helpers import run_main

from sr_keras.archs import models
from sr_keras.cli import export as export_cli
from sr_keras.cli import upscale
from sr_keras.core import imageio, outputs
from sr_keras.core.errors import UserError
from sr_keras.evaluation import tensorboard
from sr_keras.infer import metadata, pictures

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 24\n%%EndComments\nshowpage\n"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("hostile") / "tiny_x2.keras"
    models.srresnet(2, num_blocks=1, filters=8).save(path)
    return str(path)


def _picture(path, size=(20, 16), seed=0, **save):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, **save)


def run(argv, capsys):
    return run_main(upscale.main, argv, capsys)


def _lines(err, prefix):
    return [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith(prefix)]


# ---------------------------------------------------------------- item 6: only raster decoders

def test_eps_content_named_png_never_reaches_ghostscript(tmp_path, monkeypatch):
    marker = tmp_path / "GS_RAN"
    gs = tmp_path / "gs"
    gs.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(gs))
    photo = tmp_path / "photo.png"
    photo.write_bytes(EPS)
    with Image.open(photo) as im:  # the fixture is what Pillow alone hands to Ghostscript
        assert im.format == "EPS"
        with pytest.raises(subprocess.CalledProcessError):  # the stand-in for Ghostscript fails
            im.load()
    assert marker.exists()
    marker.unlink()
    for reader in (imageio.check_header, imageio.read_image, imageio.read_rgb):
        with pytest.raises(UserError, match=r"^cannot read image '.*photo\.png': not an image"):
            reader(photo)
    assert metadata.exif_bytes(photo) is None
    assert not marker.exists()


# ---------------------------------------------------------------- item 8: exclusive temporaries

def test_a_planted_link_at_the_temporary_name_is_not_followed(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    planted = out / f".tmp-{os.getpid()}-result.png"
    planted.symlink_to(victim)
    dangling = out / f".tmp-{os.getpid()}-new.txt"
    dangling.symlink_to(tmp_path / "created_outside.txt")
    imageio.atomic_write_bytes(out / "result.png", b"result")
    imageio.atomic_write_text(out / "new.txt", "text")
    assert victim.read_text() == "precious" and not (tmp_path / "created_outside.txt").exists()
    assert (out / "result.png").read_bytes() == b"result" and (out / "new.txt").read_text() == "text"
    assert os.path.islink(planted) and os.path.islink(dangling)  # not ours: left where they are
    assert sorted(os.listdir(out)) == sorted([planted.name, dangling.name, "new.txt", "result.png"])


def test_an_atomic_file_gets_the_permissions_open_gives(tmp_path):
    with open(tmp_path / "plain", "w"):
        pass
    imageio.atomic_write_text(tmp_path / "atomic", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "atomic").st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)


def test_upscale_writes_past_a_planted_temporary_link(tmp_path, model_path, capsys):
    _picture(tmp_path / "small.png")
    out = tmp_path / "shared_out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (out / f".tmp-{os.getpid()}-small_x2.png").symlink_to(victim)
    code, _, err = run(["--model", model_path, str(tmp_path / "small.png"), "--out", str(out)], capsys)
    assert code == 0, err
    assert victim.read_text() == "precious"
    assert Image.open(out / "small_x2.png").size == (40, 32)


# ---------------------------------------------------------------- item 9: inputs never overwritten

def test_a_folder_upscaled_into_itself_never_overwrites_an_input(tmp_path, model_path, capsys):
    folder = tmp_path / "ph"
    folder.mkdir()
    _picture(folder / "cat.png", seed=1)
    _picture(folder / "cat_x2.png", size=(12, 10), seed=2)  # an input, and cat.png's output name
    before = (folder / "cat_x2.png").read_bytes()
    code, _, err = run(["--model", model_path, str(folder), "--out", str(folder)], capsys)
    assert code == 2 and "Traceback" not in err
    assert (folder / "cat_x2.png").read_bytes() == before
    assert _lines(err, "error:")[0] == (f"error: '{folder / 'cat.png'}': its output '{folder / 'cat_x2.png'}' is an "
                                        "input file, which is never overwritten: choose another --out, --suffix or "
                                        "-o (skipped)")
    assert Image.open(folder / "cat_x2_x2.png").size == (24, 20)  # the other input's output is written


def test_an_empty_suffix_into_the_input_folder_is_refused_per_file(tmp_path, model_path, capsys):
    _picture(tmp_path / "a.png", seed=3)
    before = (tmp_path / "a.png").read_bytes()
    code, _, err = run(["--model", model_path, str(tmp_path / "a.png"), "--out", str(tmp_path), "--suffix", ""],
                       capsys)
    assert code == 2 and (tmp_path / "a.png").read_bytes() == before
    assert "is an input file, which is never overwritten" in _lines(err, "error:")[0]


@pytest.mark.parametrize("spelling", ["same", "link"])
def test_o_naming_the_input_is_refused_before_the_model_is_loaded(tmp_path, model_path, capsys, monkeypatch,
                                                                  spelling):
    from sr_keras.infer import inference

    monkeypatch.setattr(inference, "load_upscaler", lambda *a, **k: pytest.fail("the model was loaded"))
    _picture(tmp_path / "a.png", seed=4)
    before = (tmp_path / "a.png").read_bytes()
    target = tmp_path / "a.png"
    if spelling == "link":
        target = tmp_path / "other.png"
        target.symlink_to(tmp_path / "a.png")
    code, _, err = run(["--model", model_path, str(tmp_path / "a.png"), "-o", str(target)], capsys)
    assert code == 2 and (tmp_path / "a.png").read_bytes() == before
    assert err.strip().splitlines() == [f"error: -o '{target}' is the input file, which is never overwritten: "
                                        "give another name"]


# ---------------------------------------------------------------- item 10 and 12: metadata an output cannot carry

def test_exif_too_long_for_jpeg_is_dropped_with_a_warning_and_the_next_file_is_written(tmp_path, model_path,
                                                                                        capsys):
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif[0x010E] = "x" * 70000  # ImageDescription: the block is over JPEG's 64 kB segment
    _picture(src / "a_bigexif.png", exif=exif)
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    _picture(src / "b_small.png", seed=1, exif=exif)
    code, _, err = run(["--model", model_path, str(src), "--out", str(tmp_path / "o"), "--ext", "jpg"], capsys)
    assert code == 0 and "Traceback" not in err
    size = len(metadata.exif_bytes(src / "a_bigexif.png"))
    assert _lines(err, "warning:") == [f"warning: '{src / 'a_bigexif.png'}': its EXIF block ({size:,} bytes) is over "
                                       "JPEG's limit of 65,533 bytes: the output is written without EXIF"]
    with Image.open(tmp_path / "o" / "a_bigexif_x2.jpg") as im:
        assert not im.getexif()
    with Image.open(tmp_path / "o" / "b_small_x2.jpg") as im:
        assert im.getexif()[0x010F] == "Maker"  # a block that fits is kept


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_an_icc_profile_too_big_to_read_back_is_dropped_with_a_warning(tmp_path, model_path, capsys, ext):
    big = np.random.default_rng(0).integers(0, 256, metadata.MAX_ICC_BYTES + 1000, dtype=np.uint8).tobytes()
    _picture(tmp_path / "big_icc.tif", icc_profile=big)
    _picture(tmp_path / "small_icc.tif", seed=1, icc_profile=b"small profile")
    code, _, err = run(["--model", model_path, str(tmp_path / "big_icc.tif"), str(tmp_path / "small_icc.tif"),
                        "--out", str(tmp_path / "o"), "--ext", ext], capsys)
    assert code == 0, err
    assert _lines(err, "warning:") == [f"warning: '{tmp_path / 'big_icc.tif'}': its ICC profile "
                                       f"({len(big):,} bytes) is over 1,048,576 bytes, more than image readers "
                                       "take: the output is written without it"]
    with Image.open(tmp_path / "o" / f"big_icc_x2.{ext}") as im:
        im.load()  # a PNG with the profile would not load: Pillow refuses an iCCP chunk over 1 MiB
        assert "icc_profile" not in im.info
    with Image.open(tmp_path / "o" / f"small_icc_x2.{ext}") as im:
        assert im.info["icc_profile"] == b"small profile"


# ---------------------------------------------------------------- item 12: --outscale beyond memory

def test_an_outscale_beyond_memory_is_refused_before_allocating(tmp_path, model_path, capsys, monkeypatch):
    monkeypatch.setattr(pictures, "memory_available", lambda: 16 * 2**30)
    monkeypatch.setattr(pictures, "upscale_pixels", lambda *a, **k: pytest.fail("the picture was upscaled"))
    _picture(tmp_path / "small.png", size=(32, 24))
    code, _, err = run(["--model", model_path, str(tmp_path / "small.png"), "--out", str(tmp_path / "o"),
                        "--outscale", "3000"], capsys)
    assert code == 2 and "Traceback" not in err
    held = 64 * 48 * 3 + 96000 * 72000 * (3 + 4)  # the model's 64x48 output, the 96000x72000 one and Pillow's
    assert _lines(err, "error:")[0] == (f"error: '{tmp_path / 'small.png'}' would become 96000x72000, which needs "
                                        f"{held / 2**30:,.1f} GiB of memory at once, more than the 16.0 GiB "
                                        "available: use a smaller --outscale, or --ext png without --outscale "
                                        "(written as it is made) (skipped)")
    assert not (tmp_path / "o").exists()


def test_running_out_of_memory_while_resizing_is_one_line_and_the_next_file_is_written(tmp_path, model_path, capsys,
                                                                                     monkeypatch):
    real = pictures.resize_lanczos

    def small_memory(pixels, width, height):
        if width > 50:
            raise MemoryError()
        return real(pixels, width, height)

    monkeypatch.setattr(pictures, "resize_lanczos", small_memory)
    _picture(tmp_path / "a_big.png", size=(20, 16))
    _picture(tmp_path / "b_small.png", size=(8, 6), seed=1)
    code, _, err = run(["--model", model_path, str(tmp_path / "a_big.png"), str(tmp_path / "b_small.png"),
                        "--out", str(tmp_path / "o"), "--outscale", "3"], capsys)
    assert code == 2 and "Traceback" not in err
    assert _lines(err, "error:")[0] == (f"error: out of memory writing '{tmp_path / 'o' / 'a_big_x3.png'}' (60x48): "
                                        "use a smaller --outscale, or --ext png without --outscale (written as it is "
                                        "made) (skipped)")
    assert sorted(os.listdir(tmp_path / "o")) == ["b_small_x3.png"]


# ---------------------------------------------------------------- item 12: damaged or crafted TensorBoard logs

def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data):
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data, length=None):
    """One TFRecord: correct checksums, the length field `length` (default: the data's)."""
    head = struct.pack("<Q", len(data) if length is None else length)
    return head + struct.pack("<I", _masked(head)) + data + struct.pack("<I", _masked(data))


def _event(step, tag, value=None, tensor=None):
    import tensorflow as tf

    ev = tf.compat.v1.Event(step=step)
    v = ev.summary.value.add(tag=tag)
    if tensor is None:
        v.simple_value = value
    else:
        v.tensor.CopyFrom(tensor)
    return ev.SerializeToString()


def test_crc32c_matches_tensorflows_record_writer(tmp_path):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(tmp_path / "r")) as w:
        w.write(b"some data")
    assert (tmp_path / "r").read_bytes() == _record(b"some data")


@pytest.mark.parametrize("damage", ["not_an_event", "length_past_the_end", "bad_checksum"])
def test_a_damaged_event_file_keeps_the_curves_before_the_damage_with_a_warning(tmp_path, damage):
    import tensorflow as tf

    run_dir = tmp_path / "run"
    (run_dir / "train").mkdir(parents=True)
    (run_dir / "validation").mkdir()
    good = _record(_event(1, "epoch_loss", 0.5)) + _record(_event(2, "epoch_loss", 0.25))
    bad = {"not_an_event": _record(b"\xff\xff\xff\xff\x0f"),
           "length_past_the_end": _record(b"", length=2**40)[:12] + b"x" * 20,  # TF's reader would crash on it
           "bad_checksum": _record(_event(3, "epoch_loss", 9.0))[:-1] + b"\0"}[damage]
    damaged = run_dir / "train" / "events.out.tfevents.1"
    damaged.write_bytes(good + bad + _record(_event(4, "epoch_loss", 7.0)))
    with tf.io.TFRecordWriter(str(run_dir / "validation" / "events.out.tfevents.2")) as w:
        w.write(_event(1, "epoch_loss", 0.75))
    warnings = []
    series = tensorboard.read_scalars(str(run_dir), warn=warnings.append)
    assert series == {"train": {"epoch_loss": {1: 0.5, 2: 0.25}}, "validation": {"epoch_loss": {1: 0.75}}}
    if damage == "length_past_the_end":  # what follows is not a whole record: as a file cut short, kept quiet
        assert warnings == []
    else:
        reason = "a record is not a TensorBoard event" if damage == "not_an_event" else "a record fails its checksum"
        assert warnings == [f"event file '{damaged}' is damaged ({reason}); its curves stop at the last good record"]


def test_crafted_tensors_are_skipped_not_allocated(tmp_path):
    import tensorflow as tf

    huge = tf.make_tensor_proto(1.0)
    huge.tensor_shape.dim.add(size=2**40)  # one value said to fill 4 TiB
    unknown = tf.make_tensor_proto(1.0)
    unknown.dtype = 9999
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "events.out.tfevents.1").write_bytes(
        _record(_event(1, "huge", tensor=huge)) + _record(_event(1, "unknown", tensor=unknown))
        + _record(_event(1, "scalar", tensor=tf.make_tensor_proto(np.float32(0.125)))))
    warnings = []
    assert tensorboard.read_scalars(str(tmp_path), warn=warnings.append) == {"train": {"scalar": {1: 0.125}}}
    assert warnings == []


# ---------------------------------------------------------------- item 12: export.py --out .

@pytest.mark.parametrize("out", [".", "..", "here"])
def test_export_over_the_working_folder_is_refused_at_once(tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "here"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(SystemExit) as e:
        export_cli.main(["demo_x4", "--format", "savedmodel", "--out", str(work) if out == "here" else out])
    shown = str(work) if out == "here" else out
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: --out '{shown}' is the current folder or holds it: an export replaces its whole folder; give a new "
        "folder path such as 'demo_x4_savedmodel'"]
    assert os.listdir(work) == []


# ---------------------------------------------------------------- the write probe of an existing folder

@pytest.mark.parametrize("exists", [True, False])
def test_the_write_probe_runs_for_an_existing_folder_too(tmp_path, monkeypatch, exists):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)  # as a read-only filesystem, which root can write to
    folder = tmp_path / "out"
    if exists:
        folder.mkdir()
    with pytest.raises(UserError) as e:
        outputs.check_writable_folder(str(folder))
    assert str(e.value) == f"out {folder}: cannot write there (Read-only file system)"
    with pytest.raises(UserError, match="Read-only file system"):
        outputs.check_writable_parent(str(folder / "file.png"))


# ---------------------------------------------------------------- EXIF orientation of 48/64-bit PNGs

def _png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("channels", [3, 4])
def test_exif_orientation_is_applied_to_48_and_64_bit_pngs(tmp_path, channels):
    stored = np.zeros((2, 3, channels), np.uint16)
    stored[0, 0, 0] = 386  # top-left when stored; 386 rounds to level 2 (the high byte alone gives 1)
    stored[..., 3:] = 65535
    path = tmp_path / "deep.png"
    with open(path, "wb") as f:
        png = imageio.PngStream(f, 3, 2, channels, np.uint16)
        png.write(stored)
        png.close()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    data = path.read_bytes()
    ihdr_end = 8 + 12 + 13  # signature, IHDR
    path.write_bytes(data[:ihdr_end] + _png_chunk(b"eXIf", exif.tobytes()[6:]) + data[ihdr_end:])
    rgb = imageio.read_rgb(path)
    assert rgb.shape == (3, 2, 3)
    expected = np.zeros((3, 2, 3), np.uint8)
    expected[0, 1, 0] = 2  # top-left moved to top-right, rounded by the 16-bit rule
    np.testing.assert_array_equal(rgb, expected)


# ---------------------------------------------------------------- error lines beside an open progress bar

def test_error_lines_stay_clean_while_a_failed_pictures_bar_is_open(tmp_path, model_path, capsys, monkeypatch):
    from tqdm import tqdm

    real, left_open = pictures.read_image, []

    def fails_leaving_its_bar_open(path):  # as a picture whose model call failed mid-way, its tile bar open
        if "a_broken" in str(path):
            left_open.append(tqdm(total=4, desc="tiles", leave=False, delay=1000))
            raise UserError(f"'{path}': the model cannot upscale this image")
        return real(path)

    monkeypatch.setattr(pictures, "read_image", fails_leaving_its_bar_open)
    _picture(tmp_path / "a_broken.png")
    _picture(tmp_path / "b_good.png")
    try:
        code, _, err = run(["--model", model_path, str(tmp_path / "a_broken.png"), str(tmp_path / "b_good.png"),
                            "--out", str(tmp_path / "o")], capsys)
    finally:
        for bar in left_open:
            bar.close()
    assert code == 2 and left_open
    # tqdm.write would move the cursor to the open bar and back first: that escape would start the line
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if "a_broken.png" in ln]
    assert len(lines) == 2 and all(ln.startswith("error: ") for ln in lines), lines
