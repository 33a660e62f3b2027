import re

import h5py
import keras
import numpy as np
import pytest

from sr_keras.core.errors import UserError
from sr_keras.train import losses

IMAGENET_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


@pytest.fixture(scope="module")
def vgg_random():
    return losses.VGGContentLoss(weights="random")


def _images(seed, n=2, size=32):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_pixel_loss_is_per_image_mse():
    hr = np.zeros((2, 4, 4, 3), np.float32)
    sr = np.stack([np.full((4, 4, 3), 0.5, np.float32), np.full((4, 4, 3), -0.1, np.float32)])
    np.testing.assert_allclose(np.asarray(losses.pixel_loss(hr, sr)), [0.25, 0.01], rtol=1e-6)


def test_adversarial_losses_on_logits():
    real, fake = np.array([[2.0], [-1.0]], np.float32), np.array([[0.5], [-3.0]], np.float32)
    # BCE_logits(x, 1) = softplus(-x), BCE_logits(x, 0) = softplus(x)
    np.testing.assert_allclose(np.asarray(losses.generator_adversarial_loss(fake)), _softplus(-fake[:, 0]), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(losses.discriminator_loss(real, fake)),
                               _softplus(-real[:, 0]) + _softplus(fake[:, 0]), rtol=1e-5)


def test_l1_pixel_loss_is_per_image_mean_absolute_error():
    hr = np.zeros((2, 4, 4, 3), np.float32)
    sr = np.stack([np.full((4, 4, 3), 0.5, np.float32), np.full((4, 4, 3), -0.1, np.float32)])
    sr[1, 0, 0, 0] = 1.9  # one pixel off by 1.9 instead of 0.1: mean over 48 values
    np.testing.assert_allclose(np.asarray(losses.l1_pixel_loss(hr, sr)), [0.5, (47 * 0.1 + 1.9) / 48], rtol=1e-6)
    assert losses.PIXEL_LOSSES == {"mse": losses.pixel_loss, "l1": losses.l1_pixel_loss}


def test_each_keras_pixel_loss_is_its_per_image_loss_averaged_over_the_batch():
    # train_srresnet.py compiles the Keras name, the GAN calls the per-image function: one --loss, one loss
    rng = np.random.default_rng(0)
    hr, sr = rng.random((2, 4, 5, 3), dtype=np.float32), rng.random((2, 4, 5, 3), dtype=np.float32)
    assert losses.KERAS_PIXEL_LOSSES.keys() == losses.PIXEL_LOSSES.keys()
    for name, keras_name in losses.KERAS_PIXEL_LOSSES.items():
        compiled = float(keras.ops.mean(keras.losses.get(keras_name)(hr, sr)))
        assert compiled == pytest.approx(float(np.mean(losses.PIXEL_LOSSES[name](hr, sr))), rel=1e-6), name


def test_relativistic_losses_on_fixed_logits():
    real, fake = np.array([[2.0], [-1.0]], np.float32), np.array([[0.5], [-3.0]], np.float32)
    # E[C(x_f)] = -1.25, E[C(x_r)] = 0.5: C(x_r) - E[C(x_f)] = [3.25, 0.25], C(x_f) - E[C(x_r)] = [0, -3.5]
    rel_real, rel_fake = np.array([3.25, 0.25]), np.array([0.0, -3.5])
    got_real, got_fake = losses.relativistic_logits(real, fake)
    np.testing.assert_allclose(np.asarray(got_real), rel_real, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(got_fake), rel_fake, atol=1e-6)
    # -log sigmoid(x) = softplus(-x), -log(1 - sigmoid(x)) = softplus(x)
    d_expected = [np.log1p(np.exp(-3.25)) + np.log(2.0), np.log1p(np.exp(-0.25)) + np.log1p(np.exp(-3.5))]
    g_expected = [np.log1p(np.exp(3.25)) + np.log(2.0), np.log1p(np.exp(0.25)) + np.log1p(np.exp(3.5))]
    np.testing.assert_allclose(np.asarray(losses.relativistic_discriminator_loss(real, fake)), d_expected, rtol=1e-5)
    # both terms, summed (the paper), not BasicSR's average of the two
    np.testing.assert_allclose(np.asarray(losses.relativistic_generator_loss(real, fake)), g_expected, rtol=1e-5)


def test_content_loss_defaults_match_hand_computation(vgg_random):
    assert (vgg_random.layer, vgg_random.scale, vgg_random.input_mode) == ("block5_conv4", 0.006, "imagenet")
    last = vgg_random.extractor.layers[-1]
    assert last.name == "block5_conv4" and last.activation is keras.activations.relu  # phi_5,4: after ReLU
    hr, sr = _images(0), _images(1)

    def phi(x):  # x255, RGB -> BGR, minus the ImageNet mean: keras' "caffe" preprocessing, by hand
        return np.asarray(vgg_random.extractor(x[..., ::-1] * 255.0 - IMAGENET_BGR_MEAN))

    expected = 0.006 * np.mean((phi(sr) - phi(hr)) ** 2, axis=(1, 2, 3))
    got = np.asarray(vgg_random(hr, sr))
    assert got.shape == (2,) and np.all(got > 0)
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_content_loss_report_mode_layer_and_scale(vgg_random):
    loss = losses.VGGContentLoss(layer="block2_conv2", scale=0.5, input_mode="report", weights="random")
    hr, sr = _images(2), _images(3)
    f_sr, f_hr = np.asarray(loss.extractor(sr)), np.asarray(loss.extractor(hr))  # raw [0, 1] RGB in
    assert f_sr.shape == (2, 16, 16, 128)
    np.testing.assert_allclose(np.asarray(loss(hr, sr)), 0.5 * np.mean((f_sr - f_hr) ** 2, axis=(1, 2, 3)),
                               rtol=1e-4)


def test_content_features_before_activation_are_the_conv_without_its_relu(vgg_random):
    before = losses.VGGContentLoss(layer="block1_conv2", input_mode="report", weights="random",
                                   activation="before", criterion="l1", scale=2.0)
    after = keras.Model(before.extractor.input, before.extractor.get_layer("block1_conv1").output)
    linear = before.extractor.layers[-1]
    assert linear.name == "block1_conv2_linear" and linear.activation is keras.activations.linear
    assert before.extractor.trainable_weights == []
    kernel, bias = (np.asarray(w) for w in linear.weights)
    x = _images(6, n=1, size=8)
    h = np.pad(np.asarray(after(x))[0], ((1, 1), (1, 1), (0, 0)))  # block1_conv1 output, 'same' padding
    by_hand = np.stack([[np.tensordot(h[i:i + 3, j:j + 3], kernel, axes=3) for j in range(8)]
                        for i in range(8)]) + bias
    features = np.asarray(before.features(x))[0]
    np.testing.assert_allclose(features, by_hand, rtol=1e-4, atol=1e-5)
    assert (features < 0).any()  # no ReLU
    y = _images(7, n=1, size=8)
    l1 = 2.0 * np.mean(np.abs(np.asarray(before.features(y)) - features))
    np.testing.assert_allclose(np.asarray(before(x, y)), [l1], rtol=1e-5)


def test_content_features_before_activation_keep_the_loaded_weights(vgg_random, tmp_path):
    path = tmp_path / "vgg19_notop.h5"
    _write_keras_applications_h5(vgg_random.extractor, path)
    before = losses.VGGContentLoss(weights=str(path), activation="before")
    x = _images(8, n=1)
    # the source's block5_conv4 applies the ReLU to exactly these pre-activation features
    np.testing.assert_allclose(np.maximum(np.asarray(before.features(x)), 0), np.asarray(vgg_random.features(x)),
                               rtol=1e-4, atol=1e-4)


def test_vgg_is_frozen(vgg_random):
    assert vgg_random.extractor.trainable_weights == []
    assert len(vgg_random.extractor.non_trainable_weights) == 32  # 16 convs, kernel + bias


def test_random_weights_warn_loudly(capsys):
    assert losses.resolve_vgg_weights("random") is None
    err = capsys.readouterr().err
    assert "RANDOM" in err and "smoke tests only" in err


def _write_keras_applications_h5(model, path):
    """The layout of keras-applications' vgg19 ..._notop.h5: one group per layer, weight_names attrs."""
    with h5py.File(path, "w") as f:
        names = [layer.name for layer in model.layers]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for layer in model.layers:
            g = f.create_group(layer.name)
            wnames = [f"{layer.name}_W_1:0", f"{layer.name}_b_1:0"][:len(layer.weights)]
            g.attrs["weight_names"] = [n.encode() for n in wnames]
            for n, w in zip(wnames, layer.weights):
                g.create_dataset(n, data=np.asarray(w))


def test_local_weights_file_is_loaded(vgg_random, tmp_path):
    path = tmp_path / "vgg19_notop.h5"
    _write_keras_applications_h5(vgg_random.extractor, path)
    loaded = losses.VGGContentLoss(weights=str(path))
    x = _images(4, n=1)
    np.testing.assert_allclose(np.asarray(loaded.features(x)), np.asarray(vgg_random.features(x)), rtol=1e-5)


def test_imagenet_uses_keras_cache(vgg_random, tmp_path, monkeypatch):
    path = tmp_path / losses.VGG19_NOTOP_FILE
    _write_keras_applications_h5(vgg_random.extractor, path)
    seen = {}

    def cached(fname, origin, **kwargs):
        seen.update(fname=fname, origin=origin, **kwargs)
        return str(path)

    monkeypatch.setattr(keras.utils, "get_file", cached)
    loaded = losses.VGGContentLoss()
    assert seen["fname"] == losses.VGG19_NOTOP_FILE and seen["file_hash"] == losses.VGG19_NOTOP_MD5
    x = _images(5, n=1)
    np.testing.assert_allclose(np.asarray(loaded.features(x)), np.asarray(vgg_random.features(x)), rtol=1e-5)


def test_offline_imagenet_is_one_clear_line(monkeypatch):
    def offline(fname, origin, **kwargs):  # what keras.utils.get_file raises without a network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(UserError) as e:
        losses.VGGContentLoss()
    msg = str(e.value)
    assert "\n" not in msg
    assert "--vgg-weights PATH" in msg and losses.keras_cache_path() in msg and losses.VGG19_NOTOP_URL in msg


@pytest.mark.parametrize("kwargs, named", [
    ({"weights": "/no/such/vgg.h5"}, "--vgg-weights /no/such/vgg.h5: no such file"),
    ({"weights": "random", "layer": "block9_conv1"}, "--content-layer block9_conv1: not a VGG19 layer"),
    ({"weights": "random", "input_mode": "caffe"}, "--content-input caffe: must be one of imagenet, report"),
    ({"weights": "random", "activation": "relu"}, "--content-activation relu: must be one of after, before"),
    ({"weights": "random", "criterion": "l2"}, "--content-criterion l2: must be one of mse, l1"),
    ({"weights": "random", "layer": "block5_pool", "activation": "before"},
     "--content-layer block5_pool: --content-activation before needs a conv layer"),
])
def test_bad_settings_are_user_errors(kwargs, named):
    with pytest.raises(UserError, match="^" + re.escape(named)):
        losses.VGGContentLoss(**kwargs)


def test_unloadable_weights_file_is_user_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(UserError, match="^" + re.escape(f"--vgg-weights {bad}: cannot load VGG19 (no top) weights")):
        losses.VGGContentLoss(weights=str(bad))


@pytest.mark.parametrize("scale", [-0.006, float("nan")])
def test_a_negative_or_nan_content_scale_is_refused_naming_the_flag(scale):
    with pytest.raises(UserError, match=f"^--content-scale {scale}: must be a finite number >= 0"):
        losses.VGGContentLoss(weights="random", scale=scale)
