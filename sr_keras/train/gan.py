"""SRGAN and ESRGAN as one keras.Model: generator + discriminator + VGG content loss, custom train/test steps.

One train step (report section 3.2, in the alternating order of PyTorch GAN training loops):
1. SR = G(LR); D is updated on its adversarial loss, SR held constant: standard (SRGAN)
   BCE_logits(D(HR), 1) + BCE_logits(D(SR), 0), or relativistic average (ESRGAN) with the logits taken
   relative to the other batch's mean logit;
2. G is updated on pixel_weight * pixel (MSE or L1) + content_weight * content + adversarial_weight *
   adversarial, with D's logits evaluated by the freshly updated D (the relativistic loss also needs
   D(HR) again; it carries no gradient to G's weights other than through the mean).
D sees real and generated batches in separate calls, so its BatchNorm statistics never mix them (as
PyTorch's separate D(HR) and D(SR) calls). Losses are per-image vectors averaged over the global
batch (tf.nn.compute_average_loss), which keeps gradients right under tf.distribute strategies.

The train and test steps are the backend's: sr_keras.train.gan_tf (GradientTape, tf.distribute) on TensorFlow,
sr_keras.train.gan_jax (stateless calls, jax.vjp) on JAX; the losses and everything else are here, shared.
"""
import math

import keras

from sr_keras.core.backend import is_tensorflow
from sr_keras.core.errors import UserError, first_line
from sr_keras.evaluation.metrics import PSNRY, SSIMY
from sr_keras.train import losses
from sr_keras.train.distribute import MultiWorkerFit
from sr_keras.train.ema import adam

if is_tensorflow():
    from sr_keras.train.gan_tf import TFSteps as _Steps
else:
    from sr_keras.train.gan_jax import JAXSteps as _Steps

TRAIN_METRICS = ("g_loss", "pixel_loss", "content_loss", "adversarial_loss", "d_loss", "d_real", "d_fake")
GAN_TYPES = ("standard", "relativistic")
DISCRIMINATORS = ("report", "vgg")


def build_discriminator(kind, hr_size):
    """The report's discriminator (models.discriminator) or ESRGAN's VGG-style one (hr_size divisible by 32).

    Args:
        kind: one of DISCRIMINATORS.
        hr_size: side of the HR crops it judges.
    """
    if kind == "vgg":
        from sr_keras.archs.vgg_discriminator import vgg_discriminator

        return vgg_discriminator(hr_size)
    if kind != "report":
        raise ValueError(f"kind must be one of {DISCRIMINATORS}. Received: kind={kind!r}")
    from sr_keras.archs.models import discriminator

    return discriminator(hr_size)


class SRGANCore(MultiWorkerFit, keras.Model):
    """A GAN trainer for a super-resolution generator.

    Calling the model runs the generator, so predict() and the exported model are G alone. The
    content loss is kept as a plain attribute: VGG is not part of the model's weights or checkpoints.

    Args:
        generator: LR -> SR in [0, 1].
        discriminator: HR-sized image -> one logit per image (`build_discriminator`).
        content_loss: a `losses.VGGContentLoss`, any callable (hr, sr) -> per-image loss, or None for no
            content term (SRGAN-MSE: pixel + adversarial only; no VGG is built or needed).
        scale: the SR factor, also the border cropped by validation PSNR/SSIM on Y.
        gan: "standard" (SRGAN) or "relativistic" (ESRGAN's relativistic average GAN). The logged
            d_real and d_fake are D's mean probabilities: sigmoid(C(x)) for standard,
            D_Ra(x_r, x_f) and D_Ra(x_f, x_r) for relativistic.
        **kwargs: keras.Model's (name, ...).
    """

    def __init__(self, generator, discriminator, content_loss, scale, gan="standard", **kwargs):
        super().__init__(**kwargs)
        if gan not in GAN_TYPES:
            raise ValueError(f"gan must be one of {GAN_TYPES}. Received: gan={gan!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.content_loss = content_loss
        self.scale = int(scale)
        self.gan = gan
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRAIN_METRICS}
        self.psnr = PSNRY(self.scale)
        self.ssim = SSIMY(self.scale)
        self.built = True  # both networks are built functional models

    def call(self, lr, training=False):
        return self.generator(lr, training=training)

    def compile(self, g_optimizer, d_optimizer, pixel_weight=2.0, content_weight=1.0, adversarial_weight=0.005,
                pixel_loss="mse", **kwargs):
        """One optimizer per network; `kwargs` (jit_compile, steps_per_execution, ...) go to keras.

        `self.optimizer` is G's optimizer, so Keras' own bookkeeping (TensorBoard steps, iterations)
        counts train steps; callbacks.LRSchedule sets the rate of both (`optimizers`). Under mixed_float16 both
        optimizers get dynamic loss scaling. pixel_loss: "mse" (SRGAN) or "l1" (ESRGAN).
        """
        if pixel_loss not in losses.PIXEL_LOSSES:
            raise ValueError(f"pixel_loss must be one of {tuple(losses.PIXEL_LOSSES)}. "
                             f"Received: pixel_loss={pixel_loss!r}")
        weights = {"pixel_weight": pixel_weight, "content_weight": content_weight,
                   "adversarial_weight": adversarial_weight}
        for name, value in weights.items():
            # a negative weight trains the term the wrong way, a NaN one makes every loss NaN
            if not 0.0 <= float(value) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0. Received: {name}={value!r}")
        if self.dtype_policy.name == "mixed_float16":
            g_optimizer, d_optimizer = (
                o if isinstance(o, keras.optimizers.LossScaleOptimizer) else keras.optimizers.LossScaleOptimizer(o)
                for o in (g_optimizer, d_optimizer))
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.pixel_weight = float(pixel_weight)
        self.content_weight = float(content_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.pixel_loss = pixel_loss
        self.build_optimizers()

    def build_optimizers(self):
        """Create both optimizers' slots now (each for its own network only), so that checkpoints can be
        restored into them before the first step and G's Adam holds no slots for D's 80M weights."""
        if not self.g_optimizer.built:
            self.g_optimizer.build(self.generator.trainable_variables)
        if not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def optimizers(self):
        return [self.g_optimizer, self.d_optimizer]

    @property
    def metrics(self):
        return [*self.trackers.values(), self.psnr, self.ssim]

    def discriminator_terms(self, real_logits, fake_logits):
        """(D's per-image loss, D's probability for real, for fake images), float32."""
        if self.gan == "relativistic":
            real, fake = losses.relativistic_logits(real_logits, fake_logits)
            return (losses.relativistic_discriminator_loss(real_logits, fake_logits), keras.ops.sigmoid(real),
                    keras.ops.sigmoid(fake))
        return (losses.discriminator_loss(real_logits, fake_logits),
                keras.ops.sigmoid(keras.ops.reshape(real_logits, [-1])),
                keras.ops.sigmoid(keras.ops.reshape(fake_logits, [-1])))

    def generator_terms(self, hr, sr, real_logits, fake_logits):
        """Weighted per-image (pixel, content, adversarial) terms of G's loss, float32. real_logits is
        only read by the relativistic loss (None for standard)."""
        if self.gan == "relativistic":
            adversarial = losses.relativistic_generator_loss(real_logits, fake_logits)
        else:
            adversarial = losses.generator_adversarial_loss(fake_logits)
        pixel = losses.PIXEL_LOSSES[self.pixel_loss](hr, sr)
        content = keras.ops.zeros_like(pixel) if self.content_loss is None else self.content_loss(hr, sr)
        return (self.pixel_weight * pixel,
                self.content_weight * keras.ops.cast(content, "float32"),
                self.adversarial_weight * adversarial)


class SRGAN(_Steps, SRGANCore):
    """SRGANCore (its docstring gives the arguments) with the backend's train and test steps."""


def build_srgan_trainer(generator, hr_size, content_loss, scale, *, lr=1e-4, pixel_weight=2.0,
                        content_weight=1.0, adversarial_weight=0.005, jit=False, gan="standard",
                        discriminator="report", pixel_loss="mse", ema=None):
    """The GAN model compiled exactly as train_srgan.py trains it (benchmarks time this one).

    Call after distribute.set_precision() and inside strategy.scope(). Adam's epsilon is PyTorch's 1e-8.

    Args:
        generator: the generator (SRResNet or RRDBNet).
        hr_size: HR crop side, the discriminator's input.
        content_loss: a `losses.VGGContentLoss`, or None (no content term).
        scale: upscaling factor.
        lr: initial learning rate of both networks.
        pixel_weight, content_weight, adversarial_weight: weights of G's loss terms.
        jit: compile the train step with XLA (always on JAX).
        gan: one of GAN_TYPES.
        discriminator: one of DISCRIMINATORS.
        pixel_loss: "mse" or "l1".
        ema: decay of an exponential moving average of G's weights (`ema.adam`), or None.
    """
    model = SRGAN(generator, build_discriminator(discriminator, hr_size), content_loss, scale, gan=gan,
                  name="srgan")
    model.compile(adam(lr, ema), adam(lr), pixel_weight=pixel_weight, content_weight=content_weight,
                  adversarial_weight=adversarial_weight, pixel_loss=pixel_loss,
                  jit_compile=bool(jit) or not is_tensorflow())  # JAX steps are always XLA-compiled
    return model


def load_init_generator(generator, path, config, trust_model=False):
    """Copy the weights of a trained PSNR-oriented generator into `generator` (built from this run's `config`).

    Args:
        generator: the run's generator (SRResNet or RRDBNet).
        path: a ModelRef (sr_keras.infer.loading.resolve, which has checked a SavedModel alone), or a model
            name, an export folder of the training scripts (its model.keras is used), a .keras file, or a
            .weights.h5 file. A SavedModel folder without model.keras gives the variables of
            its serving signature, every one matched to a generator weight by name (or it is refused),
            once sr_keras.infer.model_safety has found nothing but tensor math in it; its scale is probed
            through that signature.
        config: the run's config.GeneratorConfig.
        trust_model: vouch for a SavedModel without model.keras (refused otherwise); its graph is still
            checked. Only for SavedModels you wrote yourself.

    Raises:
        UserError: about `model`, naming `path`, for a missing or unreadable file, a refused SavedModel,
            another scale or another architecture (its generator.json, where it has one, must equal `config`).
    """
    from sr_keras.infer.loading import load_generator_config, load_keras_model, probe_scale, resolve

    # a path, or a model name (saved_models/, $SR_KERAS_MODELS), resolved once; a SavedModel alone is checked here
    ref = resolve(path, trust_model)
    path = ref.path
    if path.endswith(".weights.h5"):
        try:
            generator.load_weights(path)
        except Exception as e:  # keras raises ValueError or h5py errors for another architecture or a bad file
            raise UserError(f"{path}: cannot load these weights into a generator with {config.describe()} "
                            f"({first_line(e)}); pass the architecture flags of the run that trained it",
                            argument="model") from None
        return generator
    src_config = load_generator_config(path)
    if ref.kind == "savedmodel":
        # A SavedModel alone is a program: called (for its scale) only once checked. Its variables come in the
        # order its graph uses them, so they are taken only by name: an export's carry the generator's weight paths.
        from sr_keras.infer.inference import open_savedmodel
        from sr_keras.infer.model_safety import SIGNATURE

        root, run_uint8 = open_savedmodel(ref)  # checked by resolve: not again
        src_scale = probe_scale(lambda x: run_uint8(x.astype("uint8")), path)
        found = {v.name.rsplit(":", 1)[0]: v for v in root.signatures[SIGNATURE].variables}
        src = [found[w.path] for w in generator.weights if w.path in found]
        unmatched = len(src) != len(generator.weights) or len(src) != len(found)
    else:
        loaded = load_keras_model(ref)
        src_scale = probe_scale(lambda x: loaded(x, training=False), path)
        src, unmatched = loaded.weights, False
    src_desc = src_config.describe() if src_config else f"{len(src)} weight arrays"
    if src_scale != config.scale:
        raise UserError(f"{path} is a x{src_scale} model but this run trains x{config.scale} "
                        "(--track); use a generator trained on the same scale", argument="model")
    if unmatched:  # a permutation of same-shaped arrays would pass the shape check below
        named = f"{len(found)} variables, {len(src)} of this run's {len(generator.weights)} weights among them by name"
        raise UserError(f"{path} has another architecture ({src_config.describe() + '; ' if src_config else ''}"
                        f"{named}) than this run's generator ({config.describe()}); pass the flags it was trained with",
                        argument="model")
    # generator.json first: a bicubic skip has no weights, so shapes alone pass a network without it
    if ((src_config is not None and src_config != config)
            or [tuple(v.shape) for v in src] != [tuple(v.shape) for v in generator.weights]):
        raise UserError(f"{path} has another architecture ({src_desc}) than this run's generator "
                        f"({config.describe()}); pass the flags it was trained with", argument="model")
    generator.set_weights([keras.ops.convert_to_numpy(v) for v in src])
    return generator
