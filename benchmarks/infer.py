"""Upscaling speed and peak memory of sr_keras.infer.inference (the code upscale.py runs), tile by tile.

    python -m benchmarks infer --model srresnet --scale 4 --lr-size 256 --tile 128
    python -m benchmarks infer --model srresnet_x4 --lr-size 512x384      # the default tiles, as upscale.py
    python -m benchmarks infer --lr-size 512 --tile 64 --batch-tiles 8    # tiles per model call

Prints one JSON line: megapixels_per_s = output megapixels / median seconds per image (after one
untimed pass, which traces every tile shape), and peak_mem_mb = the highest memory during the timed
passes (the GPU allocator's peak on a GPU, else the process' peak resident set, reset just before;
mem_before_mb is the same counter's level when the timed passes start: model, runtime, image).
--model srresnet/srgan time the report's generator (SRGAN's G is SRResNet: same network) with random
weights, built under --precision and loaded through inference.load_upscaler like a trained model.
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

from sr_keras.cli.parsing import HelpFormatter, checked, naming_flags, non_negative_int, positive_int
from sr_keras.cli.upscale import tile_memory
from sr_keras.core.errors import cli_entry
from sr_keras.core.tfbanner import hide_tensorflow_banner


def _size(text):
    """'N' or 'WxH' -> (H, W); ValueError for anything else."""
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) not in (1, 2):
        raise ValueError(text)
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[1], parts[0])


def build_parser():
    from sr_keras.train.distribute import PRECISIONS

    p = argparse.ArgumentParser(prog="python -m benchmarks infer", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--model", default="srresnet",
                   help="'srresnet', 'srgan' or 'rrdb' (random weights), or a trained model: a model name, an "
                        "--export folder or a .keras file")
    p.add_argument("--trust-model", action="store_true",
                   help="load a SavedModel folder without model.keras (refused otherwise); its graph is still "
                        "checked against the tensor-math allowlist (docs/reliability.md, Threat model): only for "
                        "SavedModels you wrote yourself")
    p.add_argument("--scale", type=int, choices=(2, 3, 4, 8), default=4,
                   help="upscaling factor of a random-weight model (a trained model has its own)")
    p.add_argument("--lr-size", type=checked(_size, lambda v: min(v) > 0, "N or WxH with positive sizes"),
                   default=(256, 256), metavar="N|WxH", help="input image size")
    p.add_argument("--tile", type=non_negative_int, default=None,
                   help="LR tile side (0: the whole image in one pass; default: as large as --tile-memory allows)")
    p.add_argument("--overlap", type=non_negative_int, default=16, help="tile margin (raised to the receptive radius)")
    p.add_argument("--tile-memory", type=tile_memory, default="auto", metavar="MB",
                   help="tiles shrink so one tile's activations stay under this (0: no limit; auto: a quarter of "
                        "the memory left, 256 to 4096 MB)")
    p.add_argument("--batch-tiles", type=positive_int, default=1, metavar="N",
                   help="tiles per model call (upscale.py --batch-tiles)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed passes over the image")
    p.add_argument("--precision", choices=PRECISIONS, default="float32",
                   help="dtype policy a random-weight model is built with")
    p.add_argument("--num-blocks", type=positive_int, default=None,
                   help="residual blocks (rrdb: RRDBs) of a random-weight model (default: srresnet 16, rrdb 23)")
    p.add_argument("--filters", type=positive_int, default=64, help="channels of a random-weight model")
    p.add_argument("--growth", type=positive_int, default=32, help="rrdb: channels each dense-block conv adds")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the input image")
    return p


def _reset_peak():
    """Reset the peak-memory counter that peak_mb() reads; False where the kernel does not allow it."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident set (Linux >= 4.0)
        return True
    except OSError:
        return False


def _memory_mb(key):
    """GPU:0 allocator's `key` ('current'/'peak') on a GPU, else the process' VmRSS/VmHWM."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")[key] / 2 ** 20
    field = {"current": "VmRSS:", "peak": "VmHWM:"}[key]
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RANDOM_MODELS = ("srresnet", "srgan", "rrdb")


def load(args, tmp):
    from sr_keras.infer import inference

    if args.model not in RANDOM_MODELS:
        with naming_flags(model="--model", trust_model="--trust-model"):
            return inference.load_upscaler(args.model, trust_model=args.trust_model)
    import keras

    from sr_keras.archs import registry
    from sr_keras.archs.config import GeneratorConfig

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    spec = registry.RRDBNET if args.model == "rrdb" else registry.SRRESNET
    config = GeneratorConfig(args.scale, arch=spec.arch, num_blocks=args.num_blocks or spec.num_blocks,
                             filters=args.filters, growth=args.growth)
    path = os.path.join(tmp, "model.keras")
    config.build().save(path)
    return inference.load_upscaler(path)


@cli_entry
def main(argv):
    hide_tensorflow_banner()
    args = build_parser().parse_args(argv)
    import numpy as np

    from benchmarks.train import device_name
    from sr_keras.infer import inference

    h, w = args.lr_size
    img = np.random.default_rng(args.seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        upscaler = load(args, tmp)
        run = dict(tile=args.tile, overlap=args.overlap, max_tile_mb=args.tile_memory or None,
                   batch=args.batch_tiles)
        out = inference.upscale_image(upscaler, img, **run)
        peak_known = _reset_peak()
        before_mb = _memory_mb("current")
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = inference.upscale_image(upscaler, img, **run)
            times.append(time.perf_counter() - t0)
    s = float(np.median(times))
    mpix = out.shape[0] * out.shape[1] / 1e6
    precision = args.precision if args.model in RANDOM_MODELS else "as saved"
    print(json.dumps({
        "benchmark": "infer", "model": args.model, "scale": upscaler.scale, "lr_size": [w, h],
        "tile": args.tile, "tile_memory": args.tile_memory, "batch_tiles": args.batch_tiles, "tile_used":
            inference.tile_side(upscaler, args.tile, args.overlap, run["max_tile_mb"], (h, w)),
        "overlap": max(args.overlap, upscaler.radius or 0), "image_s": round(s, 4),
        "megapixels_per_s": round(mpix / s, 3), "output_megapixels": round(mpix, 3),
        "peak_mem_mb": round(_memory_mb("peak"), 1), "mem_before_mb": round(before_mb, 1),
        "peak_mem_is_timed_only": peak_known, "precision": precision,
        "repeats": args.repeats, "device": device_name(),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
