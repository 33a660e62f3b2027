"""Train-step speed of SRResNet, RRDBNet, SRGAN or ESRGAN: the same compiled model and `model.fit` path
training runs.

    python -m benchmarks train --model srresnet --scale 4 --batch 8 --hr-crop 180 --steps 10
    python -m benchmarks train --model srgan --precision mixed_bfloat16 --jit
    python -m benchmarks train --model rrdb --batch 16 --hr-crop 128      # ESRGAN's PSNR-oriented stage
    python -m benchmarks train --model esrgan --batch 16 --hr-crop 128    # RRDBNet + VGG-style D, RaGAN

Prints one JSON line: step_s is the median wall time of the timed steps (after --warmup steps, which
include tracing and compilation), patches_per_s = batch / step_s. The model is built by
sr_keras.train.loop.build_srresnet_trainer or sr_keras.train.gan.build_srgan_trainer, exactly as the training
scripts build it, and stepped by Keras' fit() over a tf.data pipeline; each timed step ends when its
loss reaches the host, as it does in training (the NaN guard reads it every step). By default the
batches are fixed random tensors, so the number is the model's step alone; --data times it fed by the
real training pipeline instead.
"""
import argparse
import json
import os
import platform
import resource
import sys
import time

from sr_keras.cli import parsing
from sr_keras.core import tfbanner

tfbanner.hide_tensorflow_banner()

from sr_keras.core.errors import UserError, cli_entry  # noqa: E402
from sr_keras.train.distribute import PRECISIONS, STRATEGIES  # noqa: E402

MODELS = ("srresnet", "srgan", "rrdb", "esrgan")
GAN_MODELS = ("srgan", "esrgan")
RRDB_MODELS = ("rrdb", "esrgan")
at_least_one = parsing.checked(int, lambda v: v >= 1, "an integer >= 1 (the first step traces the function)")


def device_name():
    """'GPU: <name> xN' when TensorFlow sees GPUs, else 'CPU: <model> (N cores)'."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "unknown")
        return f"GPU: {name} x{len(gpus)}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {model} ({os.cpu_count()} cores)"


def peak_memory_mb():
    """Peak memory of this process: GPU:0's allocator peak on a GPU, else the peak resident set."""
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return round(tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2 ** 20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def conv_macs(model, input_shape):
    """Multiply-accumulates of every Conv2D and Dense layer of a functional `model` for one forward
    pass on `input_shape` (with batch), from the layers' symbolic output shapes."""
    import keras

    layers = [ly for ly in model.layers if isinstance(ly, (keras.layers.Conv2D, keras.layers.Dense))]
    probe = keras.Model(model.inputs, [ly.output for ly in layers])
    outs = probe.compute_output_spec(keras.KerasTensor(input_shape))
    total = 0
    for ly, out in zip(layers, outs if isinstance(outs, (list, tuple)) else [outs]):
        kernel_per_output = 1
        for d in ly.kernel.shape[:-1]:
            kernel_per_output *= int(d)
        pixels = 1
        for d in out.shape[:-1]:
            pixels *= int(d)
        total += pixels * int(out.shape[-1]) * kernel_per_output
    return total


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks train", description=__doc__,
                                formatter_class=parsing.HelpFormatter)
    p.add_argument("--model", choices=MODELS, default="srresnet", help="network whose train step is timed")
    p.add_argument("--scale", type=int, choices=(2, 3, 4, 8), default=4, help="upscaling factor")
    p.add_argument("--batch", type=parsing.positive_int, default=8, help="global batch size")
    p.add_argument("--hr-crop", type=parsing.positive_int, default=180,
                   help="HR crop side (rounded down to a multiple of --scale)")
    p.add_argument("--steps", type=parsing.positive_int, default=10, help="timed steps")
    p.add_argument("--warmup", type=at_least_one, default=2, help="untimed steps first (tracing, XLA compilation)")
    p.add_argument("--precision", choices=PRECISIONS, default="float32", help="Keras dtype policy")
    p.add_argument("--jit", action="store_true", help="compile the train step with XLA (as training's --jit)")
    p.add_argument("--strategy", choices=STRATEGIES, default="default", help="tf.distribute strategy")
    p.add_argument("--num-blocks", type=parsing.positive_int, default=None,
                   help="generator residual blocks or RRDBs (default: 16 for srresnet/srgan, 23 for rrdb/esrgan)")
    p.add_argument("--filters", type=parsing.positive_int, default=64, help="generator feature channels")
    p.add_argument("--growth", type=parsing.positive_int, default=32, help="RRDBNet dense-block growth channels")
    p.add_argument("--vgg-weights", default="random",
                   help="SRGAN content-loss VGG19 weights (timing does not depend on them; 'imagenet' or a path)")
    p.add_argument("--data", default=None,
                   help="feed the real training pipeline from this source (tfds, a folder, samples) instead of "
                        "fixed random batches")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and the random batches")
    return p


def _check(args):
    """The HR crop the data pipeline would use (argparse checked each number; this checks their mix)."""
    hr = args.hr_crop // args.scale * args.scale
    gan = args.model in GAN_MODELS
    if hr < args.scale or (gan and hr < 16):
        raise UserError(f"--hr-crop {args.hr_crop}: too small for x{args.scale}"
                        + (" (the discriminator needs at least 16)" if gan else ""))
    if args.model == "esrgan" and hr % 32:
        raise UserError(f"--hr-crop {args.hr_crop}: --model esrgan's VGG-style discriminator needs an HR crop "
                        "divisible by 32, e.g. 128")
    return hr


def build_model(args, hr):
    """The compiled model exactly as the training script builds it (call inside the strategy scope)."""
    from sr_keras.archs.config import GeneratorConfig
    from sr_keras.train import loop

    rrdb = args.model in RRDB_MODELS
    config = GeneratorConfig(args.scale, arch=architecture(args).arch, num_blocks=generator_blocks(args),
                             filters=args.filters, growth=args.growth)
    if args.model not in GAN_MODELS:
        # ESRGAN's PSNR-oriented RRDBNet trains with L1 (train_srresnet.py --preset rrdb-psnr)
        return loop.build_srresnet_trainer(config, loss="l1" if rrdb else "mse", jit=args.jit)
    from sr_keras.train import gan, losses

    generator = loop.make_generator(config)
    if args.model == "esrgan":  # train_srgan.py --preset esrgan's losses and networks
        content = losses.VGGContentLoss(weights=args.vgg_weights, activation="before", criterion="l1", scale=1.0)
        return gan.build_srgan_trainer(generator, hr, content, args.scale, pixel_weight=1e-2, content_weight=1.0,
                                       adversarial_weight=5e-3, jit=args.jit, gan="relativistic",
                                       discriminator="vgg", pixel_loss="l1"), generator
    content = losses.VGGContentLoss(weights=args.vgg_weights)
    return gan.build_srgan_trainer(generator, hr, content, args.scale, jit=args.jit), generator


def architecture(args):
    """The registry's entry of the benchmarked generator."""
    from sr_keras.archs import registry

    return registry.RRDBNET if args.model in RRDB_MODELS else registry.SRRESNET


def generator_blocks(args):
    return args.num_blocks or architecture(args).num_blocks


def batches(args, hr):
    import tensorflow as tf

    if args.data:
        from sr_keras.data import loaders

        return loaders.training_dataset(args.data, f"bicubic_x{args.scale}", batch_size=args.batch,
                                     hr_crop=args.hr_crop, seed=args.seed)
    lr = hr // args.scale
    gen = tf.random.Generator.from_seed(args.seed)
    pair = (gen.uniform((args.batch, lr, lr, 3)), gen.uniform((args.batch, hr, hr, 3)))
    return tf.data.Dataset.from_tensors(pair).repeat()


@cli_entry
def main(argv):
    args = build_parser().parse_args(argv)
    hr = _check(args)
    import keras
    import numpy as np

    from sr_keras.train import distribute

    keras.utils.set_random_seed(args.seed)
    distribute.set_precision(args.precision)
    strategy = distribute.strategy_from_flag(args.strategy)
    with strategy.scope():
        model, generator = build_model(args, hr)
    ds = batches(args, hr)

    times, cpu_times = [], []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, batch, logs=None):
            float(next(iter(logs.values())))  # the step is done once its result is on the host
            times.append(time.perf_counter() - self.t0)
            cpu_times.append(time.process_time() - self.c0)

    t0 = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=args.warmup + args.steps, verbose=0, callbacks=[StepTimer()])
    total_s = time.perf_counter() - t0
    timed = np.array(times[args.warmup:])
    step_s = float(np.median(timed))
    result = {
        "benchmark": "train", "model": args.model, "scale": args.scale, "batch": args.batch, "hr_crop": hr,
        "step_s": round(step_s, 4), "patches_per_s": round(args.batch / step_s, 2),
        "precision": args.precision, "jit": args.jit, "device": device_name(),
        "steps": args.steps, "warmup": args.warmup, "step_s_min": round(float(timed.min()), 4),
        "step_s_mean": round(float(timed.mean()), 4),
        "cpu_s_per_step": round(float(np.median(cpu_times[args.warmup:])), 4), "first_step_s": round(times[0], 2),
        "total_s": round(total_s, 2), "strategy": args.strategy, "replicas": strategy.num_replicas_in_sync,
        "num_blocks": generator_blocks(args), "filters": args.filters, "data": args.data or "random",
        "peak_mem_mb": peak_memory_mb(),
    }
    if args.model in RRDB_MODELS:
        result["growth"] = args.growth
    if args.model not in GAN_MODELS:
        # Model FLOPs: 2 per MAC, and backward = 2x forward (input and weight gradients).
        macs = conv_macs(generator, (args.batch, hr // args.scale, hr // args.scale, 3))
        result["gflop_per_step"] = round(6 * macs / 1e9, 2)
        result["tflops"] = round(6 * macs / step_s / 1e12, 4)
    import tensorflow as tf

    result.update(tf=tf.__version__, keras=keras.__version__)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
