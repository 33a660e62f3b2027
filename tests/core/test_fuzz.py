"""Property-based fuzzing (Hypothesis) of the image reader and the pairing rule.

Random bytes and random valid or broken PNG, JPEG and TIFF headers (built here with struct/zlib), with
sizes from 0 to 2**32 - 1: every reader (sr_keras.core.imageio.check_header, read_image, read_rgb) and the
pairing check (sr_keras.data.pairing.check_pairs) either give a decoded image / sizes or raise the product's
own one-line UserError, never anything else. The PAIRING RULE itself is checked against its meaning: an
LR side is the floor or the ceiling of HR/s, and the trim keeps the top-left, HR = s x LR.
"""
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sr_keras.core import imageio
from sr_keras.core.errors import UserError
from sr_keras.data import pairing, sources

pytestmark = pytest.mark.slow  # Hypothesis fuzzing of the image readers

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SIDES = st.one_of(st.integers(0, 48), st.integers(0, 2**32 - 1))
# (width, height): half of the time both small, so that well-formed files are decoded too
SIZES = st.one_of(st.tuples(st.integers(1, 48), st.integers(1, 48)), st.tuples(SIDES, SIDES))


def _chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# the (colour type, bit depth) pairs the PNG specification allows, and the channels of each colour type
PNG_KINDS = [(0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (2, 8), (2, 16), (3, 1), (3, 2), (3, 4), (3, 8), (4, 8), (4, 16),
             (6, 8), (6, 16)]
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@st.composite
def pngs(draw):
    """A PNG: any IHDR (sizes; a valid colour type and bit depth, or any bytes), pixel data of the right
    length when the size is small and the header valid, else random; sometimes a damaged byte or a cut."""
    w, h = draw(SIZES)
    valid = draw(st.integers(0, 3)) > 0
    colour, depth = draw(st.sampled_from(PNG_KINDS)) if valid else (draw(st.integers(0, 255)), draw(st.integers(0, 255)))
    blob = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    if colour == 3:
        blob += _chunk(b"PLTE", draw(st.binary(min_size=3, max_size=48)))
    if valid and w * h <= 48 * 48 and draw(st.integers(0, 3)) > 0:
        row = (w * PNG_CHANNELS[colour] * depth + 7) // 8
        raw = b"".join(b"\0" + draw(st.binary(min_size=row, max_size=row)) for _ in range(h))
        blob += _chunk(b"IDAT", zlib.compress(raw))
    else:
        blob += _chunk(b"IDAT", draw(st.binary(max_size=512)))
    blob += _chunk(b"IEND", b"")
    if draw(st.integers(0, 3)) == 0:  # a damaged byte anywhere after the signature
        at = draw(st.integers(8, len(blob) - 1))
        blob = blob[:at] + bytes([draw(st.integers(0, 255))]) + blob[at + 1:]
    return blob[:draw(st.integers(0, len(blob)))] if draw(st.integers(0, 3)) == 0 else blob


@st.composite
def jpegs(draw):
    """A real small JPEG whose SOF size is replaced by any 16-bit width/height; sometimes damaged or cut."""
    grey = draw(st.booleans())
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w) if grey else (h, w, 3), np.uint8)).save(buf, "JPEG")
    blob = bytearray(buf.getvalue())
    sof = blob.find(b"\xff\xc0")
    blob[sof + 5:sof + 9] = struct.pack(">HH", draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
    for at, value in draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)), max_size=3)):
        blob[at] = value
    return bytes(blob[:draw(st.integers(0, len(blob)))] if draw(st.booleans()) else blob)


def _tiff(w, h, spp, bits, fmt, data):
    """A little-endian TIFF with one uncompressed strip holding `data`."""
    shared = 8 + 2 + 12 * 11 + 4  # where the arrays of more than 4 bytes start, after the IFD
    arrays = struct.pack("<H", bits) * spp + struct.pack("<H", fmt) * spp
    tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [bits] * spp), (259, 3, [1]), (262, 3, [2 if spp >= 3 else 1]),
            (273, 4, [shared + len(arrays)]), (277, 3, [spp]), (278, 4, [h]), (279, 4, [len(data)]), (284, 3, [1]),
            (339, 3, [fmt] * spp)]
    ifd = b""
    for tag, kind, values in tags:
        if kind == 3 and len(values) > 2:  # over 4 bytes: an offset into the arrays
            ifd += struct.pack("<HHII", tag, kind, len(values), shared + (0 if tag == 258 else 2 * spp))
        elif kind == 3:
            ifd += struct.pack("<HHI", tag, kind, len(values)) + struct.pack("<2H", *(values + [0])[:2])
        else:
            ifd += struct.pack("<HHII", tag, kind, 1, values[0])
    return b"II*\0" + struct.pack("<IH", 8, len(tags)) + ifd + b"\0\0\0\0" + arrays + data


@st.composite
def tiffs(draw):
    """A TIFF of any size, samples per pixel, bits and SampleFormat (1 unsigned, 2 signed, 3 float), with
    pixel data of the right length when the size is small, else random."""
    (w, h), spp = draw(SIZES), draw(st.integers(1, 4))
    bits, fmt = draw(st.sampled_from([8, 16, 32])), draw(st.integers(0, 4))
    n = w * h * spp * bits // 8
    data = draw(st.binary(min_size=n, max_size=n) if n <= 4096 and draw(st.booleans()) else st.binary(max_size=256))
    return _tiff(w, h, spp, bits, fmt, data)


MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\0", b"MM\0*", b"RIFF\0\0\0\0WEBPVP8 ",
         b"P6\n", b"P5\n"]


def _check_reader(reader, path):
    """Runs one reader: the image it decodes must be well formed; a refusal must be one UserError line."""
    try:
        result = reader(path)
    except UserError as e:
        assert len(str(e).splitlines()) == 1 and str(path) in str(e)
        return
    if reader is imageio.check_header:
        w, h, _ = result
        assert w >= 1 and h >= 1
        return
    pixels = result[0] if reader is imageio.read_image else result
    assert pixels.dtype in (np.uint8, np.uint16) and min(pixels.shape[:2]) >= 1
    assert pixels.ndim == 2 or pixels.shape[2] == 3
    if reader is imageio.read_rgb:
        assert pixels.dtype == np.uint8 and pixels.ndim == 3


def _all_readers(tmp_path, blob, ext):
    path = tmp_path / f"fuzz{ext}"
    path.write_bytes(blob)
    for reader in (imageio.check_header, imageio.read_image, imageio.read_rgb):
        _check_reader(reader, path)


@FUZZ
@given(blob=pngs())
def test_png_headers_decode_or_raise_user_error(tmp_path, blob):
    _all_readers(tmp_path, blob, ".png")


@FUZZ
@given(blob=jpegs())
def test_jpeg_headers_decode_or_raise_user_error(tmp_path, blob):
    _all_readers(tmp_path, blob, ".jpg")


@FUZZ
@given(blob=tiffs())
def test_tiff_headers_decode_or_raise_user_error(tmp_path, blob):
    _all_readers(tmp_path, blob, ".tif")


@FUZZ
@given(magic=st.sampled_from(MAGIC), rest=st.binary(max_size=2048),
       ext=st.sampled_from(imageio.IMAGE_EXTENSIONS))
def test_random_bytes_decode_or_raise_user_error(tmp_path, magic, rest, ext):
    _all_readers(tmp_path, magic + rest, ext)


@settings(max_examples=200, deadline=None)
@given(lr=st.tuples(SIDES, SIDES), hr=st.tuples(SIDES, SIDES), scale=st.integers(1, 8))
def test_pairing_rule_is_floor_or_ceil_and_the_trim_fits(lr, hr, scale):
    # the rule's meaning, written independently: each LR side is floor(HR/s) or ceil(HR/s)
    expected = all(l in (n // scale, -(-n // scale)) for l, n in zip(lr, hr))
    assert pairing.sizes_pair(lr, hr, scale) == expected
    if expected:
        for t, l, n in zip(pairing.trimmed_lr_size(lr, hr, scale), lr, hr):
            assert t == min(l, n // scale) and 0 <= t <= l and scale * t <= n and t >= l - 1


@settings(max_examples=100, deadline=None)
@given(lr=st.tuples(st.integers(0, 12), st.integers(0, 12)), hr=st.tuples(st.integers(0, 40), st.integers(0, 40)),
       scale=st.integers(1, 4))
def test_trim_keeps_the_top_left_with_hr_at_scale_times_lr(lr, hr, scale):
    a, b = np.arange(np.prod(lr)).reshape(lr), np.arange(np.prod(hr)).reshape(hr)
    lr_t, hr_t = pairing.trim(a, b, scale)
    assert hr_t.shape == (scale * lr_t.shape[0], scale * lr_t.shape[1])
    np.testing.assert_array_equal(lr_t, a[:lr_t.shape[0], :lr_t.shape[1]])
    np.testing.assert_array_equal(hr_t, b[:hr_t.shape[0], :hr_t.shape[1]])


@FUZZ
@given(lr_blob=st.one_of(pngs(), jpegs()), hr_blob=st.one_of(pngs(), jpegs()), scale=st.integers(1, 4))
def test_pair_check_of_fuzzed_files_fills_sizes_or_raises_user_error(tmp_path, lr_blob, hr_blob, scale):
    (tmp_path / "lr.png").write_bytes(lr_blob)
    (tmp_path / "hr.png").write_bytes(hr_blob)
    pair = sources.Pair("fuzz", hr=str(tmp_path / "hr.png"), lr=str(tmp_path / "lr.png"))
    try:
        pairing.check_pairs([pair], scale, "fuzz")
    except UserError as e:
        assert len(str(e).splitlines()) == 1
        return
    assert min(pair.lr_size) >= 1 and all(scale * t <= n for t, n in zip(pair.lr_size, pair.hr_size))
