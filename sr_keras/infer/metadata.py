"""What an upscaled picture keeps of its input's metadata: the ICC profile and EXIF (orientation reset to 1,
the pixels being stored upright), less what the output format cannot carry, each drop named in a warning."""
from PIL import Image

from sr_keras.core.imageio import EXIF_ORIENTATION, RASTER_FORMATS

_TIFF_ICC = 34675  # InterColorProfile
# JPEG keeps EXIF in one APP1 segment: 65535 bytes less its 2-byte length (Pillow's own check)
MAX_JPEG_EXIF = 65533
# Pillow refuses to read a PNG whose iCCP chunk inflates to more (PngImagePlugin.MAX_TEXT_CHUNK)
MAX_ICC_BYTES = 1 << 20


def output_metadata(path, info, output, warn):
    """{"icc_profile": ..., "exif": ...} to save with `path`'s output, less what the output cannot carry
    (an ICC profile over MAX_ICC_BYTES, a JPEG's EXIF over MAX_JPEG_EXIF), each dropped with a `warn`."""
    extra = {"icc_profile": info.get("icc_profile")}
    if output.ext != "png":
        extra["exif"] = exif_bytes(path)
    if extra["icc_profile"] and len(extra["icc_profile"]) > MAX_ICC_BYTES:
        warn(f"'{path}': its ICC profile ({len(extra['icc_profile']):,} bytes) is over {MAX_ICC_BYTES:,} bytes, "
             "more than image readers take: the output is written without it")
        extra["icc_profile"] = None
    if extra.get("exif") and output.ext == "jpg" and len(extra["exif"]) > MAX_JPEG_EXIF:
        warn(f"'{path}': its EXIF block ({len(extra['exif']):,} bytes) is over JPEG's limit of {MAX_JPEG_EXIF:,} "
             "bytes: the output is written without EXIF")
        extra["exif"] = None
    return {k: v for k, v in extra.items() if v}


def exif_bytes(path):
    """The EXIF block of an image file with its orientation set to 1 (the pixels are read upright),
    or None when it has none."""
    try:
        with Image.open(path, formats=RASTER_FORMATS) as im:
            exif = im.getexif()
    except Exception:  # the pixels were readable; a broken EXIF block is only dropped
        return None
    exif.pop(_TIFF_ICC, None)  # a TIFF's tags come back as its EXIF: the profile travels on its own
    if not exif:
        return None
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1
    return exif.tobytes()
