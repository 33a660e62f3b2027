import numpy as np
import keras
import pytest

from sr_keras.archs import models

TABLE_1 = {2: 1_401_749, 3: 1_586_389, 4: 1_549_462}


@pytest.mark.parametrize("scale", sorted(TABLE_1))
def test_srresnet_parameters_match_table_1(scale):
    assert models.count_trainable(models.srresnet(scale)) == TABLE_1[scale]


def test_srresnet_x8_has_three_x2_stages():
    m = models.srresnet(8)
    shuffles = [l for l in m.layers if isinstance(l, models.PixelShuffle)]
    assert [l.factor for l in shuffles] == [2, 2, 2]
    # x4 plus one more 64->256 conv stage (147,712) and its PReLU slope
    assert models.count_trainable(m) == TABLE_1[4] + 147_712 + 1


def test_discriminator_parameters_and_logits():
    d = models.discriminator(180)
    assert models.count_trainable(d) == 80_188_609
    assert d.layers[-1].activation is keras.activations.linear
    out = np.asarray(d(np.ones((2, 180, 180, 3), np.float32), training=False))
    assert out.shape == (2, 1)


def test_discriminator_rejects_wrong_size():
    d = models.discriminator(48)
    with pytest.raises(ValueError, match=r"expected shape=\(None, 48, 48, 3\)"):
        d(np.zeros((1, 40, 40, 3), np.float32))


def test_prelu_is_shared_and_initialised_like_pytorch():
    m = models.srresnet(4, num_blocks=1, filters=8)
    prelus = [l for l in m.layers if isinstance(l, keras.layers.PReLU)]
    assert prelus and all(l.alpha.shape == (1, 1, 1) for l in prelus)
    assert all(np.allclose(np.asarray(l.alpha), 0.25) for l in prelus)
    bns = [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(l.epsilon == 1e-5 and l.momentum == 0.9 for l in bns)


@pytest.mark.parametrize("scale,shape_in,shape_out", [(4, (17, 23), (68, 92)), (3, (13, 7), (39, 21)),
                                                      (2, (5, 9), (10, 18)), (8, (3, 5), (24, 40))])
def test_output_shape_for_odd_sizes(scale, shape_in, shape_out):
    m = models.srresnet(scale, num_blocks=1, filters=8)
    y = m(np.zeros((1, *shape_in, 3), np.float32))
    assert tuple(y.shape) == (1, *shape_out, 3)


def _numpy_depth_to_space(x, r):
    # NHWC depth_to_space: channel (i * r + j) * C + c goes to pixel (h * r + i, w * r + j), channel c
    n, h, w, crr = x.shape
    c = crr // (r * r)
    out = np.zeros((n, h * r, w * r, c), x.dtype)
    for i in range(r):
        for j in range(r):
            out[:, i::r, j::r, :] = x[..., (i * r + j) * c:(i * r + j + 1) * c]
    return out


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_shuffle_matches_numpy_reference(r):
    x = np.random.default_rng(r).random((2, 3, 5, 4 * r * r)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(models.PixelShuffle(r)(x)), _numpy_depth_to_space(x, r))


def test_pixel_shuffle_orders_channels_unlike_pytorch():
    # One LR pixel, r = 2, C = 2, channels 0..7. depth_to_space reads channel (dy*2 + dx)*2 + c.
    x = np.arange(8, dtype=np.float32).reshape(1, 1, 1, 8)
    out = np.asarray(models.PixelShuffle(2)(x))[0]
    np.testing.assert_array_equal(out[..., 0], [[0, 2], [4, 6]])
    np.testing.assert_array_equal(out[..., 1], [[1, 3], [5, 7]])
    # PyTorch's nn.PixelShuffle reads channel c*4 + dy*2 + dx: [[0, 1], [2, 3]] and [[4, 5], [6, 7]]


def _torch_conv_pixel_shuffle(x, w, b, r):
    """PyTorch semantics in NumPy: Conv2d(padding=1) with w [O, I, 3, 3] on x [I, H, W], then
    pixel_shuffle: output (c, h*r + dy, w*r + dx) = conv channel c*r*r + dy*r + dx."""
    _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    conv = b[:, None, None] + sum(np.einsum("oi,ihw->ohw", w[:, :, ky, kx], xp[:, ky:ky + h, kx:kx + wd])
                                  for ky in range(3) for kx in range(3))
    c = conv.shape[0] // (r * r)
    return conv.reshape(c, r, r, h, wd).transpose(0, 3, 1, 4, 2).reshape(c, h * r, wd * r)


def test_pytorch_conv_weights_port_with_the_documented_permutation():
    r, c_in, c = 2, 3, 2
    rng = np.random.default_rng(0)
    w = rng.normal(size=(c * r * r, c_in, 3, 3)).astype(np.float32)
    b = rng.normal(size=c * r * r).astype(np.float32)
    x = rng.random((c_in, 5, 4)).astype(np.float32)
    want = _torch_conv_pixel_shuffle(x, w, b, r).transpose(1, 2, 0)

    conv = keras.layers.Conv2D(c * r * r, 3, padding="same")
    conv.build((1, 5, 4, c_in))
    kernel = w.transpose(2, 3, 1, 0)  # the PixelShuffle docstring's recipe
    ported = kernel.reshape(3, 3, c_in, c, r * r).transpose(0, 1, 2, 4, 3).reshape(3, 3, c_in, c * r * r)
    conv.set_weights([ported, b.reshape(c, r * r).T.reshape(-1)])
    got = np.asarray(models.PixelShuffle(r)(conv(x.transpose(1, 2, 0)[None])))[0]
    np.testing.assert_allclose(got, want, atol=1e-5)

    conv.set_weights([kernel, b])  # the same weights without the permutation scramble the picture
    naive = np.asarray(models.PixelShuffle(r)(conv(x.transpose(1, 2, 0)[None])))[0]
    assert np.abs(naive - want).max() > 0.1


def test_no_lambda_layers():
    for m in (models.srresnet(4, bicubic_skip=True, batch_norm=False), models.discriminator(48)):
        assert not any(isinstance(l, keras.layers.Lambda) for l in m.layers)


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": False, "bicubic_skip": True}])
def test_keras_round_trip_in_safe_mode(tmp_path, kwargs):
    m = models.srresnet(4, num_blocks=2, filters=16, **kwargs)
    x = np.random.default_rng(0).random((1, 17, 23, 3), dtype=np.float32)
    y = np.asarray(m(x, training=False))
    path = str(tmp_path / "g.keras")
    m.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), y)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_skip_alone_is_bicubic_upscale(scale):
    from PIL import Image
    m = models.srresnet(scale, num_blocks=1, filters=8, batch_norm=False, bicubic_skip=True)
    m.get_layer("tail_conv").kernel.assign(np.zeros(m.get_layer("tail_conv").kernel.shape))
    m.get_layer("tail_conv").bias.assign(np.zeros(3))
    x = np.random.default_rng(1).random((1, 9, 11, 3), dtype=np.float32)
    # Pillow's float bicubic (Keys a=-0.5, the MATLAB kernel) as the reference, one channel at a time
    want = np.stack([np.asarray(Image.fromarray(x[0, ..., c], mode="F").resize((11 * scale, 9 * scale), Image.BICUBIC))
                     for c in range(3)], -1)
    b = 2 * scale  # borders differ by design (symmetric padding vs renormalised taps)
    np.testing.assert_allclose(np.asarray(m(x))[0, b:-b, b:-b], want[b:-b, b:-b], atol=1e-5)


def test_bicubic_upsample_compiles_under_xla():
    import tensorflow as tf
    layer = models.BicubicUpsample(4)
    x = tf.random.uniform((1, 6, 7, 3))
    np.testing.assert_allclose(tf.function(layer, jit_compile=True)(x), layer(x), atol=1e-5)


def test_unsupported_scale_is_rejected():
    with pytest.raises(ValueError, match="scale must be one of"):
        models.srresnet(5)


def test_bicubic_skip_traces_with_unknown_size():
    import tensorflow as tf
    m = models.srresnet(3, num_blocks=1, filters=8, batch_norm=False, bicubic_skip=True)
    fn = tf.function(lambda x: m(x, training=False), input_signature=[tf.TensorSpec([None, None, None, 3])])
    assert tuple(fn(tf.zeros((1, 5, 7, 3))).shape) == (1, 15, 21, 3)


def test_few_output_conv_equals_conv2d_with_gradients():
    import tensorflow as tf
    x = tf.constant(np.random.default_rng(0).random((2, 13, 17, 8), dtype=np.float32))
    fast, ref = models.FewOutputConv2D(3, 9, padding="same"), keras.layers.Conv2D(3, 9, padding="same")
    fast.build(x.shape)
    ref.build(x.shape)
    ref.set_weights(fast.get_weights())
    grads = []
    for layer in (fast, ref):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        grads.append((y, *tape.gradient(loss, [x, layer.kernel])))
    for a, b in zip(*grads):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)


def test_every_scale_a_config_accepts_has_upsampling_stages_in_both_architectures():
    from sr_keras.archs import config
    from sr_keras.archs.rrdb import rrdbnet

    assert config.SCALES == tuple(models.UPSAMPLE_STAGES)
    x = np.zeros((1, 5, 4, 3), np.float32)
    for scale in config.SCALES:
        assert models.srresnet(scale, num_blocks=1, filters=8)(x).shape == (1, 5 * scale, 4 * scale, 3)
        assert rrdbnet(scale, num_blocks=1, filters=8, growth=4)(x).shape == (1, 5 * scale, 4 * scale, 3)


def test_inbound_map_names_each_layers_inputs_including_a_skip():
    from sr_keras.archs.graph import inbound_map

    x = keras.Input((None, None, 3), name="lr")
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(x)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
    out = keras.layers.Add(name="sum")([a, b])
    assert inbound_map(keras.Model(x, out)) == {"lr": [], "a": ["lr"], "b": ["a"], "sum": ["a", "b"]}


def test_the_public_contract_names_hand_on_the_archs_and_data_builders():
    import sr_keras.models
    from sr_keras import data
    from sr_keras.archs import rrdb
    from sr_keras.data import loaders

    assert sr_keras.models.srresnet is models.srresnet and sr_keras.models.discriminator is models.discriminator
    assert sr_keras.models.rrdbnet is rrdb.rrdbnet
    assert models.count_trainable(sr_keras.models.rrdbnet(4)) == 16_697_987  # ESRGAN's x4 RRDBNet, as the spec names it
    assert data.training_dataset is loaders.training_dataset and data.eval_dataset is loaders.eval_dataset
    with pytest.raises(AttributeError):
        data.no_such_name
