"""ESRGAN's discriminator: BasicSR's VGGStyleDiscriminator (Wang et al. 2018; Ledig et al.'s D made VGG-like).

    conv0_0 3x3 (bias) + LeakyReLU 0.2;  conv0_1 4x4 stride 2 (no bias) + BN + LeakyReLU
    stages 1-4 (128, 256, 512, 512 channels): 3x3 + BN + LeakyReLU, 4x4 stride 2 + BN + LeakyReLU
    flatten -> linear1 Dense 100 + LeakyReLU 0.2 -> linear2 Dense 1 (a logit, no sigmoid)

Five stride-2 convs halve the crop five times, so the crop must be divisible by 32; the Dense input
follows it (BasicSR fixes 128 or adds a sixth stage at 256; here any multiple of 32 keeps five stages).
Keras' 'same' padding of a 4x4 stride-2 conv on an even size pads one pixel each side, as PyTorch's
padding=1. BatchNorm uses PyTorch's defaults (momentum 0.1 = Keras 0.9, epsilon 1e-5). Layer names are
BasicSR's (conv{i}_{j}, bn{i}_{j}, linear1, linear2); note that a PyTorch weight port must reorder
linear1's input from channel-major (NCHW flatten) to NHWC.
"""
import keras
from keras import layers

STAGE_FILTERS = (1, 2, 4, 8, 8)  # multiples of `filters` for stages 0..4 (64, 128, 256, 512, 512)


def _lrelu(name):
    return layers.LeakyReLU(negative_slope=0.2, name=name)


def vgg_discriminator(hr_size=128, filters=64):
    """VGG-style discriminator for (hr_size, hr_size, 3) inputs in [0, 1]; returns one logit per image.

    Args:
        hr_size: side of the square HR crops it judges; a positive multiple of 32 (ESRGAN: 128).
        filters: channels of the first stage (BasicSR's num_feat, 64); later stages use 2, 4, 8, 8 times.

    Returns:
        A functional `keras.Model` named `vgg_discriminator_{hr_size}`.
    """
    if not isinstance(hr_size, int) or hr_size < 32 or hr_size % 32:
        raise ValueError(f"hr_size must be a positive multiple of 32 (five stride-2 convs). "
                         f"Received: hr_size={hr_size!r}")
    if not isinstance(filters, int) or filters < 1:
        raise ValueError(f"filters must be a positive integer. Received: filters={filters!r}")
    img = keras.Input((hr_size, hr_size, 3), name="hr")
    x = _lrelu("lrelu0_0")(layers.Conv2D(filters, 3, padding="same", name="conv0_0")(img))
    for i, mult in enumerate(STAGE_FILTERS):
        for j, (kernel, stride) in enumerate(((3, 1), (4, 2))):
            if i == 0 and j == 0:
                continue  # conv0_0 above: with bias, no BN
            x = layers.Conv2D(filters * mult, kernel, strides=stride, padding="same", use_bias=False,
                              name=f"conv{i}_{j}")(x)
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i}_{j}")(x)
            x = _lrelu(f"lrelu{i}_{j}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _lrelu("lrelu_linear1")(layers.Dense(100, name="linear1")(x))
    return keras.Model(img, layers.Dense(1, name="linear2")(x), name=f"vgg_discriminator_{hr_size}")
