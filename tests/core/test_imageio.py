"""sr_keras.core.imageio: the one extension list, the 16-bit rule, EXIF orientation, atomic writes, PngStream,
refusals (decompression bombs, floating point) and one-line reasons."""
import io
import os
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from sr_keras.core import errors, imageio
from sr_keras.core.errors import UserError


def _png16(path, pixels):
    """A 16-bit PNG (grey HxW or colour HxWx3) written by PngStream, which Pillow cannot write in colour."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    with open(path, "wb") as f:
        png = imageio.PngStream(f, pixels.shape[1], pixels.shape[0], channels, np.uint16)
        png.write(pixels)
        png.close()


def test_extension_list_is_the_agreed_one():
    assert imageio.IMAGE_EXTENSIONS == (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                                        ".ppm", ".pgm")


def test_list_images_natural_order_all_extensions_no_hidden_or_folders(tmp_path):
    for name in ("10.png", "2.TIF", "1.ppm", "b.pgm", "a.JPEG", "notes.txt", ".tmp-7-3.png", "._4.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert imageio.list_images(tmp_path) == ["1.ppm", "2.TIF", "10.png", "a.JPEG", "b.pgm"]


def test_read_rgb_rounds_16bit_grey_to_nearest_level(tmp_path):
    levels = np.array([[0, 128, 129, 257], [32767, 32896, 65535, 386]], np.uint16)
    Image.fromarray(levels).save(tmp_path / "grey16.png")
    rgb = imageio.read_rgb(tmp_path / "grey16.png")
    # round(v / 257): 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1, 32767/257 = 127.5 - 0.002 -> 127,
    # 32896 = 128 * 257 -> 128, 386/257 = 1.502 -> 2 (the high byte alone would give 1)
    expected = np.array([[0, 0, 1, 1], [127, 128, 255, 2]], np.uint8)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 4, 3)
    np.testing.assert_array_equal(rgb, np.repeat(expected[..., None], 3, axis=2))


def test_read_rgb_rounds_48bit_colour_png_not_high_byte(tmp_path):
    pixels = np.array([[[386, 129, 65535], [0, 32896, 640]]], np.uint16)
    _png16(tmp_path / "rgb48.png", pixels)
    # 386 -> 2, 129 -> 1, 640/257 = 2.49 -> 2; Pillow alone keeps the high byte: 1, 0, 2
    np.testing.assert_array_equal(imageio.read_rgb(tmp_path / "rgb48.png"), [[[2, 1, 255], [0, 128, 2]]])


def test_uint16_to_uint8_rounds_levels_by_257_and_keeps_uint8_as_is():
    levels = np.array([0, 128, 129, 32767, 32896, 65535], np.uint16)
    out = imageio.uint16_to_uint8(levels)
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 1, 127, 128, 255]
    eight = np.array([0, 7, 255], np.uint8)
    assert imageio.uint16_to_uint8(eight) is eight


def test_read_image_keeps_16bit_grey_and_alpha(tmp_path):
    levels = np.array([[0, 1000], [40000, 65535]], np.uint16)
    Image.fromarray(levels).save(tmp_path / "grey16.png")
    pixels, alpha, _ = imageio.read_image(tmp_path / "grey16.png")
    assert pixels.dtype == np.uint16 and alpha is None
    np.testing.assert_array_equal(pixels, levels)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = [[10, 20, 30], [40, 50, 60]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    pixels, alpha, _ = imageio.read_image(tmp_path / "rgba.png")
    assert pixels.shape == (2, 3, 3)
    np.testing.assert_array_equal(np.asarray(alpha), rgba[..., 3])
    assert imageio.read_rgb(tmp_path / "rgba.png").shape == (2, 3, 3)


def test_readers_apply_exif_orientation(tmp_path):
    stored = np.zeros((2, 3, 3), np.uint8)
    stored[0, 0, 0] = 255  # red top-left when stored; orientation 6 = rotate 90 degrees clockwise to view
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "rotated.png", exif=exif)
    rgb = imageio.read_rgb(tmp_path / "rotated.png")
    assert rgb.shape == (3, 2, 3)
    np.testing.assert_array_equal(rgb[0, 1], [255, 0, 0])  # top-left moved to top-right


def test_read_rgb_names_a_broken_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"^cannot read image '.*broken\.png': not an image"):
        imageio.read_rgb(tmp_path / "broken.png")


def test_atomic_write_text_and_bytes_replace_the_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("old")
    imageio.atomic_write_text(path, "new\r\n")
    assert path.read_bytes() == b"new\r\n"
    imageio.atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_atomic_file_keeps_suffix_and_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "best.weights.h5"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="^writer failed$"):
        with imageio.atomic_file(path) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path) and tmp.endswith(".weights.h5")
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("writer failed")
    assert path.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["best.weights.h5"]


@pytest.mark.parametrize("channels,dtype", [(1, np.uint8), (3, np.uint8), (4, np.uint8), (1, np.uint16)])
def test_png_stream_round_trips_through_pillow(channels, dtype):
    rng = np.random.default_rng(channels)
    high = 65536 if dtype == np.uint16 else 256
    shape = (37, 21) if channels == 1 else (37, 21, channels)
    pixels = rng.integers(0, high, shape).astype(dtype)
    buf = io.BytesIO()
    png = imageio.PngStream(buf, 21, 37, channels, dtype, icc_profile=b"fake profile")
    for row in range(0, 37, 10):  # bands of 10, 10, 10, 7 rows
        png.write(pixels[row:row + 10])
    png.close()
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        im.load()
        assert im.info["icc_profile"] == b"fake profile"
        np.testing.assert_array_equal(np.asarray(im).astype(dtype), pixels)


# ---------------------------------------------------------------- refusals: bombs, floating point, names

def _png_header_only(path, width, height):
    """A valid PNG signature and IHDR claiming width x height RGB, with a few bytes of pixel data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("reader", [imageio.check_header, imageio.read_image, imageio.read_rgb])
def test_decompression_bomb_header_is_refused_naming_the_file(tmp_path, reader):
    bomb = tmp_path / "bomb.png"
    _png_header_only(bomb, 60000, 60000)
    with pytest.raises(UserError, match=r"^cannot read image '.*bomb\.png': its header claims 3,600,000,000 "
                                        r"pixels, over the limit of 89,478,485"):
        reader(bomb)


def test_pixels_over_the_limit_are_refused_where_pillow_only_warns(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / "big.png")  # 144 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow warns above 100 and raises above 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape either: it is the one-line error
        with pytest.raises(UserError, match=r"big\.png': its header claims 144 pixels, over the limit of 100"):
            imageio.read_rgb(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the documented way to allow any size
    assert imageio.read_rgb(tmp_path / "big.png").shape == (12, 12, 3)


def test_floating_point_images_are_refused_not_read_as_black(tmp_path):
    import tifffile  # scikit-image's dependency

    ramp = np.linspace(0.0, 1.0, 8 * 10 * 3, dtype=np.float32).reshape(8, 10, 3)
    Image.fromarray(ramp[..., 0], "F").save(tmp_path / "grey_f.tif")  # Pillow opens it as mode F
    tifffile.imwrite(tmp_path / "rgb_f32.tif", ramp, photometric="rgb")  # Pillow cannot identify float RGB
    tifffile.imwrite(tmp_path / "rgb_f16.tif", ramp.astype(np.float16), photometric="rgb")
    for name in ("grey_f.tif", "rgb_f32.tif", "rgb_f16.tif"):
        for reader in (imageio.check_header, imageio.read_image, imageio.read_rgb):
            with pytest.raises(UserError, match=rf"'[^']*{name}': floating-point pixels are not supported"):
                reader(tmp_path / name)
    # the same picture as integers is read
    tifffile.imwrite(tmp_path / "rgb_u8.tif", (ramp * 255).astype(np.uint8), photometric="rgb")
    assert imageio.read_rgb(tmp_path / "rgb_u8.tif")[7, 9, 2] == 255


def test_a_newline_in_a_file_name_is_escaped_in_the_reason_not_cut():
    path = "/no/such/odd\nname.png"
    reason = errors.first_line(FileNotFoundError(f"cannot open {path} for reading"), path)
    assert reason == "cannot open /no/such/odd\\nname.png for reading"
    assert errors.first_line(ValueError("first\nsecond")) == "first"  # other lines are still cut
    assert errors.one_line("a\tb\nc\u2028d\x1be") == "a\\tb\\nc\\u2028d\\x1be"
