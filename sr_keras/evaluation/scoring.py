"""The one scorer of SR models against bicubic: `score_pair` scores one LR/HR uint8 pair.

evaluate.py (sr_keras.evaluation.benchmark.evaluate), the training scripts' --test-images table
(sr_keras.evaluation.benchmark.bicubic_vs_model) and tools/model_card.py all score through it, so the
three report the same numbers for the same pair: the metric conventions are
sr_keras.evaluation.results.score's (PSNR-Y / SSIM-Y with the `scale`-pixel border crop, NIQE of the
whole output). Models are loaded by their callers with sr_keras.infer.inference.load_upscaler (safe
mode, the SavedModel checks, output shape checks) and run here tile by tile, which gives the pixels
of a whole-image pass in bounded memory.
"""
from sr_keras.data import imresize
from sr_keras.evaluation import results
from sr_keras.infer.pictures import model_errors
from sr_keras.infer.tiling import upscale_image

BASELINE = "bicubic"


def score_pair(lr, hr, scale, upscalers, image, chosen=results.METRICS, tile=None, overlap=16, where=None):
    """Scores bicubic and every upscaler on one pair, against its HR image.

    Args:
        lr: the LR image, uint8 HxWx3.
        hr: its HR image, uint8, `scale` times larger.
        scale: the upscaling factor, also the border crop.
        upscalers: [(row name, upscaler)], loaded with sr_keras.infer.inference.load_upscaler.
        image: the image's name, for error messages.
        chosen: the metrics, in sr_keras.evaluation.results.METRICS order; with "niqe" the HR image
            gets a row of its own (`results.REFERENCE`, NIQE only).
        tile: the largest tile side in LR pixels (0: whole image; None: as large as the memory left
            allows), as sr_keras.infer.tiling.upscale_image.
        overlap: LR pixels of context around each tile.
        where: the image as errors name it; default `image {image}`.

    Returns:
        [(row name, sr, {metric: value})]: bicubic, each upscaler in order, then (with NIQE) the HR
        image's row, its sr None.

    Raises:
        UserError: one line naming the image (and the model) when a model cannot take it (out of
            memory: a smaller tile; non-finite output) or it is too small to score.
    """
    where = where or f"image {image}"
    outputs = [(BASELINE, imresize.upscale_bicubic(lr, scale))]
    for name, up in upscalers:
        with model_errors(f"{where}, model {name}", lr.shape[1], lr.shape[0], "tile"):
            outputs.append((name, upscale_image(up, lr, tile=tile, overlap=overlap)))
    if "niqe" in chosen:
        outputs.append((results.REFERENCE, None))
    return [(name, sr, results.score(hr, sr, scale, image, chosen)) for name, sr in outputs]
