"""Training-crop throughput of sr_keras.data.loaders.training_dataset (one JSON line on stdout).

python -m benchmarks data --data DIR --track bicubic_x4 --batch 8 --hr-crop 180 --steps 60
The decoding pass (which fills the in-memory cache) and --warmup batches are timed separately.
--degradation realistic times the LR made from each HR crop (docs/degradations.md).
With KERAS_BACKEND=jax it times the PyDataset pipeline of machines without TensorFlow (sr_keras.data.pydata);
"backend" in the JSON line says which pipeline ran.
"""
import argparse
import json
import os
import sys
import time

from sr_keras.cli.parsing import HelpFormatter, non_negative_int, positive_int
from sr_keras.core.errors import cli_entry
from sr_keras.core.tfbanner import hide_tensorflow_banner


@cli_entry
def main(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks data", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--data", default="samples", help="tfds, a DIV2K-layout folder, an HR folder, or samples")
    p.add_argument("--track", default="bicubic_x4", help="DIV2K track")
    p.add_argument("--batch", type=positive_int, default=8, help="batch size")
    p.add_argument("--hr-crop", type=positive_int, default=180, help="HR crop size")
    p.add_argument("--steps", type=positive_int, default=60, help="timed batches")
    p.add_argument("--warmup", type=non_negative_int, default=5, help="untimed batches after the decoding pass")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed")
    p.add_argument("--degradation", choices=("bicubic", "realistic"), default="bicubic",
                   help="training LR: the data's (bicubic) or made on the fly from each HR crop (realistic)")
    args = p.parse_args(argv)
    hide_tensorflow_banner()

    import keras

    from sr_keras.data import loaders

    t0 = time.perf_counter()
    ds = loaders.training_dataset(args.data, args.track, batch_size=args.batch, hr_crop=args.hr_crop, seed=args.seed,
                               degradation=args.degradation)
    build_s = time.perf_counter() - t0
    it = iter(ds)
    for _ in range(args.warmup):
        next(it)
    t1 = time.perf_counter()
    for _ in range(args.steps):
        lr, hr = next(it)
    elapsed = time.perf_counter() - t1
    print(json.dumps({
        "benchmark": "data", "backend": keras.backend.backend(), "data": args.data, "track": args.track, "degradation": args.degradation,
        "batch": args.batch,
        "hr_crop": int(hr.shape[1]), "lr_crop": int(lr.shape[1]), "steps": args.steps,
        "crops_per_s": round(args.steps * args.batch / elapsed, 1),
        "build_s": round(build_s, 2), "cpus": os.cpu_count(),
    }))
    sys.stdout.flush()
    os._exit(0)  # skip the teardown of the infinite pipeline (tf.data iterator, or PyDataset's threads)
