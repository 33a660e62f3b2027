"""PyTorch reference for `python -m benchmarks train`: the same SRResNet x4 (16 blocks, 64 filters,
BatchNorm, one shared PReLU slope per activation, pixel shuffle; 1,549,462 parameters), the same
Adam (lr 1e-4, eps 1e-8) and MSE, timed the same way.

    python -m benchmarks.torch_srresnet --batch 8 --hr-crop 180 --steps 8
    python -m benchmarks train --batch 8 --hr-crop 180 --steps 8          # the Keras side, same numbers

Prints one JSON line with the fields of `benchmarks train` (step_s is the median wall time of the timed
steps after --warmup untimed ones; each step ends when its loss reaches the host, as in Keras' fit with
the NaN guard). Fixed random batches, so the number is the model's step alone. PyTorch is an optional
extra for this comparison only, never a requirement of sr-keras: `pip install torch`.
"""
import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sr_keras.cli import parsing  # noqa: E402
from sr_keras.core.errors import UserError, cli_entry  # noqa: E402

SCALE = 4  # two x2 pixel-shuffle stages, as sr_keras.archs.models.srresnet(4)
at_least_one = parsing.checked(int, lambda v: v >= 1, "an integer >= 1 (the first step warms up the kernels)")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # autocast dtypes, as Keras' policies


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks.torch_srresnet", description=__doc__,
                                formatter_class=parsing.HelpFormatter)
    p.add_argument("--batch", type=parsing.positive_int, default=8, help="batch size")
    p.add_argument("--hr-crop", type=parsing.positive_int, default=180,
                   help="HR crop side (rounded down to a multiple of 4)")
    p.add_argument("--steps", type=parsing.positive_int, default=10, help="timed steps")
    p.add_argument("--warmup", type=at_least_one, default=2, help="untimed steps first")
    p.add_argument("--num-blocks", type=parsing.positive_int, default=16, help="residual blocks")
    p.add_argument("--filters", type=parsing.positive_int, default=64, help="feature channels")
    p.add_argument("--precision", choices=PRECISIONS, default="float32", help="autocast dtype of the forward pass")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu' or 'cuda'")
    p.add_argument("--seed", type=int, default=0, help="seed for weights and the random batches")
    return p


def srresnet(torch, num_blocks, filters):
    """The network of sr_keras.archs.models.srresnet(4) in PyTorch (NCHW)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(filters, filters, 3, padding=1), nn.BatchNorm2d(filters), nn.PReLU(),
                                      nn.Conv2d(filters, filters, 3, padding=1), nn.BatchNorm2d(filters))

        def forward(self, x):
            return x + self.body(x)

    class SRResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Sequential(nn.Conv2d(3, filters, 9, padding=4), nn.PReLU())
            self.blocks = nn.Sequential(*[Block() for _ in range(num_blocks)])
            self.body = nn.Sequential(nn.Conv2d(filters, filters, 3, padding=1), nn.BatchNorm2d(filters))
            self.up = nn.Sequential(*[m for _ in range(2) for m in (nn.Conv2d(filters, filters * 4, 3, padding=1),
                                                                    nn.PixelShuffle(2), nn.PReLU())])
            self.tail = nn.Conv2d(filters, 3, 9, padding=4)

        def forward(self, x):
            head = self.head(x)
            return self.tail(self.up(head + self.body(self.blocks(head))))

    return SRResNet()


def device_name(torch, device):
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)} x{torch.cuda.device_count()}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {model} ({os.cpu_count()} cores)"


@cli_entry
def main(argv):
    args = build_parser().parse_args(argv)
    hr = args.hr_crop // SCALE * SCALE
    if hr < SCALE:
        raise UserError(f"--hr-crop {args.hr_crop}: too small for x{SCALE}")
    try:
        import torch
    except ImportError:
        raise UserError("benchmarks/torch_srresnet.py needs PyTorch, an optional extra for this comparison "
                        "(pip install torch); sr-keras itself does not use it") from None
    import numpy as np

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif args.device in ("cpu", "cuda"):
        device = torch.device(args.device)
    else:
        raise UserError(f"--device {args.device}: expected auto, cpu or cuda")
    torch.manual_seed(args.seed)
    model = srresnet(torch, args.num_blocks, args.filters).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-8)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    lr_side = hr // SCALE
    lr = torch.rand((args.batch, 3, lr_side, lr_side), generator=generator).to(device)
    target = torch.rand((args.batch, 3, hr, hr), generator=generator).to(device)
    dtype = {"float32": None, "mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}[args.precision]
    scaler = torch.amp.GradScaler(device.type, enabled=args.precision == "mixed_float16")

    times = []
    t0 = time.perf_counter()
    for _ in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.mse_loss(model(lr).float(), target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss.item()  # the step is done once its loss is on the host
        times.append(time.perf_counter() - start)
    total_s = time.perf_counter() - t0
    timed = np.array(times[args.warmup:])
    step_s = float(np.median(timed))
    print(json.dumps({
        "benchmark": "train", "framework": "torch", "model": "srresnet", "scale": SCALE, "batch": args.batch,
        "hr_crop": hr, "step_s": round(step_s, 4), "patches_per_s": round(args.batch / step_s, 2),
        "precision": args.precision, "jit": False, "device": device_name(torch, device), "steps": args.steps,
        "warmup": args.warmup, "step_s_min": round(float(timed.min()), 4), "step_s_mean": round(float(timed.mean()), 4),
        "first_step_s": round(times[0], 2), "total_s": round(total_s, 2), "num_blocks": args.num_blocks,
        "filters": args.filters, "params": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
