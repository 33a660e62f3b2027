"""Train SRResNet (report section 4.5) or ESRGAN's PSNR-oriented RRDBNet with Keras model.fit, then
export the best model.

    python train_srresnet.py --preset demo                   # offline demo: scikit-image photos, x4, CPU
    python train_srresnet.py --track bicubic_x4 --data tfds  # the report's run (GPU, DIV2K via tfds)
    python train_srresnet.py --preset rrdb-psnr --data DIR   # ESRGAN's first stage (docs/esrgan.md)

Defaults are the report's settings; docs/training.md lists what the demo preset changes and why.
"""
import os

from sr_keras.cli import parsing, training_flags
from sr_keras.core import tfbanner
from sr_keras.core.errors import UserError, cli_entry

# Learns fast on a 2-core CPU: a small BN-free residual net with a bicubic global skip (it starts at
# bicubic and only learns the residual) and a 10x higher cosine-decayed learning rate. docs/training.md.
# fresh: running the demo again starts it over instead of refusing the run folder of the last demo.
# export: under runs/, so that the demo never overwrites the shipped, tracked saved_models/demo_x4.
PRESETS = {
    "demo": dict(data="samples", track="bicubic_x4", num_blocks=6, filters=32, batch_norm=False,
                 bicubic_skip=True, loss="mse", lr=1e-3, lr_schedule="cosine", hr_crop=96, batch_size=16,
                 augment_p=0.5, epochs=10, steps_per_epoch=90, patience=1000, seed=0, test_images=-1, fresh=True,
                 out=os.path.join("runs", "demo_x4"), export=os.path.join("runs", "demo_x4", "export")),
    # ESRGAN's PSNR-oriented RRDBNet (section 4.1): L1, Adam 2e-4 halved every 200k of 1M steps (epochs of
    # 1000 steps), HR crop 128, batch 16; the fixed schedule runs to the end (no early stopping)
    "rrdb-psnr": dict(generator="rrdb", num_blocks=23, filters=64, growth=32, loss="l1", lr=2e-4,
                      lr_schedule="step", lr_decay_epochs=200, lr_decay_factor=0.5, steps_per_epoch=1000,
                      epochs=1000, patience=1000, hr_crop=128, batch_size=16, augment_p=0.5,
                      out=os.path.join("runs", "rrdb_psnr_{track}"),
                      export=os.path.join("saved_models", "rrdb_psnr_{track}")),
}


def build_parser():
    from sr_keras.train import loop  # here: importing it imports TensorFlow

    parser = parsing.ArgumentParser(description=__doc__)
    training_flags.add_common_args(parser, presets=PRESETS, model_name="srresnet")
    parser.add_argument("--loss", choices=tuple(loop.PIXEL_LOSSES), default="mse",
                        help="pixel loss (the report: mse; ESRGAN's PSNR-oriented RRDBNet: l1)")
    parser.add_argument("--init-trunk", default=None,
                        help="start the trunk (head, residual blocks, body conv) from a trained SRResNet of any "
                             "scale: an export folder or .keras file (EDSR's trick; --resume takes precedence)")
    parser.add_argument("--init-generator", default=None,
                        help="start from all the weights of a trained generator of the same scale and architecture "
                             "(a model name, export folder or .keras file), e.g. to fine-tune it with "
                             "--degradation realistic; --resume takes precedence")
    parser.add_argument("--trust-model", action="store_true",
                        help="with --init-generator, load a SavedModel folder without model.keras (refused "
                             "otherwise); its graph is still checked against the tensor-math allowlist "
                             "(docs/reliability.md, Threat model): only for SavedModels you wrote yourself")
    # validation is clean bicubic LR: with --degradation, "last" exports the most adapted generator
    training_flags.add_select_arg(parser)
    return parser


@cli_entry
def main(argv=None):
    tfbanner.hide_tensorflow_banner()  # before anything imports TensorFlow
    from sr_keras.data import loaders
    from sr_keras.infer import loading
    from sr_keras.train import loop

    args = training_flags.resolve_paths(training_flags.parse_args(build_parser(), argv, PRESETS), "srresnet")
    train = training_flags.train_config(args)
    if args.init_trunk and args.init_generator:
        raise UserError("--init-trunk and --init-generator both start the generator: give one of them")
    parent = None
    if args.init_generator:  # resolved (and a SavedModel alone checked) before any slow or destructive work
        path, _ = loading.resolve_checked(args.init_generator, "--init-generator", args.trust_model)
        parent = loading.load_generator_config(path)  # None without generator.json: the flags say it all
    generator_config = training_flags.generator_config(args, loaders.scale_of(train.track), parent,
                                            f"--init-generator {args.init_generator}")
    loop.check_hr_crop(train.hr_crop, generator_config.scale)
    if args.init_trunk and generator_config.arch != "srresnet":
        raise UserError(f"--init-trunk {args.init_trunk}: SRResNet layers; not for --generator rrdb")
    created = loop.check_outputs(train)
    with loop.holding_run_folder(train, created):
        _train(args, train, generator_config)


def _train(flags, train, generator_config):
    """The run, from its checked flags, while this process holds the run folder."""
    from sr_keras.archs.models import count_trainable
    from sr_keras.train import distribute, loop, runs

    config = runs.resume_config("srresnet", generator_config, train.precision, loss=flags.loss, ema=train.ema,
                                degradation=train.degradation)
    state = runs.prepare_run(train, config)
    start = state.epoch if state else 0
    distribute.seed_everything(train.seed)
    distribute.set_precision(train.precision)
    strategy = distribute.strategy_from_flag(train.strategy)

    train_ds, val_ds = loop.datasets(train, start)

    with strategy.scope():
        trainer, generator = loop.build_srresnet_trainer(generator_config, lr=train.lr, loss=flags.loss,
                                                             jit=train.jit, ema=train.ema)
        if state:
            runs.restore(trainer, train.out, state)
            print(f"resuming {train.out} after epoch {start} (optimizer step {int(trainer.optimizer.iterations)})")
        elif flags.init_trunk:
            copied = loop.init_trunk(generator, flags.init_trunk)
            print(f"trunk initialised from {flags.init_trunk} ({copied} layers)")
        elif flags.init_generator:
            from sr_keras.train.gan import load_init_generator

            load_init_generator(generator, flags.init_generator, generator_config, flags.trust_model)
            print(f"generator initialised from {flags.init_generator} ({generator_config.describe()})")
    name = "RRDBNet" if generator_config.arch == "rrdbnet" else "SRResNet"
    print(f"{name} x{generator_config.scale}: {count_trainable(generator):,} trainable parameters; "
          f"run folder {train.out}")
    print(f"psnr, ssim: this epoch's random {train.hr_crop}px training crops (flat ones score high, so psnr sits "
          "above val_psnr); val_psnr, val_ssim: the whole validation photographs, the figures to compare")

    chief = distribute.is_chief(strategy)
    loop.fit(train, trainer, generator, train_ds, val_ds, generator_config.scale, config, state=state,
                 chief=chief)
    if chief:
        loop.finish_run(train, generator_config)

