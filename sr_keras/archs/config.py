"""Typed configuration: what a generator is (carried by every export and checkpoint)."""
import dataclasses
import json

ARCHITECTURES = ("srresnet", "rrdbnet")
SCALES = (2, 3, 4, 8)  # models.UPSAMPLE_STAGES' keys (this module imports no Keras)
# What a generator.json from elsewhere may ask for (from_dict): well above the report's networks (16
# SRResNet blocks, 23 RRDB blocks of 64 channels), far below a build that takes minutes or gigabytes.
LIMITS = {"num_blocks": 100, "filters": 512, "growth": 256}
# generator.json is a handful of fields: a larger file is refused before it is parsed.
MAX_JSON_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture, everything needed to rebuild it exactly.

    Args:
        scale: upscaling factor (2, 3, 4 or 8).
        arch: architecture name, one of ARCHITECTURES.
        num_blocks: residual blocks of the trunk.
        filters: feature channels.
        batch_norm: BatchNorm in the residual blocks (the report: on); srresnet only.
        bicubic_skip: a bicubic upscale of the input added to the output (the report: off); srresnet only.
        growth: channels each dense-block conv adds; rrdbnet only.

    An rrdbnet has neither BatchNorm nor a bicubic skip: its batch_norm and bicubic_skip are always False,
    so that two configs of one network compare equal however they were written.
    """
    scale: int
    arch: str = "srresnet"
    num_blocks: int = 16
    filters: int = 64
    batch_norm: bool = True
    bicubic_skip: bool = False
    growth: int = 32

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {ARCHITECTURES}. Received: arch={self.arch!r}")
        if self.arch == "rrdbnet":
            object.__setattr__(self, "batch_norm", False)  # frozen dataclass: set once, here
            object.__setattr__(self, "bicubic_skip", False)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Inverse of to_dict, for a config read from a file (untrusted): every field is checked before
        anything is built.

        Raises:
            ValueError: naming the first wrong field: not an object, an unknown key (a config written by
                a newer version), no scale, a field of the wrong type, a scale not in SCALES, a size
                outside 1..LIMITS.
        """
        if not isinstance(values, dict):
            raise ValueError(f"a generator config is a JSON object. Received: {type(values).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(str(k)[:40] for k in set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown generator config keys {unknown[:5]}")
        if "scale" not in values:
            raise ValueError("no 'scale' key")
        for name, value in values.items():
            kind = fields[name].type  # int, bool or str
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ValueError(f"{name!r} must be of type {kind.__name__}. Received: {name}={repr(value)[:40]}")
        if values["scale"] not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}. Received: scale={values['scale']!r}")
        for name, top in LIMITS.items():
            if name in values and not 1 <= values[name] <= top:
                raise ValueError(f"{name} must be in 1..{top}. Received: {name}={values[name]!r}")
        return cls(**values)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """from_dict of a JSON text of at most MAX_JSON_BYTES (longer text, however nested, is not parsed).

        Raises:
            ValueError: saying what is wrong (too long, not JSON, nested too deeply, a field as from_dict).
        """
        size = len(text.encode("utf-8", "surrogatepass")) if isinstance(text, str) else len(text)
        if size > MAX_JSON_BYTES:
            raise ValueError(f"over {MAX_JSON_BYTES // 1024} kB, far more than a generator config takes")
        try:
            values = json.loads(text)
        except RecursionError:  # "[[[[...": Python's parser recurses once per level
            raise ValueError("nested too deeply to be a generator config") from None
        return cls.from_dict(values)

    def describe(self):
        """The training flags that rebuild this generator."""
        if self.arch == "rrdbnet":
            return f"--generator rrdb --num-blocks {self.num_blocks} --filters {self.filters} --growth {self.growth}"
        return (f"--num-blocks {self.num_blocks} --filters {self.filters} "
                f"--{'' if self.batch_norm else 'no-'}batch-norm --{'' if self.bicubic_skip else 'no-'}bicubic-skip")

    def build(self):
        """The untrained keras.Model (models.srresnet or rrdbnet.rrdbnet)."""
        if self.arch == "rrdbnet":
            from sr_keras.archs.rrdbnet import rrdbnet

            return rrdbnet(self.scale, num_blocks=self.num_blocks, filters=self.filters, growth=self.growth)
        from sr_keras.archs.models import srresnet

        return srresnet(self.scale, num_blocks=self.num_blocks, filters=self.filters, batch_norm=self.batch_norm,
                        bicubic_skip=self.bicubic_skip)
