"""sr_keras.train.recipes: the report's defaults and the presets, written once and read by both scripts."""
import pytest

from sr_keras.archs import registry
from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import train_srgan, train_srresnet, training_flags
from sr_keras.train import recipes
from sr_keras.train.settings import TrainConfig

SCRIPTS = {"srresnet": (train_srresnet, {}, recipes.SRRESNET_PRESETS),
           "srgan": (train_srgan, recipes.SRGAN_DEFAULTS, recipes.SRGAN_PRESETS)}


def test_report_defaults_are_the_configs_field_defaults():
    network = recipes.field_defaults(GeneratorConfig)
    expected = {**recipes.field_defaults(TrainConfig),
                **{name: network[name] for name in ("filters", "growth", "batch_norm", "bicubic_skip")},
                "generator": registry.ARCHITECTURES[network["arch"]].generator_flag,
                "num_blocks": None}  # the chosen --generator's depth (registry.Architecture.num_blocks)
    assert {k: recipes.REPORT_DEFAULTS[k] for k in expected} == expected
    assert len(expected) + 2 == len(recipes.REPORT_DEFAULTS)  # and --track, --data


@pytest.mark.parametrize("model", sorted(SCRIPTS))
def test_a_script_run_without_flags_trains_trainconfigs_and_generatorconfigs_defaults(model):
    script, overrides, presets = SCRIPTS[model]
    args = training_flags.resolve_paths(training_flags.parse_args(script.build_parser(), [], presets), model)
    assert training_flags.train_config(args) == TrainConfig(track="bicubic_x4", data="tfds", out=args.out,
                                                            export=args.export, **overrides)
    assert training_flags.generator_config(args, 4) == GeneratorConfig(4)


@pytest.mark.parametrize("model", sorted(SCRIPTS))
def test_every_preset_sets_only_flags_its_script_has(model):
    script, _, presets = SCRIPTS[model]
    parser = script.build_parser()
    dests = set(vars(training_flags.parse_args(parser, [], presets)))
    for name in presets:
        # a misspelt key would only add an attribute no flag reads
        assert set(vars(training_flags.parse_args(parser, ["--preset", name], presets))) == dests, name


def test_a_hint_is_given_for_each_srgan_preset_that_starts_from_another_model():
    assert set(recipes.SRGAN_HINTS) == {name for name, p in recipes.SRGAN_PRESETS.items() if "init_generator" in p}
    # ESRGAN's two stages: the GAN stage starts from the PSNR stage's export
    assert recipes.SRGAN_PRESETS["esrgan"]["init_generator"] == recipes.SRRESNET_PRESETS["rrdb-psnr"]["export"]
