"""sr_keras.archs.registry: the one place that names the generator architectures."""
import argparse

import pytest

from sr_keras.archs import registry
from sr_keras.archs.config import GeneratorConfig
from sr_keras.cli import training_flags

SMALL = {"srresnet": GeneratorConfig(3, num_blocks=2, filters=8, batch_norm=False, bicubic_skip=True),
         "rrdbnet": GeneratorConfig(3, arch="rrdbnet", num_blocks=2, filters=8, growth=4)}


def test_every_architecture_has_a_small_config_here():
    assert set(SMALL) == set(registry.ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(registry.ARCHITECTURES))
def test_each_architecture_reads_back_from_the_layers_what_it_built(arch):
    spec = registry.ARCHITECTURES[arch]
    layers = {ly.name: ly for ly in SMALL[arch].build().layers}
    assert spec.read(layers) == {name: getattr(SMALL[arch], name) for name in spec.fields}
    others = [other for other in registry.ARCHITECTURES.values() if other is not spec]
    assert all(other.read(layers) is None for other in others)  # recognised by one architecture only


def test_config_names_and_builds_only_what_the_registry_holds():
    with pytest.raises(ValueError, match=r"arch must be one of \('srresnet', 'rrdbnet'\)\. Received: arch='unet'"):
        GeneratorConfig(4, arch="unet")
    assert GeneratorConfig(4) == GeneratorConfig(4, arch=registry.DEFAULT.arch, num_blocks=registry.DEFAULT.num_blocks)
    for arch, config in SMALL.items():
        assert config.build().name == f"{arch}_x3"


def test_an_architectures_fixed_fields_make_two_writings_of_one_network_equal():
    written = GeneratorConfig(4, arch="rrdbnet", batch_norm=True, bicubic_skip=True)
    assert written == GeneratorConfig(4, arch="rrdbnet")
    assert (written.batch_norm, written.bicubic_skip) == (False, False)


def test_describe_gives_each_architectures_flags_and_the_generator_only_when_not_the_default():
    assert GeneratorConfig(4).describe() == "--num-blocks 16 --filters 64 --batch-norm --no-bicubic-skip"
    assert SMALL["srresnet"].describe() == "--num-blocks 2 --filters 8 --no-batch-norm --bicubic-skip"
    assert GeneratorConfig(4, arch="rrdbnet", num_blocks=23).describe() == \
        "--generator rrdb --num-blocks 23 --filters 64 --growth 32"


def test_the_generator_flag_offers_the_registrys_names_and_depths():
    parser = training_flags.add_common_args(argparse.ArgumentParser())
    assert registry.GENERATOR_FLAGS == ("srresnet", "rrdb")
    assert "--generator {srresnet,rrdb}" in parser.format_help()
    for spec in registry.ARCHITECTURES.values():
        namespace = training_flags.parse_args(parser, ["--generator", spec.generator_flag])
        config = training_flags.generator_config(namespace, 4)
        assert (config.arch, config.num_blocks) == (spec.arch, spec.num_blocks)
        assert registry.by_generator_flag(spec.generator_flag) is spec
    with pytest.raises(ValueError, match=r"Received: value='unet'"):
        registry.by_generator_flag("unet")
