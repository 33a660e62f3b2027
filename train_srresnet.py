#!/usr/bin/env python3
"""Train SRResNet (report section 4.5) with Keras model.fit, then export the best model.

    python train_srresnet.py --preset demo                   # offline demo: scikit-image photos, x4, CPU
    python train_srresnet.py --track bicubic_x4 --data tfds  # the report's run (GPU, DIV2K via tfds)

Defaults are the report's settings; docs/training.md lists what the demo preset changes and why.
"""
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sr_keras import data, training  # noqa: E402
from sr_keras.errors import cli_entry  # noqa: E402
from sr_keras.models import count_trainable  # noqa: E402

# Learns fast on a 2-core CPU: a small BN-free residual net with a bicubic global skip (it starts at
# bicubic and only learns the residual) and a 10x higher cosine-decayed learning rate. docs/training.md.
# fresh: running the demo again starts it over instead of refusing the run folder of the last demo.
PRESETS = {
    "demo": dict(data="samples", track="bicubic_x4", num_blocks=6, filters=32, batch_norm=False,
                 bicubic_skip=True, loss="mse", lr=1e-3, lr_schedule="cosine", hr_crop=96, batch_size=16,
                 augment_p=0.5, epochs=10, steps_per_epoch=90, patience=1000, seed=0, test_images=-1, fresh=True,
                 out=os.path.join("runs", "demo_x4"), export=os.path.join("saved_models", "demo_x4")),
}


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=training.HelpFormatter)
    training.add_common_args(parser, presets=PRESETS, model_name="srresnet")
    parser.add_argument("--loss", choices=("mse", "l1"), default="mse", help="pixel loss (the report: mse)")
    parser.add_argument("--init-trunk", default=None,
                        help="start the trunk (head, residual blocks, body conv) from a trained SRResNet of any "
                             "scale: an export folder or .keras file (EDSR's trick; --resume takes precedence)")
    return parser


def model_config(args, scale):
    return {"model": "srresnet", "scale": scale, "num_blocks": args.num_blocks, "filters": args.filters,
            "batch_norm": args.batch_norm, "bicubic_skip": args.bicubic_skip}


@cli_entry
def main(argv=None):
    args = training.resolve_paths(training.parse_args(build_parser(), argv, PRESETS), "srresnet")
    scale = data.scale_of(args.track)
    from sr_keras.export import check_export_dir

    check_export_dir(args.export)
    config = model_config(args, scale)
    state = training.prepare_run(args, config)
    start = state["epoch"] if state else 0
    training.seed_everything(args.seed)
    training.set_precision(args.precision)
    strategy = training.strategy_from_flag(args.strategy)

    train_ds, val_ds = training.datasets(args, start)

    with strategy.scope():
        trainer, generator = training.build_srresnet_trainer(
            scale, num_blocks=args.num_blocks, filters=args.filters, batch_norm=args.batch_norm,
            bicubic_skip=args.bicubic_skip, lr=args.lr, loss=args.loss, jit=args.jit)
        if state:
            training.restore(trainer, args.out, state)
            print(f"resuming {args.out} after epoch {start} (optimizer step {int(trainer.optimizer.iterations)})")
        elif args.init_trunk:
            copied = training.init_trunk(generator, args.init_trunk)
            print(f"trunk initialised from {args.init_trunk} ({copied} layers)")
    print(f"SRResNet x{scale}: {count_trainable(generator):,} trainable parameters; run folder {args.out}")

    chief = training.is_chief(strategy)
    training.fit(args, trainer, generator, train_ds, val_ds, scale, config, state=state, chief=chief)
    if not chief:
        return
    training.finish_run(args, scale)


if __name__ == "__main__":
    main()
