import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.archs import models
from sr_keras.evaluation.metrics import tf_psnr_y
from sr_keras.train import callbacks, gan, losses

IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


@pytest.fixture(scope="module")
def content():
    return losses.VGGContentLoss(weights="random")


def _srgan(content, seed=0, gan_type="standard", **compile_kwargs):
    keras.utils.set_random_seed(seed)
    m = gan.SRGAN(models.srresnet(4, num_blocks=2, filters=16), models.discriminator(48), content, scale=4,
                  gan=gan_type)
    m.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4), **compile_kwargs)
    return m


def _batch(seed=0, n=2):
    rng = np.random.default_rng(seed)
    hr = rng.random((n, 48, 48, 3), dtype=np.float32)
    lr = hr.reshape(n, 12, 4, 12, 4, 3).mean(axis=(2, 4))  # box-downscaled, so G's task is sensible
    return tf.constant(lr), tf.constant(hr)


def _values(variables):
    return [v.numpy() for v in variables]


def test_train_step_updates_g_and_d_but_not_vgg(content):
    m = _srgan(content)
    g0, d0 = _values(m.generator.trainable_variables), _values(m.discriminator.trainable_variables)
    vgg0 = _values(content.extractor.weights)
    m.train_step(_batch())
    for name, before, after in [("G", g0, m.generator.trainable_variables),
                                ("D", d0, m.discriminator.trainable_variables)]:
        unchanged = [v.path for b, v in zip(before, after) if np.array_equal(b, v.numpy())]
        assert not unchanged, f"{name} variables not updated: {unchanged}"
    for b, v in zip(vgg0, content.extractor.weights):
        np.testing.assert_array_equal(b, v.numpy())
    assert int(m.g_optimizer.iterations) == 1 and int(m.d_optimizer.iterations) == 1
    # G's Adam has slots for G only: D's 80M-weight slots would double the checkpoint for nothing
    assert len(m.g_optimizer.variables) == 2 + 2 * len(m.generator.trainable_variables)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("gan_type, pixel", [("standard", "mse"), ("relativistic", "l1")])
def test_loss_terms_match_hand_computation(content, gan_type, pixel):
    m = _srgan(content, gan_type=gan_type, pixel_loss=pixel)
    lr, hr = _batch(1)
    sr = np.asarray(m.generator(lr, training=True))  # BN in training mode: batch statistics, as in the step
    real = np.asarray(m.discriminator(hr, training=True))[:, 0]
    fake = np.asarray(m.discriminator(sr, training=True))[:, 0]

    def phi(x):
        return np.asarray(content.extractor(np.asarray(x)[..., ::-1] * 255.0 - IMAGENET_BGR_MEAN))

    logs = {k: float(v) for k, v in m.train_step((lr, hr)).items()}
    fake_after = np.asarray(m.discriminator(sr, training=True))[:, 0]  # G's step sees the updated D
    real_after = np.asarray(m.discriminator(hr, training=True))[:, 0]
    hr = np.asarray(hr)
    expected = {
        "pixel_loss": 2.0 * (np.mean((sr - hr) ** 2) if pixel == "mse" else np.mean(np.abs(sr - hr))),
        "content_loss": 1.0 * 0.006 * np.mean((phi(sr) - phi(hr)) ** 2),
    }
    if gan_type == "standard":
        expected.update({
            "adversarial_loss": 0.005 * np.mean(_softplus(-fake_after)),
            "d_loss": np.mean(_softplus(-real) + _softplus(fake)),
            "d_real": np.mean(_sigmoid(real)),
            "d_fake": np.mean(_sigmoid(fake)),
        })
    else:  # ESRGAN: each logit against the other batch's mean logit; G's loss has both terms, summed
        expected.update({
            "adversarial_loss": 0.005 * np.mean(_softplus(real_after - fake_after.mean())
                                                + _softplus(-(fake_after - real_after.mean()))),
            "d_loss": np.mean(_softplus(-(real - fake.mean())) + _softplus(fake - real.mean())),
            "d_real": np.mean(_sigmoid(real - fake.mean())),
            "d_fake": np.mean(_sigmoid(fake - real.mean())),
        })
    expected["g_loss"] = expected["pixel_loss"] + expected["content_loss"] + expected["adversarial_loss"]
    assert set(logs) == set(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(logs[k], v, rtol=2e-4, err_msg=k)
    assert not np.isclose(fake_after, fake).all()  # the D update happened before G's adversarial term


@pytest.mark.parametrize("gan_type", ["standard", "relativistic"])
def test_the_adversarial_term_alone_trains_g(content, gan_type):
    # D's judgement reaches G only as the adversarial term's gradient through D's logits of SR: with the
    # other terms weighted 0, G still moves (with no gradient, Adam's first step leaves a weight as it is)
    m = _srgan(content, gan_type=gan_type, pixel_weight=0.0, content_weight=0.0, adversarial_weight=1.0)
    before = _values(m.generator.trainable_variables)
    logs = m.train_step(_batch(5))
    assert float(logs["pixel_loss"]) == float(logs["content_loss"]) == 0.0 < float(logs["adversarial_loss"])
    unchanged = [v.path for b, v in zip(before, m.generator.trainable_variables) if np.array_equal(b, v.numpy())]
    assert not unchanged, f"G variables the adversarial term did not train: {unchanged}"


def test_loss_weights_are_configurable(content):
    base = _srgan(content)
    weighted = _srgan(content, pixel_weight=1.0, content_weight=3.0, adversarial_weight=0.5)
    a = {k: float(v) for k, v in base.train_step(_batch(2)).items()}
    b = {k: float(v) for k, v in weighted.train_step(_batch(2)).items()}  # same seed: same networks
    np.testing.assert_allclose(b["pixel_loss"], a["pixel_loss"] / 2.0, rtol=1e-4)
    np.testing.assert_allclose(b["content_loss"], a["content_loss"] * 3.0, rtol=1e-4)
    np.testing.assert_allclose(b["adversarial_loss"], a["adversarial_loss"] * 100.0, rtol=1e-4)


@pytest.mark.slow  # a whole training run
def test_fit_logs_every_quantity_validation_psnr_ssim_and_both_rates_decay(content):
    m = _srgan(content)
    lr, hr = _batch(3)
    train = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    val = tf.data.Dataset.from_tensor_slices((lr, hr)).batch(1)
    schedule = [callbacks.LRSchedule(lambda epoch: 1e-4 * 0.1 ** epoch)]
    hist = m.fit(train, steps_per_epoch=1, epochs=2, validation_data=val, verbose=0, callbacks=schedule).history
    assert set(hist) == set(gan.TRAIN_METRICS) | {"val_psnr", "val_ssim", "learning_rate"}
    sr = m.predict(lr, verbose=0)
    np.testing.assert_allclose(hist["val_psnr"][-1], np.mean(tf_psnr_y(sr, hr, 4)), rtol=1e-4)
    # the schedule sets both networks' rates
    assert float(m.g_optimizer.learning_rate) == pytest.approx(1e-5)
    assert float(m.d_optimizer.learning_rate) == pytest.approx(1e-5)


def test_checkpoint_restores_both_networks_and_optimizers(content, tmp_path):
    m = _srgan(content)
    for i in range(2):
        m.train_step(_batch(i))
    path = str(tmp_path / "ckpt.weights.h5")
    m.save_weights(path)
    fresh = _srgan(content, seed=1)
    fresh.load_weights(path)
    assert int(fresh.g_optimizer.iterations) == 2 and int(fresh.d_optimizer.iterations) == 2
    for a, b in [(m.generator, fresh.generator), (m.discriminator, fresh.discriminator),
                 (m.g_optimizer, fresh.g_optimizer), (m.d_optimizer, fresh.d_optimizer)]:
        for va, vb in zip(a.variables, b.variables):
            np.testing.assert_array_equal(va.numpy(), vb.numpy())


@pytest.mark.slow  # a whole training run
def test_mixed_precision_wraps_both_optimizers_and_trains(content):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        m = gan.SRGAN(models.srresnet(4, num_blocks=2, filters=16), models.discriminator(48), content, scale=4)
        m.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in m.optimizers)
    logs = m.train_step(_batch(4))
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert m.generator.output.dtype == "float16"  # computed in half precision, losses in float32


@pytest.mark.parametrize("name, value", [("pixel_weight", -1.0), ("content_weight", float("nan")),
                                         ("adversarial_weight", float("inf"))])
def test_a_negative_or_non_finite_loss_weight_is_refused_naming_it(content, name, value):
    with pytest.raises(ValueError, match=f"^{name} must be a finite number >= 0. Received: {name}={value}"):
        _srgan(content, **{name: value})
