"""ESRGAN's generator, RRDBNet (Wang et al. 2018, "ESRGAN", sizes as BasicSR's rrdbnet_arch.py).

    conv_first 3x3 -> num_blocks x RRDB -> trunk_conv 3x3 (+ long skip from conv_first)
    -> per stage: nearest-neighbour upsampling, 3x3 conv, LeakyReLU 0.2 -> hr_conv 3x3, LeakyReLU
    -> conv_last 3x3 (3 channels)

An RRDB is three residual dense blocks (RDB) in a row with a scaled residual around them; an RDB is
five 3x3 convs, each fed the concatenation of the block input and every earlier conv's output. There
is no BatchNorm anywhere (ESRGAN section 3.1: BN brings artefacts and hurts generalisation).

Only built-in Keras layers: residual scaling is `Rescaling(0.2)`, the upsampling `UpSampling2D`
("nearest"), so saved models load in safe mode and the tiler reads the receptive field from the graph.
Layer names are stable (`rrdb{i}_rdb{j}_conv{k}` with j in 1..3 and k in 1..5 as BasicSR's
`body.{i}.rdb{j}.conv{k}`), which network interpolation and weight ports match on.
"""
import keras
from keras import layers

from sr_keras.archs.models import UPSAMPLE_STAGES  # as nearest-neighbour stages here (BasicSR has no x3)

# Residual scaling inside each RDB and around each RRDB (ESRGAN section 3.1).
RESIDUAL_SCALE = 0.2


def _conv(filters, name, initializer):
    return layers.Conv2D(filters, 3, padding="same", kernel_initializer=initializer, name=name)


def _lrelu(name):
    return layers.LeakyReLU(negative_slope=0.2, name=name)


def _scaled_residual(x, y, name):
    """x + RESIDUAL_SCALE * y."""
    return layers.Add(name=f"{name}_add")([layers.Rescaling(RESIDUAL_SCALE, name=f"{name}_scale")(y), x])


def _dense_block(x, filters, growth, name, initializer):
    features = [x]
    for k in range(1, 6):
        inp = features[0] if k == 1 else layers.Concatenate(name=f"{name}_concat{k}")(features)
        y = _conv(growth if k < 5 else filters, f"{name}_conv{k}", initializer)(inp)
        if k < 5:
            features.append(_lrelu(f"{name}_lrelu{k}")(y))
    return _scaled_residual(x, y, name)


def rrdbnet(scale, num_blocks=23, filters=64, growth=32):
    """ESRGAN's RRDBNet. Input and output are RGB in [0, 1], any spatial size; no BatchNorm.

    Initialisation follows BasicSR: the dense-block convs are Kaiming-normal scaled by 0.1 (it keeps
    the deep residual trunk near identity at the start), the other convs PyTorch's default kernel
    initialisation (uniform, bound 1/sqrt(fan_in)); biases start at zero.

    Args:
        scale: upscaling factor, one of 2, 3, 4, 8.
        num_blocks: RRDBs in the trunk (ESRGAN: 23).
        filters: feature channels of the trunk (ESRGAN: 64).
        growth: channels each dense-block conv adds (ESRGAN: 32).

    Returns:
        A functional `keras.Model` named `rrdbnet_x{scale}`.
    """
    if scale not in UPSAMPLE_STAGES:
        raise ValueError(f"scale must be one of {sorted(UPSAMPLE_STAGES)}. Received: scale={scale!r}")
    for name, value in (("num_blocks", num_blocks), ("filters", filters), ("growth", growth)):
        if not isinstance(value, int) or value < (0 if name == "num_blocks" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'num_blocks' else 'positive'} "
                             f"integer. Received: {name}={value!r}")
    # Kaiming normal (gain sqrt(2)) times 0.1: std = 0.1 * sqrt(2 / fan_in) = sqrt(0.02 / fan_in).
    dense_init = keras.initializers.VarianceScaling(0.02, mode="fan_in", distribution="untruncated_normal")
    # PyTorch's Conv2d default, kaiming_uniform(a=sqrt(5)): bound sqrt(6 / (6 fan_in)) = 1 / sqrt(fan_in).
    torch_init = keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")

    lr = keras.Input((None, None, 3), name="lr")
    x = head = _conv(filters, "conv_first", torch_init)(lr)
    for i in range(num_blocks):
        y = x
        for j in range(1, 4):
            y = _dense_block(y, filters, growth, f"rrdb{i}_rdb{j}", dense_init)
        x = _scaled_residual(x, y, f"rrdb{i}")
    x = layers.Add(name="long_skip")([head, _conv(filters, "trunk_conv", torch_init)(x)])
    for i, r in enumerate(UPSAMPLE_STAGES[scale]):
        x = layers.UpSampling2D(r, interpolation="nearest", name=f"up{i}_nearest")(x)
        x = _lrelu(f"up{i}_lrelu")(_conv(filters, f"up{i}_conv", torch_init)(x))
    x = _lrelu("hr_lrelu")(_conv(filters, "hr_conv", torch_init)(x))
    sr = _conv(3, "conv_last", torch_init)(x)
    return keras.Model(lr, sr, name=f"rrdbnet_x{scale}")
