"""Train SRGAN (report sections 3.2 and 4.6) or ESRGAN (Wang et al. 2018, the report's section 5.3), then
export the selected generator (--select). The report's SRGAN: G = SRResNet, D = the report's
discriminator, G's loss 2.0 * MSE + 1.0 * VGG19 content + 0.005 * adversarial. ESRGAN: G = RRDBNet, a
VGG-style D, the relativistic average GAN, VGG19 conv5_4 before its ReLU, L1.

    python train_srgan.py --track bicubic_x4 --data tfds                      # the report's run (from scratch)
    python train_srgan.py --track bicubic_x4 --init-generator saved_models/srresnet_bicubic_x4   # Ledig et al.
    python train_srgan.py --preset esrgan --data DIR    # ESRGAN from saved_models/rrdb_psnr_bicubic_x4

VGG19 ImageNet weights are downloaded by Keras on first use; offline, pass --vgg-weights PATH (the
vgg19 notop .h5 file). docs/srgan.md says which --content-input and which --select reproduce what;
docs/esrgan.md describes the ESRGAN options and its two-stage recipe.
"""
import os

from sr_keras.cli import parsing, training_flags
from sr_keras.core import tfbanner
from sr_keras.core.errors import UserError, cli_entry

# The report's SRGAN schedule (section 4.6); everything else as train_srresnet.py.
SRGAN_DEFAULTS = dict(lr_decay_epochs=150, patience=50)
# demo: fine-tunes the shipped demo model (train_srresnet.py's demo, same small architecture) on scikit-image
# photos; a few minutes on a 2-core CPU. It exports under runs/: saved_models/ holds only shipped models.
# It still needs VGG weights: --vgg-weights PATH, or random for a smoke run.
# esrgan: the paper's GAN stage (section 4.1) from train_srresnet.py --preset rrdb-psnr; its iterations
# are epochs of 1000 steps (Adam 1e-4 halved after 50k, 100k, 200k, 300k of 400k steps). GAN quality is
# not validation PSNR, so it exports the last epoch's generator.
PRESETS = {
    "demo": dict(data="samples", track="bicubic_x4", num_blocks=6, filters=32, batch_norm=False,
                 bicubic_skip=True, init_generator=os.path.join("saved_models", "demo_x4"), hr_crop=96,
                 batch_size=8, augment_p=0.5, epochs=3, steps_per_epoch=20, patience=1000, seed=0,
                 test_images=-1, fresh=True, out=os.path.join("runs", "srgan_demo_x4"),
                 export=os.path.join("runs", "srgan_demo_x4", "export")),
    "esrgan": dict(generator="rrdb", num_blocks=23, filters=64, growth=32, gan="relativistic", discriminator="vgg",
                   content_layer="block5_conv4", content_activation="before", content_criterion="l1",
                   content_scale=1.0, pixel_loss="l1", pixel_weight=1e-2, content_weight=1.0,
                   adversarial_weight=5e-3, lr=1e-4, lr_schedule="milestones", lr_milestones=(50, 100, 200, 300),
                   lr_decay_factor=0.5, steps_per_epoch=1000, epochs=400, hr_crop=128, batch_size=16,
                   augment_p=0.5, select="last", init_generator=os.path.join("saved_models", "rrdb_psnr_{track}"),
                   out=os.path.join("runs", "esrgan_{track}"), export=os.path.join("saved_models", "esrgan_{track}")),
}
# what to do when a preset's --init-generator is missing (the demo's is shipped; its own run exports under runs/)
HINTS = {"demo": "run `python train_srresnet.py --preset demo` first and pass --init-generator runs/demo_x4/export",
         "esrgan": "run `python train_srresnet.py --preset rrdb-psnr` first"}
# G's and D's loss settings: a resumed run must repeat them (its checkpoint's losses would mean something else)
LOSS_FLAGS = ("gan", "discriminator", "pixel_loss", "content_input", "content_layer", "content_activation",
              "content_criterion", "content_scale", "pixel_weight", "content_weight", "adversarial_weight")


def build_parser():
    from sr_keras.train.gan import DISCRIMINATORS, GAN_TYPES
    from sr_keras.train.losses import CONTENT_ACTIVATIONS, CONTENT_CRITERIA, CONTENT_INPUTS, PIXEL_LOSSES

    parser = parsing.ArgumentParser(description=__doc__)
    training_flags.add_common_args(parser, defaults=SRGAN_DEFAULTS, presets=PRESETS, model_name="srgan")
    training_flags.add_select_arg(parser)
    add = parser.add_argument
    add("--init-generator", default=None, metavar="PATH",
        help="start G from a train_srresnet.py export folder (its model.keras), a .keras, a SavedModel folder "
             "or a .weights.h5 (Ledig et al.; ESRGAN: the PSNR-oriented RRDBNet); default: from scratch, as the "
             "report's code. Architecture flags must match it. --resume takes precedence")
    add("--trust-model", action="store_true",
        help="with --init-generator, load a SavedModel folder without model.keras (refused otherwise); its graph "
             "is still checked against the tensor-math allowlist (docs/reliability.md, Threat model): only for "
             "SavedModels you wrote yourself")
    add("--gan", choices=GAN_TYPES, default="standard",
        help="adversarial losses: standard (SRGAN: D(x) = sigmoid(C(x))) or relativistic (ESRGAN's relativistic "
             "average GAN: sigmoid(C(x_r) - E[C(x_f)]), both terms in G's loss)")
    add("--discriminator", choices=DISCRIMINATORS, default="report",
        help="report: the report's D; vgg: ESRGAN's VGG-style D (--hr-crop divisible by 32)")
    add("--vgg-weights", default="imagenet", metavar="imagenet|PATH|random",
        help="VGG19 weights for the content loss: 'imagenet' (Keras download/cache), the notop .h5 file, or "
             "'random' (offline smoke tests only: the content loss is then meaningless)")
    add("--content-input", choices=CONTENT_INPUTS, default="imagenet",
        help="VGG19 input: 'imagenet' = x255 + vgg19.preprocess_input (Ledig et al.); "
             "'report' = raw [0,1] RGB (the report's code)")
    add("--content-layer", default="block5_conv4", help="VGG19 layer of the content loss")
    add("--content-activation", choices=CONTENT_ACTIVATIONS, default="after",
        help="features after the layer's ReLU (SRGAN) or before it (ESRGAN; a conv layer)")
    add("--content-criterion", choices=CONTENT_CRITERIA, default="mse",
        help="feature distance: mse (SRGAN) or l1 (ESRGAN's code)")
    add("--content-scale", type=parsing.non_negative_float, default=0.006,
        help="factor on the feature distance (the report's code; finite, >= 0)")
    add("--pixel-loss", choices=tuple(PIXEL_LOSSES), default="mse", help="pixel loss: mse (SRGAN) or l1 (ESRGAN)")
    add("--pixel-weight", type=parsing.non_negative_float, default=2.0,
        help="weight of the pixel loss in G's loss (finite, >= 0)")
    add("--content-weight", type=parsing.non_negative_float, default=1.0,
        help="weight of the content loss in G's loss (finite, >= 0)")
    add("--adversarial-weight", type=parsing.non_negative_float, default=0.005,
        help="weight of the adversarial loss in G's loss (finite, >= 0)")
    return parser


def check_crop(hr_crop, scale, discriminator):
    """The HR crop side the discriminator sees (the pipeline rounds --hr-crop down to a multiple of the scale).
    It is at least 16 pixels, the report discriminator's least, as loop.check_hr_crop's minimum is."""
    from sr_keras.train.loop import check_hr_crop

    hr_size = check_hr_crop(hr_crop, scale)
    if discriminator == "vgg" and hr_size % 32:
        rounded = f" ({hr_size} after rounding down to a multiple of x{scale})" if hr_size != hr_crop else ""
        raise UserError(f"--hr-crop {hr_crop}: --discriminator vgg needs an HR crop divisible by 32{rounded}, "
                        "e.g. 128 (its five stride-2 convs)")
    return hr_size


@cli_entry
def main(argv=None):
    tfbanner.hide_tensorflow_banner()  # before anything imports TensorFlow
    from sr_keras.data import loaders
    from sr_keras.infer import loading
    from sr_keras.train import loop

    args = training_flags.resolve_paths(training_flags.parse_args(build_parser(), argv, PRESETS), "srgan")
    train = training_flags.train_config(args)
    parent = None
    if args.init_generator and not train.resume:  # before --fresh removes anything (runs.prepare_run)
        try:  # a path, or a model name (saved_models/, $SR_KERAS_MODELS)
            path = loading.resolve_model(args.init_generator, flag="--init-generator")
        except UserError as e:
            hint = f"; {HINTS[args.preset]}" if args.preset in HINTS else ""
            raise UserError(f"{e}{hint}") from None
        loading.resolve_checked(path, "--init-generator", args.trust_model)  # a SavedModel alone: checked now
        parent = loading.load_generator_config(path)  # None without generator.json: the flags say it all
    elif args.init_generator:  # a resumed run's architecture came from the parent too, if it is still there
        try:
            parent = loading.load_generator_config(loading.resolve_model(args.init_generator, "--init-generator"))
        except UserError:
            pass  # the parent is gone: the flags, which --resume compares with the checkpoint's
    generator_config = training_flags.generator_config(args, loaders.scale_of(train.track), parent,
                                            f"--init-generator {args.init_generator}")
    hr_size = check_crop(train.hr_crop, generator_config.scale, args.discriminator)
    created = loop.check_outputs(train)
    with loop.holding_run_folder(train, created):
        _train(args, train, generator_config, hr_size)


def _train(flags, train, generator_config, hr_size):
    """The run, from its checked flags, while this process holds the run folder."""
    from sr_keras.archs.models import count_trainable
    from sr_keras.train import distribute, gan, loop, losses, runs

    scale = generator_config.scale
    config = runs.resume_config("srgan", generator_config, train.precision, hr_crop=train.hr_crop, ema=train.ema,
                                degradation=train.degradation,
                                **{name: getattr(flags, name) for name in LOSS_FLAGS})
    state = runs.prepare_run(train, config)
    start = state.epoch if state else 0
    distribute.seed_everything(train.seed)
    distribute.set_precision(train.precision)
    strategy = distribute.strategy_from_flag(train.strategy)

    content = None  # --content-weight 0: pixel + adversarial (Ledig et al.'s SRGAN-MSE); VGG is never built
    if flags.content_weight > 0:
        with strategy.scope():
            # First, so that unavailable VGG weights stop the run within seconds, before any data is read.
            content = losses.VGGContentLoss(layer=flags.content_layer, scale=flags.content_scale,
                                            input_mode=flags.content_input, weights=flags.vgg_weights,
                                            activation=flags.content_activation,
                                            criterion=flags.content_criterion)
    train_ds, val_ds = loop.datasets(train, start)

    with strategy.scope():
        generator = loop.make_generator(generator_config)
        if flags.init_generator and not state:
            gan.load_init_generator(generator, flags.init_generator, generator_config, flags.trust_model)
            print(f"generator initialised from {flags.init_generator} ({generator_config.describe()})")
        model = gan.build_srgan_trainer(generator, hr_size, content, scale, lr=train.lr,
                                        pixel_weight=flags.pixel_weight, content_weight=flags.content_weight,
                                        adversarial_weight=flags.adversarial_weight, jit=train.jit, gan=flags.gan,
                                        discriminator=flags.discriminator, pixel_loss=flags.pixel_loss, ema=train.ema)
        if state:
            runs.restore(model, train.out, state)
            note = f"; --init-generator {flags.init_generator} ignored" if flags.init_generator else ""
            print(f"resuming {train.out} after epoch {start} (G step {int(model.g_optimizer.iterations)}, "
                  f"D step {int(model.d_optimizer.iterations)}){note}")
    print(f"{'ESRGAN' if flags.gan == 'relativistic' else 'SRGAN'} x{scale}: G ({generator_config.arch}) "
          f"{count_trainable(generator):,} and D ({flags.discriminator}) {count_trainable(model.discriminator):,} "
          f"trainable parameters (D on {hr_size}x{hr_size} crops); run folder {train.out}")

    chief = distribute.is_chief(strategy)
    loop.fit(train, model, generator, train_ds, val_ds, scale, config, state=state, chief=chief)
    if chief:
        loop.finish_run(train, generator_config)
