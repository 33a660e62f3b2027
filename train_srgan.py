#!/usr/bin/env python3
"""Train SRGAN (report sections 3.2 and 4.6): G = SRResNet, D = the report's discriminator, G's loss
2.0 * MSE + 1.0 * VGG19 content + 0.005 * adversarial; then export the selected generator (--select).

    python train_srgan.py --track bicubic_x4 --data tfds                      # the report's run (from scratch)
    python train_srgan.py --track bicubic_x4 --init-generator saved_models/srresnet_bicubic_x4   # Ledig et al.

VGG19 ImageNet weights are downloaded by Keras on first use; offline, pass --vgg-weights PATH (the
vgg19 notop .h5 file). docs/srgan.md says which --content-input and which --select reproduce what.
"""
import argparse
import os

from sr_keras import cli

cli.hide_tensorflow_banner()

from sr_keras import data, distribute, runs, training  # noqa: E402
from sr_keras.errors import UserError, cli_entry  # noqa: E402
from sr_keras.models import count_trainable  # noqa: E402

# The report's SRGAN schedule (section 4.6); everything else as train_srresnet.py.
SRGAN_DEFAULTS = dict(lr_decay_epochs=150, patience=50)
# Fine-tunes train_srresnet.py's demo model (same small architecture) on scikit-image photos; a few
# minutes on a 2-core CPU. It still needs VGG weights: --vgg-weights PATH, or random for a smoke run.
PRESETS = {
    "demo": dict(data="samples", track="bicubic_x4", num_blocks=6, filters=32, batch_norm=False,
                 bicubic_skip=True, init_generator=os.path.join("saved_models", "demo_x4"), hr_crop=96,
                 batch_size=8, augment_p=0.5, epochs=3, steps_per_epoch=20, patience=1000, seed=0,
                 test_images=-1, fresh=True, out=os.path.join("runs", "srgan_demo_x4"),
                 export=os.path.join("saved_models", "srgan_demo_x4")),
}
# G's loss settings: a resumed run must repeat them (its checkpoint's losses would mean something else)
LOSS_FLAGS = ("content_input", "content_layer", "content_scale", "pixel_weight", "content_weight",
              "adversarial_weight")


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=cli.HelpFormatter)
    cli.add_common_args(parser, defaults=SRGAN_DEFAULTS, presets=PRESETS, model_name="srgan")
    cli.add_select_arg(parser)
    add = parser.add_argument
    add("--init-generator", default=None, metavar="PATH",
        help="start G from a train_srresnet.py export folder (its model.keras), a .keras, a SavedModel folder "
             "or a .weights.h5 (Ledig et al.); default: from scratch, as the report's code. Architecture flags "
             "must match it. --resume takes precedence")
    add("--vgg-weights", default="imagenet", metavar="imagenet|PATH|random",
        help="VGG19 weights for the content loss: 'imagenet' (Keras download/cache), the notop .h5 file, or "
             "'random' (offline smoke tests only: the content loss is then meaningless)")
    add("--content-input", choices=("imagenet", "report"), default="imagenet",
        help="VGG19 input: 'imagenet' = x255 + vgg19.preprocess_input (Ledig et al.); "
             "'report' = raw [0,1] RGB (the report's code)")
    add("--content-layer", default="block5_conv4", help="VGG19 layer of the content loss (after its ReLU)")
    add("--content-scale", type=float, default=0.006, help="factor on the feature MSE (the report's code)")
    add("--pixel-weight", type=float, default=2.0, help="weight of the pixel MSE in G's loss")
    add("--content-weight", type=float, default=1.0, help="weight of the content loss in G's loss")
    add("--adversarial-weight", type=float, default=0.005, help="weight of BCE(D(SR), 1) in G's loss")
    return parser


@cli_entry
def main(argv=None):
    args = cli.resolve_paths(cli.parse_args(build_parser(), argv, PRESETS), "srgan")
    train = cli.train_config(args)
    generator_config = cli.generator_config(args, data.scale_of(train.track))
    scale = generator_config.scale
    hr_size = train.hr_crop // scale * scale  # the data pipeline rounds the crop down to a multiple of the scale
    if hr_size < 16:
        raise UserError(f"--hr-crop {train.hr_crop}: the discriminator needs HR crops of at least 16 pixels")
    from sr_keras.export import check_export_dir

    check_export_dir(train.export)
    config = runs.resume_config("srgan", generator_config, train.precision, hr_crop=train.hr_crop,
                                **{name: getattr(args, name) for name in LOSS_FLAGS})
    state = runs.prepare_run(train, config)
    if args.init_generator and not state and not os.path.exists(args.init_generator):
        hint = "; run `python train_srresnet.py --preset demo` first" if args.preset == "demo" else ""
        raise UserError(f"--init-generator {args.init_generator}: no such file or folder{hint}")
    start = state.epoch if state else 0
    distribute.seed_everything(train.seed)
    distribute.set_precision(train.precision)
    strategy = distribute.strategy_from_flag(train.strategy)

    from sr_keras import gan, losses

    with strategy.scope():
        # First, so that unavailable VGG weights stop the run within seconds, before any data is read.
        content = losses.VGGContentLoss(layer=args.content_layer, scale=args.content_scale,
                                        input_mode=args.content_input, weights=args.vgg_weights)
    train_ds, val_ds = training.datasets(train, start)

    with strategy.scope():
        generator = training.make_generator(generator_config)
        if args.init_generator and not state:
            gan.load_init_generator(generator, args.init_generator, generator_config)
            print(f"generator initialised from {args.init_generator}")
        model = gan.build_srgan_trainer(generator, hr_size, content, scale, lr=train.lr,
                                        pixel_weight=args.pixel_weight, content_weight=args.content_weight,
                                        adversarial_weight=args.adversarial_weight, jit=train.jit)
        if state:
            runs.restore(model, train.out, state)
            note = f"; --init-generator {args.init_generator} ignored" if args.init_generator else ""
            print(f"resuming {train.out} after epoch {start} (G step {int(model.g_optimizer.iterations)}, "
                  f"D step {int(model.d_optimizer.iterations)}){note}")
    print(f"SRGAN x{scale}: G {count_trainable(generator):,} and D {count_trainable(model.discriminator):,} "
          f"trainable parameters (D on {hr_size}x{hr_size} crops); run folder {train.out}")

    chief = distribute.is_chief(strategy)
    training.fit(train, model, generator, train_ds, val_ds, scale, config, state=state, chief=chief)
    if chief:
        training.finish_run(train, generator_config)


if __name__ == "__main__":
    main()
