"""SRGAN losses (report section 3.2): pixel MSE, VGG19 content loss, adversarial losses on logits.

Every function returns one value per image (shape [N]) so that the caller chooses the reduction; the
SRGAN train step averages them over the *global* batch, which keeps gradients right under
tf.distribute (Keras' optimizer sums gradients over replicas).
"""
import os
import socket
import sys

import keras

from sr_keras.errors import UserError, first_line

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + VGG19_NOTOP_FILE
VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"  # the hash keras.applications.VGG19 checks
CONTENT_INPUTS = ("imagenet", "report")
DOWNLOAD_TIMEOUT_S = 60  # a firewalled network may drop packets instead of refusing: do not hang


def pixel_loss(hr, sr):
    """Per-image MSE over all pixels and channels (eq. 2)."""
    hr, sr = keras.ops.cast(hr, "float32"), keras.ops.cast(sr, "float32")
    return keras.ops.mean(keras.ops.square(hr - sr), axis=[1, 2, 3])


def generator_adversarial_loss(fake_logits):
    """Per-image BCE_logits(D(SR), 1) = -log sigmoid(D(SR)) (eq. 4)."""
    fake_logits = keras.ops.reshape(keras.ops.cast(fake_logits, "float32"), [-1])
    return keras.ops.binary_crossentropy(keras.ops.ones_like(fake_logits), fake_logits, from_logits=True)


def discriminator_loss(real_logits, fake_logits):
    """Per-image BCE_logits(D(HR), 1) + BCE_logits(D(SR), 0) (eq. 6)."""
    real_logits = keras.ops.reshape(keras.ops.cast(real_logits, "float32"), [-1])
    fake_logits = keras.ops.reshape(keras.ops.cast(fake_logits, "float32"), [-1])
    bce = keras.ops.binary_crossentropy
    return (bce(keras.ops.ones_like(real_logits), real_logits, from_logits=True)
            + bce(keras.ops.zeros_like(fake_logits), fake_logits, from_logits=True))


def keras_cache_path(fname=VGG19_NOTOP_FILE):
    """Where keras.utils.get_file caches `fname` (cache_subdir "models"), the place to drop the file by hand."""
    if "KERAS_HOME" in os.environ:
        home = os.path.expanduser(os.environ["KERAS_HOME"])
    else:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    if not os.access(home, os.W_OK):
        home = "/tmp/.keras"  # get_file's own fallback for a read-only cache dir
    return os.path.join(home, "models", fname)


def resolve_vgg_weights(weights):
    """`imagenet` | path | `random` -> a local weights file, or None for random weights.

    Raises UserError (one line naming --vgg-weights) when ImageNet weights are neither cached nor
    downloadable, or when the given path does not exist; never falls back to random weights silently.
    """
    if weights == "random":
        print("\n".join(["", "!" * 78,
                         "WARNING: --vgg-weights random: VGG19 has RANDOM weights, so the content loss is",
                         "meaningless and the trained SRGAN is worthless. Use this for smoke tests only.",
                         "!" * 78, ""]), file=sys.stderr, flush=True)
        return None
    if weights == "imagenet":
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            return keras.utils.get_file(VGG19_NOTOP_FILE, VGG19_NOTOP_URL, cache_subdir="models",
                                        file_hash=VGG19_NOTOP_MD5)
        except Exception as e:  # get_file wraps network failures in a bare Exception
            reason = first_line(e).rsplit(" -- ", 1)[-1]  # get_file's "URL fetch failure on <url>: <code> -- <why>"
            raise UserError(
                f"--vgg-weights imagenet: the VGG19 ImageNet weights are not cached and cannot be downloaded "
                f"({reason}); download {VGG19_NOTOP_URL} to {keras_cache_path()}, or pass --vgg-weights PATH "
                "to that file (--vgg-weights random: smoke tests only)") from None
        finally:
            socket.setdefaulttimeout(previous)
    path = os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        raise UserError(f"--vgg-weights {weights}: no such file (give 'imagenet', 'random' or the path of "
                        f"{VGG19_NOTOP_FILE})")
    return path


class VGGContentLoss:
    """Content loss: scale * per-image MSE between VGG19 features of SR and HR (eq. 3).

    layer: a VGG19 layer name; the default block5_conv4's output is after its ReLU (phi_5,4).
    input_mode: "imagenet" ([0,1] -> x255 -> vgg19.preprocess_input, as Ledig et al.) or "report"
    (raw [0,1] RGB, as the report's code, whose normalisation was commented out).
    weights: "imagenet", a local .h5 weights file (the notop file keras.applications uses), or "random".

    The frozen feature extractor is built once here. It is deliberately a plain object, not a Keras
    layer, so that models holding it do not store VGG's 20M parameters in their checkpoints.
    """

    def __init__(self, layer="block5_conv4", scale=0.006, input_mode="imagenet", weights="imagenet"):
        if input_mode not in CONTENT_INPUTS:
            raise UserError(f"--content-input {input_mode}: must be one of {', '.join(CONTENT_INPUTS)}")
        path = resolve_vgg_weights(weights)
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        names = [lyr.name for lyr in vgg.layers[1:]]
        if layer not in names:
            raise UserError(f"--content-layer {layer}: not a VGG19 layer; choose one of {', '.join(names)}")
        if path is not None:
            try:
                vgg.load_weights(path)
            except Exception as e:  # h5py/keras raise many types for a wrong or damaged file
                raise UserError(f"--vgg-weights {weights}: cannot load VGG19 (no top) weights from it "
                                f"({first_line(e)})") from None
        vgg.trainable = False
        self.extractor = keras.Model(vgg.input, vgg.get_layer(layer).output, name=f"vgg19_{layer}")
        self.extractor.trainable = False
        self.layer, self.scale, self.input_mode, self.weights = layer, float(scale), input_mode, weights

    def features(self, images):
        x = keras.ops.cast(images, "float32")
        if self.input_mode == "imagenet":
            x = keras.applications.vgg19.preprocess_input(x * 255.0)
        return keras.ops.cast(self.extractor(x, training=False), "float32")

    def __call__(self, hr, sr):
        """Per-image scale * MSE(phi(SR), phi(HR)). Two VGG calls rather than one on [SR; HR]: the
        backward pass then runs through VGG for SR only."""
        f_hr = keras.ops.stop_gradient(self.features(hr))
        return self.scale * keras.ops.mean(keras.ops.square(self.features(sr) - f_hr), axis=[1, 2, 3])
