"""Train SRResNet (report section 4.5) or ESRGAN's PSNR-oriented RRDBNet with Keras model.fit, then
export the best model.

    python train_srresnet.py --preset demo                   # offline demo: scikit-image photos, x4, CPU
    python train_srresnet.py --track bicubic_x4 --data tfds  # the report's run (GPU, DIV2K via tfds)
    python train_srresnet.py --preset rrdb-psnr --data DIR   # ESRGAN's first stage (docs/esrgan.md)

Defaults are the report's settings; docs/training.md lists what the demo preset changes and why.
"""
from sr_keras.archs import registry
from sr_keras.cli import parsing, training_flags
from sr_keras.core import tfbanner
from sr_keras.core.errors import UserError, cli_entry
from sr_keras.train import recipes, runner


def build_parser():
    from sr_keras.train import losses  # here: importing it imports TensorFlow

    parser = parsing.ArgumentParser(description=__doc__)
    training_flags.add_common_args(parser, presets=recipes.SRRESNET_PRESETS, model_name="srresnet")
    parser.add_argument("--loss", choices=tuple(losses.KERAS_PIXEL_LOSSES), default="mse",
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

    presets = recipes.SRRESNET_PRESETS
    args = training_flags.resolve_paths(training_flags.parse_args(build_parser(), argv, presets), "srresnet")
    train = training_flags.train_config(args)
    if args.init_trunk and args.init_generator:
        raise UserError("--init-trunk and --init-generator both start the generator: give one of them")
    parent = init = None
    if args.init_generator:  # resolved (and a SavedModel alone checked) before any slow or destructive work
        with parsing.naming_flags(**training_flags.INIT_GENERATOR_FLAGS):
            init = loading.resolve(args.init_generator, args.trust_model)
        parent = loading.load_generator_config(init.path)  # None without generator.json: the flags say it all
    generator_config = training_flags.generator_config(args, loaders.scale_of(train.track), parent,
                                                       f"--init-generator {args.init_generator}")
    loop.check_hr_crop(train.hr_crop, generator_config.scale)
    if args.init_trunk and generator_config.arch != registry.SRRESNET.arch:
        raise UserError(f"--init-trunk {args.init_trunk}: SRResNet layers; not for --generator rrdb")
    with parsing.naming_flags(**training_flags.OUTPUT_FLAGS):
        runner.run(train, generator_config, SRResNetTrainer(args, init))


class SRResNetTrainer(runner.TrainerBuilder):
    """train_srresnet.py's trainer: the generator compiled with --loss (loop.build_srresnet_trainer), started
    from --init-trunk or --init-generator unless resumed.

    Args:
        flags: the parsed flags (--loss, --init-trunk, --init-generator, --trust-model).
        init: --init-generator's loading.ModelRef, resolved (and checked) once by main; None without one.
    """
    model = "srresnet"

    def __init__(self, flags, init=None):
        self.flags, self.init = flags, init

    def settings(self, train):
        return {"loss": self.flags.loss}

    def build(self, train, generator_config, state):
        from sr_keras.train import loop

        flags = self.flags
        trainer, generator = loop.build_srresnet_trainer(generator_config, lr=train.lr, loss=flags.loss,
                                                         jit=train.jit, ema=train.ema)
        if state:
            return trainer, generator
        if flags.init_trunk:
            with parsing.naming_flags(**training_flags.INIT_TRUNK_FLAGS):
                copied = loop.init_trunk(generator, flags.init_trunk)
            print(f"trunk initialised from {flags.init_trunk} ({copied} layers)")
        elif flags.init_generator:
            from sr_keras.train.gan import load_init_generator

            with parsing.naming_flags(**training_flags.INIT_GENERATOR_FLAGS):
                load_init_generator(generator, self.init, generator_config, flags.trust_model)
            print(f"generator initialised from {flags.init_generator} ({generator_config.describe()})")
        return trainer, generator

    def resumed(self, trainer):
        return f"(optimizer step {int(trainer.optimizer.iterations)})"

    def summary(self, train, generator_config, trainer, generator):
        from sr_keras.archs.models import count_trainable

        name = registry.ARCHITECTURES[generator_config.arch].title
        return (f"{name} x{generator_config.scale}: {count_trainable(generator):,} trainable parameters; "
                f"run folder {train.out}\n"
                f"psnr, ssim: this epoch's random {train.hr_crop}px training crops (flat ones score high, so psnr "
                "sits above val_psnr); val_psnr, val_ssim: the whole validation photographs, the figures to compare")
