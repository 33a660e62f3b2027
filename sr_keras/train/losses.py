"""GAN losses: pixel MSE or L1, the VGG19 content (perceptual) loss, and the standard (SRGAN, report
section 3.2) or relativistic average (ESRGAN section 3.2) adversarial losses on logits.

Every function takes Keras' (y_true, y_pred) order where there is one (HR, SR) and returns one value
per image (shape [N]) so that the caller chooses the reduction; the GAN train step averages them over
the *global* batch, which keeps gradients right under tf.distribute (Keras' optimizer sums gradients
over replicas). The relativistic losses compare each logit with the mean logit of the other batch, which
under tf.distribute is the mean over the replica's share of the batch (as BasicSR's per-GPU mean).
"""
import math
import os
import socket
import sys

import keras

from sr_keras.core.errors import UserError, first_line

VGG19_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG19_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + VGG19_NOTOP_FILE
VGG19_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"  # the hash keras.applications.VGG19 checks
CONTENT_INPUTS = ("imagenet", "report")
CONTENT_ACTIVATIONS = ("after", "before")
CONTENT_CRITERIA = ("mse", "l1")
DOWNLOAD_TIMEOUT_S = 60  # a firewalled network may drop packets instead of refusing: do not hang


def _images(y_true, y_pred):
    return keras.ops.cast(y_true, "float32"), keras.ops.cast(y_pred, "float32")


def pixel_loss(y_true, y_pred):
    """Per-image MSE over all pixels and channels (the report's eq. 2)."""
    y_true, y_pred = _images(y_true, y_pred)
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=[1, 2, 3])


def l1_pixel_loss(y_true, y_pred):
    """Per-image mean absolute error over all pixels and channels (ESRGAN's L_1)."""
    y_true, y_pred = _images(y_true, y_pred)
    return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=[1, 2, 3])


# The pixel losses by their --loss / --pixel-loss names. PIXEL_LOSSES: the per-image functions above (the
# GAN's train step reduces them over the global batch). KERAS_PIXEL_LOSSES: the same losses by their Keras
# names, for model.compile (train_srresnet.py's trainer, with Keras' own reduction, as the report's fit).
PIXEL_LOSSES = {"mse": pixel_loss, "l1": l1_pixel_loss}
KERAS_PIXEL_LOSSES = {"mse": "mean_squared_error", "l1": "mean_absolute_error"}


def _logits(logits):
    return keras.ops.reshape(keras.ops.cast(logits, "float32"), [-1])


def _bce(label, logits):
    """BCE_logits(logits, label) per element: softplus(-x) for label 1, softplus(x) for label 0."""
    target = keras.ops.ones_like(logits) if label else keras.ops.zeros_like(logits)
    return keras.ops.binary_crossentropy(target, logits, from_logits=True)


def generator_adversarial_loss(fake_logits):
    """Per-image BCE_logits(D(SR), 1) = -log sigmoid(D(SR)) (the report's eq. 4)."""
    return _bce(1, _logits(fake_logits))


def discriminator_loss(real_logits, fake_logits):
    """Per-image BCE_logits(D(HR), 1) + BCE_logits(D(SR), 0) (the report's eq. 6)."""
    return _bce(1, _logits(real_logits)) + _bce(0, _logits(fake_logits))


def relativistic_logits(real_logits, fake_logits):
    """(C(x_r) - E[C(x_f)], C(x_f) - E[C(x_r)]) per image: the arguments of sigmoid in ESRGAN's
    D_Ra(x_r, x_f) and D_Ra(x_f, x_r), the means over the batch."""
    real, fake = _logits(real_logits), _logits(fake_logits)
    return real - keras.ops.mean(fake), fake - keras.ops.mean(real)


def relativistic_discriminator_loss(real_logits, fake_logits):
    """Per-image -log D_Ra(x_r, x_f) - log(1 - D_Ra(x_f, x_r)); its batch mean is ESRGAN's L_D^Ra.

    Gradients flow through both means, as in the paper's equations (BasicSR detaches the other batch's
    logits and halves each term).
    """
    real, fake = relativistic_logits(real_logits, fake_logits)
    return _bce(1, real) + _bce(0, fake)


def relativistic_generator_loss(real_logits, fake_logits):
    """Per-image -log(1 - D_Ra(x_r, x_f)) - log D_Ra(x_f, x_r); its batch mean is ESRGAN's L_G^Ra.

    Both terms, summed as the paper's equation (BasicSR averages them: half this value), so G gets
    gradients from the real images' term too.
    """
    real, fake = relativistic_logits(real_logits, fake_logits)
    return _bce(0, real) + _bce(1, fake)


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
    """Content loss: scale * per-image distance between VGG19 features of SR and HR.

    Args:
        layer: a VGG19 layer name; the default block5_conv4 is phi_5,4 (conv5_4).
        scale: factor on the feature distance (the report's code: 0.006 on the MSE).
        input_mode: "imagenet" ([0,1] -> x255 -> vgg19.preprocess_input, as Ledig et al.) or "report"
            (raw [0,1] RGB, as the report's code, whose normalisation was commented out).
        weights: "imagenet", a local .h5 weights file (the notop file keras.applications uses), or
            "random".
        activation: "after" the layer's ReLU (SRGAN's phi_i,j, the report's eq. 3) or "before" it
            (ESRGAN section 3.3: deep features are sparse after the ReLU); "before" needs a conv layer.
        criterion: "mse" (SRGAN) or "l1" (ESRGAN's code: mean absolute feature difference).

    The frozen feature extractor is built once here. It is deliberately a plain object, not a Keras
    layer, so that models holding it do not store VGG's 20M parameters in their checkpoints.
    """

    def __init__(self, layer="block5_conv4", scale=0.006, input_mode="imagenet", weights="imagenet",
                 activation="after", criterion="mse"):
        for flag, value, allowed in (("--content-input", input_mode, CONTENT_INPUTS),
                                     ("--content-activation", activation, CONTENT_ACTIVATIONS),
                                     ("--content-criterion", criterion, CONTENT_CRITERIA)):
            if value not in allowed:
                raise UserError(f"{flag} {value}: must be one of {', '.join(allowed)}")
        if not 0.0 <= float(scale) < math.inf:  # negative or NaN: a content term that trains the wrong way or is NaN
            raise UserError(f"--content-scale {scale}: must be a finite number >= 0")
        vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
        names = [lyr.name for lyr in vgg.layers[1:]]
        if layer not in names:
            raise UserError(f"--content-layer {layer}: not a VGG19 layer; choose one of {', '.join(names)}")
        target = vgg.get_layer(layer)
        if activation == "before" and not isinstance(target, keras.layers.Conv2D):
            convs = [name for name in names if "conv" in name]
            raise UserError(f"--content-layer {layer}: --content-activation before needs a conv layer; "
                            f"choose one of {', '.join(convs)}")
        path = resolve_vgg_weights(weights)
        if path is not None:
            try:
                vgg.load_weights(path)
            except Exception as e:  # h5py/keras raise many types for a wrong or damaged file
                raise UserError(f"--vgg-weights {weights}: cannot load VGG19 (no top) weights from it "
                                f"({first_line(e)})") from None
        vgg.trainable = False
        output = target.output
        if activation == "before":
            # Keras fuses the ReLU into the conv: a linear copy of the layer with its loaded weights gives
            # the pre-activation features
            linear = keras.layers.Conv2D.from_config({**target.get_config(), "activation": "linear",
                                                      "name": f"{layer}_linear", "trainable": False})
            output = linear(target.input)
            linear.set_weights(target.get_weights())
        self.extractor = keras.Model(vgg.input, output, name=f"vgg19_{layer}_{activation}")
        self.extractor.trainable = False
        self.layer, self.scale, self.input_mode, self.weights = layer, float(scale), input_mode, weights
        self.activation, self.criterion = activation, criterion

    def features(self, images):
        x = keras.ops.cast(images, "float32")
        if self.input_mode == "imagenet":
            x = keras.applications.vgg19.preprocess_input(x * 255.0)
        return keras.ops.cast(self.extractor(x, training=False), "float32")

    def __call__(self, y_true, y_pred):
        """Per-image scale * distance(phi(SR), phi(HR)). Two VGG calls rather than one on [SR; HR]: the
        backward pass then runs through VGG for SR only."""
        difference = self.features(y_pred) - keras.ops.stop_gradient(self.features(y_true))
        distance = keras.ops.square(difference) if self.criterion == "mse" else keras.ops.abs(difference)
        return self.scale * keras.ops.mean(distance, axis=[1, 2, 3])
