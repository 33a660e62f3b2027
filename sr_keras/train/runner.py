"""The run loop both training scripts share (run): hold the run folder, check it against --resume and
--fresh, seed and set the precision and strategy, read the data, build the trainer (a TrainerBuilder,
one per script: SRResNet's in train_srresnet.py, the GAN's in train_srgan.py), restore it, fit, and on
the chief export the selected generator.

Imports no TensorFlow (run imports the training modules when called): the scripts subclass
TrainerBuilder when they are imported, before they hide TensorFlow's start-up banner.
"""


class TrainerBuilder:
    """What one training script adds to the run loop: its trainer. run() calls the methods in this order.

    Attributes:
        model: the script's name in checkpoint.json's config ("srresnet", "srgan"): a run of one script
            is not resumed by the other.
    """
    model = None

    def settings(self, train):
        """{name: value}: the settings a resumed run must repeat (runs.resume_config) besides the network,
        the precision, the EMA and the degradation, e.g. the losses.

        Args:
            train: the run's settings.TrainConfig.
        """
        return {}

    def before_data(self, train, strategy):
        """Build what can fail within seconds (e.g. VGG weights that cannot be loaded) before the data is
        read; nothing by default.

        Args:
            train: the run's settings.TrainConfig.
            strategy: the run's tf.distribute strategy (its scope is not entered).
        """

    def build(self, train, generator_config, state):
        """(trainer, generator), compiled as the script trains them; called inside strategy.scope().

        Args:
            train: the run's settings.TrainConfig.
            generator_config: the run's config.GeneratorConfig.
            state: the settings.RunState run() restores into the trainer next, or None: then a warm start
                (--init-generator, ...) is made here.
        """
        raise NotImplementedError

    def resumed(self, trainer):
        """What the "resuming" line says of a restored trainer's optimizer steps, e.g. "(optimizer step 9)"."""
        raise NotImplementedError

    def summary(self, train, generator_config, trainer, generator):
        """The lines printed before the first epoch: the networks, their sizes, the run folder."""
        raise NotImplementedError


def run(train, generator_config, builder):
    """Train a run and, on the chief, export it: the part of a training script after its flags are checked.

    --out and --export are proven writable before anything slow; --out is held (runs.run_lock) on every
    process but the non-chief workers of a multi-worker strategy, which write no checkpoints and no
    export; a resumed run continues from its last checkpoint. The run ends with the export's scores
    (train.test_images) and a WARNING when it scores below bicubic (loop.finish_run).

    Args:
        train: the run's settings.TrainConfig.
        generator_config: the run's config.GeneratorConfig.
        builder: the script's TrainerBuilder.
    """
    from sr_keras.train import distribute, loop, runs  # here: importing them imports TensorFlow

    created = loop.check_outputs(train)
    with loop.holding_run_folder(train, created):
        config = runs.resume_config(builder.model, generator_config, train.precision, ema=train.ema,
                                    degradation=train.degradation, **builder.settings(train))
        state = runs.prepare_run(train, config)
        start = state.epoch if state else 0
        distribute.seed_everything(train.seed)
        distribute.set_precision(train.precision)
        strategy = distribute.strategy_from_flag(train.strategy)
        builder.before_data(train, strategy)
        train_ds, val_ds = loop.datasets(train, start)
        with strategy.scope():
            trainer, generator = builder.build(train, generator_config, state)
            if state:
                runs.restore(trainer, train.out, state)
                print(f"resuming {train.out} after epoch {start} {builder.resumed(trainer)}")
        print(builder.summary(train, generator_config, trainer, generator))
        chief = distribute.is_chief(strategy)
        loop.fit(train, trainer, generator, train_ds, val_ds, generator_config.scale, config, state=state,
                 chief=chief)
        if chief:
            loop.finish_run(train, generator_config)
