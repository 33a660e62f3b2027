"""Typed settings of a training run (TrainConfig) and what its checkpoint.json records (RunState)."""
import dataclasses
import json

SELECTIONS = ("val_psnr", "last")
LR_SCHEDULES = ("step", "cosine", "milestones")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (the training scripts build it once from their flags). Its
    defaults are the report's settings (section 4.5), which the scripts' flags take as theirs
    (sr_keras.train.recipes.REPORT_DEFAULTS).

    Args:
        track: DIV2K track, e.g. "bicubic_x4" (sets the scale).
        data: "tfds", a DIV2K-layout folder, a folder of HR images or "samples".
        out: run folder (checkpoints, TensorBoard logs).
        export: folder the selected generator is exported to.
        batch_size: global batch size.
        hr_crop: HR training crop side in pixels.
        augment_p: probability of each augmentation.
        degradation: how training LR is made: "bicubic" (the data's LR images), or "realistic" or "mild"
            (sr_keras.data.degradations' presets, from each HR crop).
        lr: initial Adam learning rate.
        lr_schedule: "step" (x lr_decay_factor every lr_decay_epochs), "cosine" (to 0 over `epochs`) or
            "milestones" (x lr_decay_factor at each of lr_milestones).
        lr_decay_epochs: step schedule period (epochs).
        lr_decay_factor: step and milestones schedule factor.
        lr_milestones: epochs after which the milestones schedule multiplies the rate by lr_decay_factor.
        epochs: total epochs, also when resuming.
        steps_per_epoch: training steps per epoch.
        patience: early stopping, epochs without a better validation PSNR-Y.
        seed: seed of weights, data and ops, or None.
        resume: continue the run in `out` from its last checkpoint.
        fresh: delete this run's files in `out` first (`resume` takes precedence).
        val_images: validate on the first N validation images (0: all).
        panel_images: validation images shown in the TensorBoard panel.
        test_images: images of the test split scored after training (0: none, -1: all).
        precision: Keras dtype policy, one of distribute.PRECISIONS.
        jit: compile the train step with XLA.
        strategy: tf.distribute strategy, one of distribute.STRATEGIES.
        select: which generator is exported: "val_psnr" (the best validation PSNR-Y; early stopping
            on it) or "last" (the last epoch's; no early stopping).
        ema: decay of an exponential moving average of the generator's weights, or None. With it,
            validation, the selected generator and the export use the average (sr_keras.train.ema).
    """
    track: str
    data: str
    out: str
    export: str
    batch_size: int = 8
    hr_crop: int = 180
    augment_p: float = 0.2
    degradation: str = "bicubic"
    lr: float = 1e-4
    lr_schedule: str = "step"
    lr_decay_epochs: int = 30
    lr_decay_factor: float = 0.1
    lr_milestones: tuple = ()
    epochs: int = 300
    steps_per_epoch: int = 100
    patience: int = 30
    seed: int | None = None
    resume: bool = False
    fresh: bool = False
    val_images: int = 0
    panel_images: int = 3
    test_images: int = 0
    precision: str = "float32"
    jit: bool = False
    strategy: str = "default"
    select: str = "val_psnr"
    ema: float | None = None

    def __post_init__(self):
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}. Received: select={self.select!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}. Received: lr_schedule={self.lr_schedule!r}")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1). Received: ema={self.ema!r}")
        object.__setattr__(self, "lr_milestones", tuple(sorted(int(m) for m in self.lr_milestones)))

    @property
    def monitor(self):
        """The epoch log that picks the exported generator and stops early, or None (select="last")."""
        return "val_psnr" if self.select == "val_psnr" else None


@dataclasses.dataclass(frozen=True)
class RunState:
    """What a run folder's checkpoints/checkpoint.json records after each completed epoch.

    Args:
        epoch: epochs completed (1-based count; the next epoch's 0-based index).
        last: file name (in checkpoints/) of the trainer's weights and optimizer state after `epoch`.
        best: file name of the selected generator's weights (best validation PSNR-Y, or the last
            epoch's with select="last"), or None.
        best_value: the monitored value of `best`, or None.
        best_epoch: the epoch `best` was saved after, or None.
        monitor: the epoch log `best` is chosen on ("val_psnr"), or None for the last epoch.
        config: settings a resumed run must repeat: the network ("model" and the GeneratorConfig's
            fields), "precision" (the optimizer's variables depend on it), "ema" (likewise), and the loss
            settings ("loss"; the GAN's type, discriminator, pixel loss, content and weight flags;
            "hr_crop", the discriminator's input).
        callbacks: state of stateful callbacks by name, e.g. "early_stopping": ResumableEarlyStopping.get_state().
        logs: the epoch's logs (loss, val_psnr, ...).
        time: when it was written (seconds since the epoch).
    """
    epoch: int
    last: str | None = None
    best: str | None = None
    best_value: float | None = None
    best_epoch: int | None = None
    monitor: str | None = "val_psnr"
    config: dict = dataclasses.field(default_factory=dict)
    callbacks: dict = dataclasses.field(default_factory=dict)
    logs: dict = dataclasses.field(default_factory=dict)
    time: float = 0.0

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text):
        """Inverse of to_json; keys this version does not know are ignored.

        Raises:
            ValueError: saying what is wrong, for text that is not a state to_json wrote (truncated, not
                JSON, a required key missing or of the wrong type).
        """
        values = json.loads(text)  # json.JSONDecodeError is a ValueError
        if not isinstance(values, dict):
            raise ValueError(f"not a JSON object. Received: {type(values).__name__}")
        for key, kind in _STATE_KEYS.items():
            if key not in values:
                raise ValueError(f"no {key!r} key")
            if not isinstance(values[key], kind) or isinstance(values[key], bool):
                raise ValueError(f"{key!r} is not {_KIND_NAMES[kind]}. Received: {key}={values[key]!r}")
        if values["epoch"] < 1:
            raise ValueError(f"'epoch' must be at least 1. Received: epoch={values['epoch']!r}")
        for key, kinds in _OPTIONAL_KEYS.items():
            if key in values and (not isinstance(values[key], kinds) or isinstance(values[key], bool)):
                raise ValueError(f"{key!r} has the wrong type. Received: {key}={values[key]!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# keys every checkpoint.json has (RunCheckpoint writes them all) and their JSON types
_STATE_KEYS = {"epoch": int, "last": str, "config": dict}
_KIND_NAMES = {int: "an integer", str: "a file name", dict: "an object"}
_OPTIONAL_KEYS = {"best": (str, type(None)), "monitor": (str, type(None)), "callbacks": dict, "logs": dict,
                  "best_value": (int, float, type(None)), "best_epoch": (int, type(None)), "time": (int, float)}
