"""SRResNet / SRGAN generator and discriminator (Ledig et al. 2017, sizes as the report's Table 1).

PyTorch defaults are kept where the report relied on them: one shared PReLU slope initialised to
0.25, BatchNorm epsilon 1e-5 (momentum 0.9 in Keras' convention equals PyTorch's 0.1).
"""
import keras
import numpy as np
from keras import layers

from sr_keras.core.backend import is_tensorflow

# The upsampling stages of every architecture at each scale (sub-pixel convs here, nearest-neighbour
# ones in rrdb.py): x4 is two x2 stages, x3 one x3 stage.
UPSAMPLE_STAGES = {2: (2,), 3: (3,), 4: (2, 2), 8: (2, 2, 2)}


def depth_to_space(x, r):
    """tf.nn.depth_to_space's NHWC order on any backend; on TensorFlow that op itself (TFLite maps it to
    its DEPTH_TO_SPACE kernel), elsewhere the same permutation by reshape and transpose."""
    if is_tensorflow():
        import tensorflow as tf

        return tf.nn.depth_to_space(x, r)
    n, h, w, c = keras.ops.shape(x)
    x = keras.ops.reshape(x, (n, h, w, r, r, c // (r * r)))
    x = keras.ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return keras.ops.reshape(x, (n, h * r, w * r, c // (r * r)))


@keras.saving.register_keras_serializable(package="sr_keras")
class PixelShuffle(layers.Layer):
    """Sub-pixel upsampling: [N, H, W, C*r*r] -> [N, H*r, W*r, C] in tf.nn.depth_to_space's NHWC order.

    The channel order differs from PyTorch's nn.PixelShuffle. Output pixel (y*r + dy, x*r + dx),
    channel c, reads input channel

        depth_to_space (here):   (dy*r + dx)*C + c     (sub-pixel offset major)
        PyTorch PixelShuffle:    c*r*r + dy*r + dx     (output channel major)

    so the same weights give a scrambled picture. Porting PyTorch weights of the convolution that
    feeds this layer therefore permutes its output channels: Keras channel k = (dy*r + dx)*C + c
    takes PyTorch channel c*r*r + dy*r + dx. With a PyTorch weight w of shape [C*r*r, in, kh, kw]
    and bias b:

        kernel = w.transpose(2, 3, 1, 0)                     # [kh, kw, in, C*r*r], PyTorch order
        kernel = kernel.reshape(kh, kw, in, C, r*r).transpose(0, 1, 2, 4, 3).reshape(kh, kw, in, C*r*r)
        bias = b.reshape(C, r*r).T.reshape(C*r*r)

    Layers after the shuffle (PReLU with one shared slope, the tail conv) need no change.

    Args:
        factor: the upscaling factor r.
        **kwargs: keras.layers.Layer's (name, dtype, ...).
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        return depth_to_space(x, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.factor
        return (n, None if h is None else h * r, None if w is None else w * r, c // (r * r))

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _keys_cubic(x, a=-0.5):
    x = np.abs(x)
    return np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                    np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))


@keras.saving.register_keras_serializable(package="sr_keras")
class BicubicUpsample(layers.Layer):
    """Bicubic upscale by an integer factor (Keys a=-0.5, half-pixel centres, symmetric borders).

    Written as a fixed depthwise convolution + depth_to_space rather than an image resize so that it
    traces with unknown H, W and compiles under XLA (which has no ResizeBicubic kernel). Away from the
    two-pixel border it equals Pillow's (MATLAB's) bicubic; tf.image.resize differs by ~5e-4 at x3.
    """

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)
        r = self.factor
        # output pixel r*i + p samples input coordinate i + d_p; taps at i-2 .. i+2
        taps = np.array([_keys_cubic((p + 0.5) / r - 0.5 - np.arange(-2, 3)) for p in range(r)])
        phases = np.einsum("pk,ql->klpq", taps, taps).reshape(5, 5, 1, r * r)
        self._kernel = np.tile(phases, (1, 1, 3, 1)).astype("float32")

    def call(self, x):
        r = self.factor
        x = keras.ops.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="symmetric")
        y = keras.ops.depthwise_conv(x, keras.ops.convert_to_tensor(self._kernel, x.dtype), 1, "valid")
        # depthwise output is channel-major (c * r*r + phase); depth_to_space wants phase-major
        n, h, w, _ = keras.ops.shape(y)
        y = keras.ops.reshape(y, (n, h, w, 3, r * r))
        y = keras.ops.reshape(keras.ops.transpose(y, (0, 1, 2, 4, 3)), (n, h, w, 3 * r * r))
        return depth_to_space(y, r)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        r = self.factor
        return (n, None if h is None else h * r, None if w is None else w * r, c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="sr_keras")
class FewOutputConv2D(layers.Conv2D):
    """Conv2D (stride 1, 'same', odd kernel) computed as the transpose of the flipped convolution.

    Same output and weights as Conv2D. For few output channels (the 9x9 64->3 tail) oneDNN's forward
    convolution is slow on CPU while its backward-data kernel, the same arithmetic, is fast: this cut
    the SRResNet x4 CPU train step by ~11% (docs/performance.md). Other backends run Conv2D's own op.
    """

    def convolution_op(self, inputs, kernel):
        if not is_tensorflow():
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])
        shape = tf.shape(inputs)
        out_shape = tf.stack([shape[0], shape[1], shape[2], self.filters])
        return tf.nn.conv2d_transpose(inputs, flipped, out_shape, strides=1, padding="SAME")


def _prelu(name=None):
    return layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2, 3], name=name)


def _bn(name=None):
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _conv(filters, kernel, strides=1, name=None):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)


def srresnet(scale, num_blocks=16, filters=64, batch_norm=True, bicubic_skip=False):
    """SRResNet (= SRGAN's generator). Input and output are RGB in [0, 1], any spatial size.

    `batch_norm=False` drops every BN layer and `bicubic_skip=True` adds a bicubic upscale of the input
    to the output; both are for small fast models (the offline demo) and are off for the report's model.
    """
    if scale not in UPSAMPLE_STAGES:
        raise ValueError(f"scale must be one of {sorted(UPSAMPLE_STAGES)}, got {scale!r}")
    norm = _bn if batch_norm else (lambda name=None: layers.Identity(name=name))
    lr = keras.Input((None, None, 3), name="lr")
    x = head = _prelu("head_prelu")(_conv(filters, 9, name="head_conv")(lr))
    for i in range(num_blocks):
        y = _conv(filters, 3, name=f"block{i}_conv1")(x)
        y = _prelu(f"block{i}_prelu")(norm(f"block{i}_bn1")(y))
        y = norm(f"block{i}_bn2")(_conv(filters, 3, name=f"block{i}_conv2")(y))
        x = layers.Add(name=f"block{i}_add")([x, y])
    x = norm("body_bn")(_conv(filters, 3, name="body_conv")(x))
    x = layers.Add(name="long_skip")([head, x])
    for i, r in enumerate(UPSAMPLE_STAGES[scale]):
        x = _conv(filters * r * r, 3, name=f"up{i}_conv")(x)
        x = _prelu(f"up{i}_prelu")(PixelShuffle(r, name=f"up{i}_shuffle")(x))
    sr = FewOutputConv2D(3, 9, padding="same", name="tail_conv")(x)
    if bicubic_skip:
        sr = layers.Add(name="bicubic_skip")([sr, BicubicUpsample(scale, name="bicubic")(lr)])
    return keras.Model(lr, sr, name=f"srresnet_x{scale}")


def discriminator(hr_size=180):
    """SRGAN discriminator for (hr_size, hr_size, 3) inputs in [0, 1]; returns one logit per image."""
    hr_size = int(hr_size)
    if hr_size < 16:
        raise ValueError(f"discriminator needs hr_size >= 16 (four stride-2 convs), got {hr_size}")
    img = keras.Input((hr_size, hr_size, 3), name="hr")
    x = layers.LeakyReLU(0.2)(_conv(64, 3, name="conv0")(img))
    for i, (f, s) in enumerate([(64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2)], start=1):
        x = layers.LeakyReLU(0.2)(_bn(f"bn{i}")(_conv(f, 3, strides=s, name=f"conv{i}")(x)))
    x = layers.Flatten()(x)
    x = layers.LeakyReLU(0.2)(layers.Dense(1024, name="fc")(x))
    return keras.Model(img, layers.Dense(1, name="logit")(x), name=f"discriminator_{hr_size}")


def count_trainable(model):
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))
