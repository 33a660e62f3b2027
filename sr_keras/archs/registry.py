"""The generator architectures, in one place. Each entry says what every other part of the project
asks of an architecture: its name in GeneratorConfig.arch (and generator.json), its --generator name,
its trunk depth without --num-blocks, the flags that describe it, its builder, and how to recognise a
model it built by the model's layers (a bare .keras file carries no generator.json).

GeneratorConfig checks names and builds through ARCHITECTURES, the training flags offer its --generator
names and depths, and sr_keras.exports.interpolation reads bare models with it: a new architecture is
one entry here plus its module. Imports no Keras: a builder imports its module when it is called.
"""
import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True, eq=False)
class Architecture:
    """One generator architecture.

    Args:
        arch: its name in GeneratorConfig.arch and generator.json.
        generator_flag: the training scripts' --generator value that picks it.
        title: its name in messages, e.g. "SRResNet".
        summary: what --generator's help says of it.
        num_blocks: trunk depth without --num-blocks (its paper's).
        fields: the GeneratorConfig fields it is built from besides scale, in the order
            GeneratorConfig.describe() gives their flags.
        fixed: {GeneratorConfig field: value} of the fields it does not have, which always take that value.
        build: GeneratorConfig -> the untrained keras.Model.
        read: {layer name: layer} of a model -> its `fields` as built, or None when the layers are
            not this architecture's.
    """
    arch: str
    generator_flag: str
    title: str
    summary: str
    num_blocks: int
    fields: tuple
    fixed: dict
    build: Callable
    read: Callable


def _build_srresnet(config):
    from sr_keras.archs.models import srresnet

    return srresnet(config.scale, num_blocks=config.num_blocks, filters=config.filters,
                    batch_norm=config.batch_norm, bicubic_skip=config.bicubic_skip)


def _read_srresnet(layers):
    """models.srresnet's layer names: head_conv, block{i}_add, body_bn (Identity without BatchNorm), bicubic."""
    if "head_conv" not in layers:
        return None
    return dict(num_blocks=_count(layers, "block{}_add"), filters=layers["head_conv"].filters,
                batch_norm=type(layers.get("body_bn")).__name__ == "BatchNormalization",
                bicubic_skip="bicubic" in layers)


def _build_rrdbnet(config):
    from sr_keras.archs.rrdb import rrdbnet

    return rrdbnet(config.scale, num_blocks=config.num_blocks, filters=config.filters, growth=config.growth)


def _read_rrdbnet(layers):
    """rrdb.rrdbnet's layer names: conv_first, rrdb{i}_add, rrdb{i}_rdb{j}_conv{k} (absent at 0 blocks)."""
    if "conv_first" not in layers:
        return None
    first = layers.get("rrdb0_rdb1_conv1")
    return dict(num_blocks=_count(layers, "rrdb{}_add"), filters=layers["conv_first"].filters,
                growth=first.filters if first else 32)


def _count(layers, pattern):
    """How many of pattern.format(0), pattern.format(1), ... are layer names."""
    return sum(pattern.format(i) in layers for i in range(len(layers)))


SRRESNET = Architecture(
    arch="srresnet", generator_flag="srresnet", title="SRResNet", summary="the report's SRResNet", num_blocks=16,
    fields=("num_blocks", "filters", "batch_norm", "bicubic_skip"), fixed={},
    build=_build_srresnet, read=_read_srresnet)
RRDBNET = Architecture(
    arch="rrdbnet", generator_flag="rrdb", title="RRDBNet", summary="ESRGAN's RRDBNet (no BatchNorm, docs/esrgan.md)",
    num_blocks=23, fields=("num_blocks", "filters", "growth"), fixed={"batch_norm": False, "bicubic_skip": False},
    build=_build_rrdbnet, read=_read_rrdbnet)
ARCHITECTURES = {spec.arch: spec for spec in (SRRESNET, RRDBNET)}  # by GeneratorConfig.arch
DEFAULT = SRRESNET  # the report's: what a GeneratorConfig and the training flags default to
GENERATOR_FLAGS = tuple(spec.generator_flag for spec in ARCHITECTURES.values())


def by_generator_flag(value):
    """The Architecture that --generator `value` picks.

    Raises:
        ValueError: for a value that picks none (not one of GENERATOR_FLAGS).
    """
    for spec in ARCHITECTURES.values():
        if spec.generator_flag == value:
            return spec
    raise ValueError(f"value must be one of {GENERATOR_FLAGS}. Received: value={value!r}")
