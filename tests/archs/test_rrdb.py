import keras
import numpy as np
import pytest

from sr_keras.archs.models import count_trainable
from sr_keras.archs.rrdb import rrdbnet
from sr_keras.archs.vgg_discriminator import vgg_discriminator

# ESRGAN / BasicSR RRDBNet (23 RRDBs, 64 filters, growth 32). BasicSR's x2 pixel-unshuffles its input
# instead (16,703,171); here x2 and x3 use one nearest-neighbour stage.
ESRGAN_PARAMETERS = {4: 16_697_987, 2: 16_661_059, 3: 16_661_059}
TINY = dict(num_blocks=1, filters=16, growth=8)


def conv_params(cin, cout, k=3, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def rrdbnet_params(scale, num_blocks, filters, growth):
    rdb = sum(conv_params(filters + k * growth, growth) for k in range(4)) + conv_params(filters + 4 * growth, filters)
    stages = {2: 1, 3: 1, 4: 2, 8: 3}[scale]
    return (conv_params(3, filters) + num_blocks * 3 * rdb + conv_params(filters, filters) * (2 + stages)
            + conv_params(filters, 3))


@pytest.mark.parametrize("scale", sorted(ESRGAN_PARAMETERS))
def test_rrdbnet_parameters_match_esrgan(scale):
    assert count_trainable(rrdbnet(scale)) == ESRGAN_PARAMETERS[scale]
    assert rrdbnet_params(scale, 23, 64, 32) == ESRGAN_PARAMETERS[scale]  # the formula the tiny tests use


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_tiny_rrdbnet_parameters_follow_the_formula(scale):
    assert count_trainable(rrdbnet(scale, **TINY)) == rrdbnet_params(scale, **TINY)


def test_dense_block_convs_see_every_earlier_feature_map():
    m = rrdbnet(4, **TINY)
    for j in (1, 2, 3):
        shapes = [tuple(m.get_layer(f"rrdb0_rdb{j}_conv{k}").kernel.shape) for k in range(1, 6)]
        assert shapes == [(3, 3, 16, 8), (3, 3, 24, 8), (3, 3, 32, 8), (3, 3, 40, 8), (3, 3, 48, 16)]


def test_rrdbnet_has_no_batch_norm_and_no_lambda():
    m = rrdbnet(4, num_blocks=2, filters=16, growth=8)
    assert not any(isinstance(ly, (keras.layers.BatchNormalization, keras.layers.Lambda)) for ly in m.layers)
    ups = [ly for ly in m.layers if isinstance(ly, keras.layers.UpSampling2D)]
    assert [(ly.size, ly.interpolation) for ly in ups] == [((2, 2), "nearest")] * 2


@pytest.mark.parametrize("scale,shape_in,shape_out", [(4, (17, 23), (68, 92)), (3, (13, 7), (39, 21)),
                                                      (2, (5, 9), (10, 18)), (8, (3, 5), (24, 40))])
def test_output_shape_for_odd_sizes(scale, shape_in, shape_out):
    y = rrdbnet(scale, **TINY)(np.zeros((1, *shape_in, 3), np.float32))
    assert tuple(y.shape) == (1, *shape_out, 3)


def _conv(x, layer):
    """3x3 'same' convolution in NumPy with the layer's weights (cross-correlation, as Keras)."""
    k, b = (np.asarray(w, np.float64) for w in layer.get_weights())
    h, w = x.shape[:2]
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    return sum(p[i:i + h, j:j + w] @ k[i, j] for i in range(3) for j in range(3)) + b


def _lrelu(x):
    return np.where(x > 0, x, 0.2 * x)


def test_forward_pass_matches_a_numpy_reference():
    # The ESRGAN equations written out: dense connections, LeakyReLU 0.2, residual scaling 0.2 inside
    # each RDB and around each RRDB, long skip, nearest upsampling + conv + LeakyReLU, HR conv, output conv.
    m = rrdbnet(2, num_blocks=2, filters=8, growth=4)
    rng = np.random.default_rng(1)
    m.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in m.get_weights()])
    lr = rng.random((6, 5, 3), dtype=np.float32)
    c = lambda x, name: _conv(x, m.get_layer(name))  # noqa: E731
    x = head = c(lr.astype(np.float64), "conv_first")
    for i in range(2):
        y = x
        for j in (1, 2, 3):
            feats = [y]
            for k in range(1, 5):
                feats.append(_lrelu(c(np.concatenate(feats, -1), f"rrdb{i}_rdb{j}_conv{k}")))
            y = c(np.concatenate(feats, -1), f"rrdb{i}_rdb{j}_conv5") * 0.2 + y
        x = y * 0.2 + x
    x = head + c(x, "trunk_conv")
    x = _lrelu(c(x.repeat(2, 0).repeat(2, 1), "up0_conv"))
    expected = c(_lrelu(c(x, "hr_conv")), "conv_last")
    got = np.asarray(m(lr[None], training=False))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_dense_convs_start_as_kaiming_normal_scaled_by_a_tenth():
    conv = rrdbnet(2, num_blocks=1, filters=32, growth=16).get_layer("rrdb0_rdb1_conv5")
    fan_in = 3 * 3 * (32 + 4 * 16)
    kernel = np.asarray(conv.kernel)
    assert abs(kernel.std() / (0.1 * np.sqrt(2 / fan_in)) - 1) < 0.05  # 27,648 samples: ~0.4% noise
    assert not np.asarray(conv.bias).any()


def test_keras_round_trip_in_safe_mode_gives_identical_outputs(tmp_path):
    m = rrdbnet(3, num_blocks=2, filters=16, growth=8)
    x = np.random.default_rng(0).random((1, 11, 9, 3), dtype=np.float32)
    m.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    assert [ly.name for ly in loaded.layers] == [ly.name for ly in m.layers]
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(m(x, training=False)))


def test_receptive_radius_is_read_from_the_graph():
    from sr_keras.infer.inference import receptive_radius

    # conv_first 1 + 1 RRDB x 3 RDBs x 5 convs + trunk 1 = 17 LR pixels; then at x2 (up0_conv) 1/2, at x4
    # (up1_conv, hr_conv, conv_last) 3 x 1/4: 17 + 0.5 + 0.75 = 18.25 -> 19. Nearest upsampling adds none.
    assert receptive_radius(rrdbnet(4, **TINY)) == 19


@pytest.mark.parametrize("bad", [dict(scale=5), dict(scale=4, growth=0), dict(scale=4, num_blocks=-1)])
def test_rrdbnet_refuses_bad_arguments(bad):
    with pytest.raises(ValueError, match=f"Received: {list(bad)[-1]}="):
        rrdbnet(**bad)


def vgg_params(hr_size, f=64):
    chans = [f, f, 2 * f, 2 * f, 4 * f, 4 * f, 8 * f, 8 * f, 8 * f, 8 * f]
    kernels = [3, 4] * 5
    total = conv_params(3, f)  # conv0_0, the only conv with a bias and without BN
    for i in range(1, 10):
        total += conv_params(chans[i - 1], chans[i], kernels[i], bias=False) + 2 * chans[i]  # BN gamma, beta
    side = hr_size // 32
    return total + (side * side * 8 * f * 100 + 100) + 101


@pytest.mark.parametrize("hr_size", [128, 64, 96])
def test_vgg_discriminator_parameters(hr_size):
    assert count_trainable(vgg_discriminator(hr_size)) == vgg_params(hr_size)


def test_vgg_discriminator_matches_esrgan_at_128():
    d = vgg_discriminator(128)
    assert count_trainable(d) == 14_499_401
    assert d.get_layer("flatten").output.shape[-1] == 4 * 4 * 512
    assert d.get_layer("conv0_0").use_bias and not d.get_layer("conv0_1").use_bias
    bns = [ly for ly in d.layers if isinstance(ly, keras.layers.BatchNormalization)]
    assert len(bns) == 9 and all(ly.momentum == 0.9 and ly.epsilon == 1e-5 for ly in bns)


def test_vgg_discriminator_gives_one_logit_per_image():
    d = vgg_discriminator(64, filters=8)
    assert d.get_layer("linear2").activation is keras.activations.linear
    out = np.asarray(d(np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32), training=False))
    assert out.shape == (3, 1) and np.isfinite(out).all()


@pytest.mark.parametrize("hr_size", [100, 16, 0])
def test_vgg_discriminator_refuses_sizes_not_divisible_by_32(hr_size):
    with pytest.raises(ValueError, match=f"Received: hr_size={hr_size}$"):
        vgg_discriminator(hr_size)
