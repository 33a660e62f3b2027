"""Which model for which picture: the models a name gives (saved_models/, then $SR_KERAS_MODELS), each
with its scale, what it is for and its card's headline score (`upscale.py --list-models`,
`sr_keras.list_models()`).

Cards (model_card.json) and generator.json are read as JSON only: listing the models imports neither
TensorFlow nor Keras. What a model is for comes from its card's "purpose" when it has one, else from
PURPOSES (the shipped models, and srgan_x4 before it ships), else from what the card says about its
training.
"""
import json
import os
import re

from sr_keras.exports.model_card import CARD_FILE
from sr_keras.infer.loading import CONFIG_FILE, known_models

PURPOSES = {
    "srresnet_x2": "clean or downscaled pictures (resized photos, renders, screenshots)",
    "srresnet_x3": "clean or downscaled pictures (resized photos, renders, screenshots)",
    "srresnet_x4": "clean or downscaled pictures (resized photos, renders, screenshots)",
    "srresnet_real_x4": "phone photos, JPEGs, noisy scans (trained on blur, noise and JPEG)",
    "srgan_x4": "texture (fur, grass, fabric): a GAN, sharper but invents detail; not for measurements",
    "demo_x4": "a quick try: the small model of the offline demo (train_srresnet.py --preset demo)",
}


def which_model(names=None):
    """The one line of --help (and the README) on which model suits which picture; the GAN's clause only
    where a model of that name is found.

    Args:
        names: the model names found (default: loading.known_models()).
    """
    names = known_models() if names is None else names
    texture = ("; texture (fur, grass, fabric): srgan_x4 (a GAN: sharper, invents detail)"
               if "srgan_x4" in names else "")
    return ("Which model: clean or downscaled pictures: srresnet_x4 (x2, x3: srresnet_x2, srresnet_x3); "
            f"phone photos, JPEGs, noisy scans: srresnet_real_x4{texture}. --list-models shows every model "
            "with its score.")


# A card larger than this is not read (the shipped ones are under 32 KiB).
MAX_CARD_BYTES = 1 << 20


def _read_json(path):
    """The JSON object in `path`, or None when it is missing, too large, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_CARD_BYTES + 1)
        value = json.loads(text) if len(text) <= MAX_CARD_BYTES else None
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _scores(block, label):
    """"test photos +1.30 dB PSNR-Y over bicubic (32.41 vs 31.11 dB)" from a card's score block
    (test_photographs, test_split: bicubic, model, gain), with NIQE when the model's has it; None when
    the block holds no PSNR."""
    if not isinstance(block, dict):
        return None
    model, bicubic = block.get("model"), block.get("bicubic")
    if not isinstance(model, dict) or not isinstance(bicubic, dict):
        return None
    mp, bp = _number(model.get("psnr_y")), _number(bicubic.get("psnr_y"))
    if mp is None or bp is None:
        return None
    text = f"{label} {mp - bp:+.2f} dB PSNR-Y over bicubic ({mp:.2f} vs {bp:.2f} dB)"
    niqe = _number(model.get("niqe"))
    if niqe is not None:
        base = _number(bicubic.get("niqe"))
        text += f", NIQE {niqe:.2f}" + (f" (bicubic {base:.2f}, lower = more natural)" if base is not None else
                                        " (lower = more natural)")
    return text


def headline(card):
    """The card's headline score as one line, or None when it scores nothing.

    The shipped cards score whole test photographs (test_photographs; a model for degraded pictures also
    test_photographs_degraded); a training run's card scores its test split (test_split).
    """
    if not card:
        return None
    parts = [_scores(card.get("test_photographs"), "test photos"),
             _scores(card.get("test_photographs_degraded"), "noisy JPEG test photos"),
             _scores(card.get("test_split"), "test split")]
    parts = [p for p in parts if p]
    return "; ".join(parts) or None


def purpose(name, card):
    """What the model `name` is for, in a few words: its card's "purpose", else PURPOSES, else what
    the card says about its training (a GAN; its degradation)."""
    if card and isinstance(card.get("purpose"), str) and card["purpose"].strip():
        return " ".join(card["purpose"].split())
    if name in PURPOSES:
        return PURPOSES[name]
    if not card:
        return "unknown: it has no model card"
    if "gan" in name.lower() or "train_srgan" in json.dumps(card.get("command")):  # trained as a GAN
        return "texture: a GAN, sharper but invents detail"
    data = card.get("training_data") if isinstance(card.get("training_data"), dict) else {}
    degradation = card.get("degradation", data.get("degradation"))
    if isinstance(degradation, dict):
        degradation = degradation.get("name")
    if isinstance(degradation, str) and degradation not in ("", "bicubic") and not degradation.startswith("bicubic"):
        return f"degraded pictures (trained on the {degradation} degradation: blur, noise, JPEG)"
    return "clean or downscaled pictures (trained on bicubic downscaling)"


def _scale(name, path, card):
    for source in ((card or {}).get("architecture"), _read_json(os.path.join(path, CONFIG_FILE))
                   if os.path.isdir(path) else None):
        if isinstance(source, dict) and isinstance(source.get("scale"), int):
            return source["scale"]
    m = re.search(r"_x(\d+)$", name)  # a file without a card: its name, as the shipped ones are named
    return int(m.group(1)) if m else None


def list_models():
    """Every model a name gives, in lookup order (saved_models/, then $SR_KERAS_MODELS; an earlier one
    hides a same-named later one), with what it is for and its card's headline score.

    Returns:
        list of dicts: name, scale (int, or None when unknown), purpose (one line), score (one line,
        or None when its card scores nothing) and path.
    """
    models = []
    for name, path in known_models().items():
        card = _read_json(os.path.join(path, CARD_FILE)) if os.path.isdir(path) else None
        models.append({"name": name, "scale": _scale(name, path, card), "purpose": purpose(name, card),
                       "score": headline(card), "path": path})
    return models


def format_models(models):
    """list_models() as text: per model a line with name, scale and purpose, and its scores indented
    below, one a line."""
    if not models:
        return "no models: saved_models/ is missing and $SR_KERAS_MODELS names no folder with models"
    width = max(len(m["name"]) for m in models)
    lines = []
    for m in models:
        scale = f"x{m['scale']}" if m["scale"] else "x?"
        lines.append(f"{m['name']:<{width}}  {scale:<3}  {m['purpose']}")
        lines += [f"{'':<{width}}       {score}" for score in (m["score"] or "no score on its model card").split("; ")]
    return "\n".join(lines)
