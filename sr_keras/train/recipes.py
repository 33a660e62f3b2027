"""The training recipes: the report's default settings, the SRGAN schedule, and the named presets of
both training scripts (--preset), in one place; the scripts' flags read them, nothing else writes them.

Here, in sr_keras.train, rather than beside the architectures in sr_keras.archs: a recipe is a whole
training run (learning rate, losses, schedule, data, run folders) that names its network through the
architecture flags, and sr_keras.archs may not import training code, while this module reads both
TrainConfig and the architecture registry.

The report's defaults are written once, as field defaults: a run's settings in settings.TrainConfig
(sr_keras.train.settings), the network's in config.GeneratorConfig and sr_keras.archs.registry.
REPORT_DEFAULTS gathers them by flag name for the training scripts' --help and parsing.
A preset is {flag dest: value}; flags given on the command line override it.
"""
import dataclasses
import os

from sr_keras.archs import registry
from sr_keras.archs.config import GeneratorConfig
from sr_keras.train.settings import TrainConfig


def field_defaults(cls):
    """{field name: default} of a dataclass's fields that have a default."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


_NETWORK = field_defaults(GeneratorConfig)
# {flag dest: default} of every shared training flag but --out/--export (their defaults name the script).
# --num-blocks has none: it is the depth of the --generator chosen (registry.Architecture.num_blocks).
REPORT_DEFAULTS = {
    "track": "bicubic_x4", "data": "tfds", **field_defaults(TrainConfig),
    "generator": registry.DEFAULT.generator_flag, "num_blocks": None,
    **{name: _NETWORK[name] for name in ("filters", "growth", "batch_norm", "bicubic_skip")},
}
# The report's SRGAN schedule (section 4.6), over REPORT_DEFAULTS; everything else as train_srresnet.py.
SRGAN_DEFAULTS = dict(lr_decay_epochs=150, patience=50)

# The demo's network: a small BN-free residual net with a bicubic global skip (it starts at bicubic and
# only learns the residual); the shipped saved_models/demo_x4 is one, and the SRGAN demo fine-tunes it.
DEMO_NETWORK = dict(num_blocks=6, filters=32, batch_norm=False, bicubic_skip=True)
# ESRGAN's RRDBNet (section 3.1), both stages
ESRGAN_NETWORK = dict(generator=registry.RRDBNET.generator_flag, num_blocks=registry.RRDBNET.num_blocks, filters=64,
                      growth=32)

SRRESNET_PRESETS = {
    # Learns fast on a 2-core CPU: DEMO_NETWORK and a 10x higher cosine-decayed learning rate
    # (docs/training.md). fresh: running the demo again starts it over instead of refusing the run folder
    # of the last demo. export: under runs/, so that the demo never overwrites the shipped, tracked
    # saved_models/demo_x4.
    "demo": dict(data="samples", track="bicubic_x4", **DEMO_NETWORK, loss="mse", lr=1e-3, lr_schedule="cosine",
                 hr_crop=96, batch_size=16, augment_p=0.5, epochs=10, steps_per_epoch=90, patience=1000, seed=0,
                 test_images=-1, fresh=True, out=os.path.join("runs", "demo_x4"),
                 export=os.path.join("runs", "demo_x4", "export")),
    # ESRGAN's PSNR-oriented RRDBNet (section 4.1): L1, Adam 2e-4 halved every 200k of 1M steps (epochs of
    # 1000 steps), HR crop 128, batch 16; the fixed schedule runs to the end (no early stopping)
    "rrdb-psnr": dict(**ESRGAN_NETWORK, loss="l1", lr=2e-4, lr_schedule="step", lr_decay_epochs=200,
                      lr_decay_factor=0.5, steps_per_epoch=1000, epochs=1000, patience=1000, hr_crop=128,
                      batch_size=16, augment_p=0.5, out=os.path.join("runs", "rrdb_psnr_{track}"),
                      export=os.path.join("saved_models", "rrdb_psnr_{track}")),
}
SRGAN_PRESETS = {
    # Fine-tunes the shipped demo model (train_srresnet.py's demo network) on scikit-image photos; a few
    # minutes on a 2-core CPU. It exports under runs/: saved_models/ holds only shipped models. It still
    # needs VGG weights: --vgg-weights PATH, or random for a smoke run.
    "demo": dict(data="samples", track="bicubic_x4", **DEMO_NETWORK,
                 init_generator=os.path.join("saved_models", "demo_x4"), hr_crop=96, batch_size=8, augment_p=0.5,
                 epochs=3, steps_per_epoch=20, patience=1000, seed=0, test_images=-1, fresh=True,
                 out=os.path.join("runs", "srgan_demo_x4"), export=os.path.join("runs", "srgan_demo_x4", "export")),
    # The paper's GAN stage (section 4.1), from the export of SRRESNET_PRESETS["rrdb-psnr"]; its iterations
    # are epochs of 1000 steps (Adam 1e-4 halved after 50k, 100k, 200k, 300k of 400k steps). GAN quality is
    # not validation PSNR, so it exports the last epoch's generator.
    "esrgan": dict(**ESRGAN_NETWORK, gan="relativistic", discriminator="vgg", content_layer="block5_conv4",
                   content_activation="before", content_criterion="l1", content_scale=1.0, pixel_loss="l1",
                   pixel_weight=1e-2, content_weight=1.0, adversarial_weight=5e-3, lr=1e-4, lr_schedule="milestones",
                   lr_milestones=(50, 100, 200, 300), lr_decay_factor=0.5, steps_per_epoch=1000, epochs=400,
                   hr_crop=128, batch_size=16, augment_p=0.5, select="last",
                   init_generator=SRRESNET_PRESETS["rrdb-psnr"]["export"],
                   out=os.path.join("runs", "esrgan_{track}"), export=os.path.join("saved_models", "esrgan_{track}")),
}
# What to do when an SRGAN preset's --init-generator is missing (the demo's is shipped; its own run
# exports under runs/).
SRGAN_HINTS = {
    "demo": "run `python train_srresnet.py --preset demo` first and pass --init-generator runs/demo_x4/export",
    "esrgan": "run `python train_srresnet.py --preset rrdb-psnr` first",
}
