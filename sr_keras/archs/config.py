"""Typed configuration: what a generator is (carried by every export and checkpoint)."""
import dataclasses
import json

from sr_keras.archs.registry import ARCHITECTURES, DEFAULT

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
        arch: architecture name, a key of registry.ARCHITECTURES.
        num_blocks: residual blocks of the trunk (default: the report's SRResNet's).
        filters: feature channels.
        batch_norm: BatchNorm in the residual blocks (the report: on); srresnet only.
        bicubic_skip: a bicubic upscale of the input added to the output (the report: off); srresnet only.
        growth: channels each dense-block conv adds; rrdbnet only.

    A field an architecture does not have (registry.Architecture.fixed: an rrdbnet has neither BatchNorm
    nor a bicubic skip) always takes its fixed value, so that two configs of one network compare equal
    however they were written.
    """
    scale: int
    arch: str = DEFAULT.arch
    num_blocks: int = DEFAULT.num_blocks
    filters: int = 64
    batch_norm: bool = True
    bicubic_skip: bool = False
    growth: int = 32

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {tuple(ARCHITECTURES)}. Received: arch={self.arch!r}")
        for name, value in ARCHITECTURES[self.arch].fixed.items():
            object.__setattr__(self, name, value)  # frozen dataclass: set once, here

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
        """The training flags that rebuild this generator (--generator only for another than the default)."""
        spec = ARCHITECTURES[self.arch]
        words = [] if spec is DEFAULT else [f"--generator {spec.generator_flag}"]
        for name in spec.fields:
            value, option = getattr(self, name), name.replace("_", "-")
            words.append(f"--{'' if value else 'no-'}{option}" if isinstance(value, bool) else f"--{option} {value}")
        return " ".join(words)

    def build(self):
        """The untrained keras.Model (its architecture's builder: models.srresnet or rrdb.rrdbnet)."""
        return ARCHITECTURES[self.arch].build(self)
