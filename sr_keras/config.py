"""Typed configuration: what a generator is (carried by every export and checkpoint)."""
import dataclasses
import json

ARCHITECTURES = ("srresnet",)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture, everything needed to rebuild it exactly.

    Args:
        scale: upscaling factor (2, 3, 4 or 8).
        arch: architecture name, one of ARCHITECTURES.
        num_blocks: residual blocks of the trunk.
        filters: feature channels.
        batch_norm: BatchNorm in the residual blocks (the report: on).
        bicubic_skip: a bicubic upscale of the input added to the output (the report: off).
    """
    scale: int
    arch: str = "srresnet"
    num_blocks: int = 16
    filters: int = 64
    batch_norm: bool = True
    bicubic_skip: bool = False

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}. Received: arch={self.arch!r}")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Inverse of to_dict; unknown keys are an error (a config written by a newer version)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown generator config keys {unknown}. Received: {values!r}")
        return cls(**values)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def describe(self):
        """The training flags that rebuild this generator."""
        return (f"--num-blocks {self.num_blocks} --filters {self.filters} "
                f"--{'' if self.batch_norm else 'no-'}batch-norm --{'' if self.bicubic_skip else 'no-'}bicubic-skip")

    def build(self):
        """The untrained keras.Model (models.srresnet)."""
        from sr_keras.models import srresnet

        return srresnet(self.scale, num_blocks=self.num_blocks, filters=self.filters, batch_norm=self.batch_norm,
                        bicubic_skip=self.bicubic_skip)
