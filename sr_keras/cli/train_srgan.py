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
from sr_keras.cli import parsing, training_flags
from sr_keras.core import tfbanner
from sr_keras.core.errors import UserError, cli_entry
from sr_keras.train import recipes, runner

# G's and D's loss settings: a resumed run must repeat them (its checkpoint's losses would mean something else)
LOSS_FLAGS = ("gan", "discriminator", "pixel_loss", "content_input", "content_layer", "content_activation",
              "content_criterion", "content_scale", "pixel_weight", "content_weight", "adversarial_weight")


def build_parser():
    from sr_keras.train.gan import DISCRIMINATORS, GAN_TYPES
    from sr_keras.train.losses import CONTENT_ACTIVATIONS, CONTENT_CRITERIA, CONTENT_INPUTS, PIXEL_LOSSES

    parser = parsing.ArgumentParser(description=__doc__)
    training_flags.add_common_args(parser, defaults=recipes.SRGAN_DEFAULTS, presets=recipes.SRGAN_PRESETS,
                                   model_name="srgan")
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

    args = training_flags.resolve_paths(training_flags.parse_args(build_parser(), argv, recipes.SRGAN_PRESETS),
                                        "srgan")
    train = training_flags.train_config(args)
    parent, init = None, args.init_generator
    if args.init_generator and not train.resume:  # before --fresh removes anything (runs.prepare_run)
        try:  # a path, or a model name (saved_models/, $SR_KERAS_MODELS)
            with parsing.naming_flags(**training_flags.INIT_GENERATOR_FLAGS):
                init = loading.resolve(args.init_generator, check=False)
        except UserError as e:
            hints = recipes.SRGAN_HINTS
            hint = f"; {hints[args.preset]}" if args.preset in hints else ""
            raise UserError(f"{e}{hint}") from None
        with parsing.naming_flags(**training_flags.INIT_GENERATOR_FLAGS):
            init = loading.resolve(init, args.trust_model)  # a SavedModel alone: checked now
        parent = loading.load_generator_config(init.path)  # None without generator.json: the flags say it all
    elif args.init_generator:  # a resumed run's architecture came from the parent too, if it is still there
        try:
            parent = loading.load_generator_config(loading.resolve_model(args.init_generator))
        except UserError:
            pass  # the parent is gone: the flags, which --resume compares with the checkpoint's
    generator_config = training_flags.generator_config(args, loaders.scale_of(train.track), parent,
                                                       f"--init-generator {args.init_generator}")
    hr_size = check_crop(train.hr_crop, generator_config.scale, args.discriminator)
    with parsing.naming_flags(**training_flags.OUTPUT_FLAGS):
        runner.run(train, generator_config, GANTrainer(args, hr_size, init))


class GANTrainer(runner.TrainerBuilder):
    """train_srgan.py's trainer: G, D and the VGG content loss in one model (gan.build_srgan_trainer), G
    started from --init-generator unless resumed.

    Args:
        flags: the parsed flags (the loss flags, --init-generator, --trust-model, --vgg-weights).
        hr_size: the HR crop side D sees (check_crop).
        init: the --init-generator model: the loading.ModelRef main resolved (and checked), as given on a
            resumed run, or None.
    """
    model = "srgan"

    def __init__(self, flags, hr_size, init=None):
        self.flags, self.hr_size = flags, hr_size
        self.init = init  # --init-generator: the loading.ModelRef resolved (and checked) by main, or as given
        self.content = None  # --content-weight 0: pixel + adversarial (Ledig et al.'s SRGAN-MSE); no VGG

    def settings(self, train):
        return {"hr_crop": train.hr_crop, **{name: getattr(self.flags, name) for name in LOSS_FLAGS}}

    def before_data(self, train, strategy):
        from sr_keras.train import losses

        flags = self.flags
        if flags.content_weight > 0:
            with strategy.scope():
                # First, so that unavailable VGG weights stop the run within seconds, before any data is read.
                self.content = losses.VGGContentLoss(layer=flags.content_layer, scale=flags.content_scale,
                                                     input_mode=flags.content_input, weights=flags.vgg_weights,
                                                     activation=flags.content_activation,
                                                     criterion=flags.content_criterion)

    def build(self, train, generator_config, state):
        from sr_keras.train import gan, loop

        flags = self.flags
        generator = loop.make_generator(generator_config)
        if flags.init_generator and not state:
            with parsing.naming_flags(**training_flags.INIT_GENERATOR_FLAGS):
                gan.load_init_generator(generator, self.init, generator_config, flags.trust_model)
            print(f"generator initialised from {flags.init_generator} ({generator_config.describe()})")
        model = gan.build_srgan_trainer(generator, self.hr_size, self.content, generator_config.scale, lr=train.lr,
                                        pixel_weight=flags.pixel_weight, content_weight=flags.content_weight,
                                        adversarial_weight=flags.adversarial_weight, jit=train.jit, gan=flags.gan,
                                        discriminator=flags.discriminator, pixel_loss=flags.pixel_loss, ema=train.ema)
        return model, generator

    def resumed(self, trainer):
        note = f"; --init-generator {self.flags.init_generator} ignored" if self.flags.init_generator else ""
        return f"(G step {int(trainer.g_optimizer.iterations)}, D step {int(trainer.d_optimizer.iterations)}){note}"

    def summary(self, train, generator_config, trainer, generator):
        from sr_keras.archs.models import count_trainable

        flags = self.flags
        return (f"{'ESRGAN' if flags.gan == 'relativistic' else 'SRGAN'} x{generator_config.scale}: G "
                f"({generator_config.arch}) {count_trainable(generator):,} and D ({flags.discriminator}) "
                f"{count_trainable(trainer.discriminator):,} trainable parameters (D on {self.hr_size}x{self.hr_size} "
                f"crops); run folder {train.out}")
