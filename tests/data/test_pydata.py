"""sr_keras.data.pydata, the PyDataset pipelines of backends without TensorFlow, against the tf.data ones of
sr_keras.data.pipeline: the same crops where no random draw decides them, the same augmentation and
degradations, batches a function of (seed, batch), each pass showing every image once."""
import numpy as np
import pytest
import skimage.data

from sr_keras.data import degradations, imresize, loaders, pipeline, pydata


def _images(n=1, lr_sizes=((12, 12),), scale=4):
    """In-memory (lr, hr) uint8 training images: photo crops, LR their bicubic downscale."""
    photo = skimage.data.astronaut()
    out = []
    for k in range(n):
        h, w = lr_sizes[k % len(lr_sizes)]
        hr = np.ascontiguousarray(photo[7 * k:7 * k + scale * h, 11 * k:11 * k + scale * w])
        out.append((imresize.downscale(hr, scale), hr))
    return out, [lr.shape[:2] for lr, _ in out]


def _kwargs(**over):
    return dict(scale=4, batch_size=3, lr_crop=12, augment_p=0.0, seed=11, start_batch=0, degradation=None) | over


def _tf_batches(images, sizes, count, **kwargs):
    ds = pipeline.training_pipeline(lambda ks: [images[k] for k in ks], sizes, **kwargs)
    return [(lr.numpy(), hr.numpy()) for lr, hr in ds.take(count)]


def _py_batches(images, sizes, count, **kwargs):
    seq = pydata.TrainingSequence(lambda ks: [images[k] for k in ks], sizes, **kwargs)
    return [seq[i] for i in range(count)]


@pytest.mark.parametrize("augment_p, degradation", [(0.0, None), (1.0, None), (1.0, "realistic")])
def test_whole_image_crops_match_the_tf_data_pipeline(augment_p, degradation):
    """One image exactly the crop's size leaves no window to draw, and p 0 or 1 no flag: both pipelines
    must then give the same pixels, augmented alike and (with a degradation seeded by (seed, batch,
    example)) degraded alike."""
    images, sizes = _images()
    kwargs = _kwargs(augment_p=augment_p, degradation=degradations.resolve(degradation))
    tf_batches, py_batches = _tf_batches(images, sizes, 2, **kwargs), _py_batches(images, sizes, 2, **kwargs)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(tf_batches, py_batches):
        assert lr_b.dtype == np.float32 and lr_b.shape == (3, 12, 12, 3) and hr_b.shape == (3, 48, 48, 3)
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)
    if degradation:  # each example has its own degradation seed
        assert not np.array_equal(py_batches[0][0][0], py_batches[0][0][1])
    if augment_p == 1.0 and degradation is None:  # all four augmentations: a half turn
        np.testing.assert_array_equal(np.round(py_batches[0][1][0] * 255), images[0][1][::-1, ::-1])


def test_batches_are_a_function_of_seed_and_batch():
    images, sizes = _images(3, ((14, 15), (12, 20), (16, 13)))
    kwargs = _kwargs(batch_size=2, augment_p=0.5)
    straight = _py_batches(images, sizes, 6, **kwargs)
    resumed = _py_batches(images, sizes, 3, **(kwargs | {"start_batch": 3}))
    for (lr_a, hr_a), (lr_b, hr_b) in zip(straight[3:], resumed):
        np.testing.assert_array_equal(lr_a, lr_b)
        np.testing.assert_array_equal(hr_a, hr_b)
    other = _py_batches(images, sizes, 6, **(kwargs | {"seed": 12}))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(straight, other))
    assert not np.array_equal(straight[0][0], straight[1][0])


def test_each_pass_shows_every_image_once_and_hr_windows_sit_at_scale_times_lr():
    images, sizes = _images(5, ((14, 15), (12, 20), (16, 13), (13, 13), (20, 12)))
    sizes = np.asarray(sizes)
    seen = []
    seq = pydata.TrainingSequence(lambda ks: [images[k] for k in ks], sizes, **_kwargs(batch_size=2))
    for b in range(5):  # 10 examples: two passes over the 5 images
        ks, ys, xs, _ = pydata.batch_plan(b, seq.seed, sizes, 2, 12, 0.0)
        assert np.all(ys + 12 <= sizes[ks, 0]) and np.all(xs + 12 <= sizes[ks, 1])
        lr, hr = seq.batch(b)
        for i, (k, y, x) in enumerate(zip(ks, ys, xs)):
            np.testing.assert_array_equal(lr[i], images[k][0][y:y + 12, x:x + 12])
            np.testing.assert_array_equal(hr[i], images[k][1][4 * y:4 * y + 48, 4 * x:4 * x + 48])
        seen += list(ks)
    assert sorted(seen[:5]) == sorted(seen[5:]) == [0, 1, 2, 3, 4]


def test_a_bicubic_degradation_makes_the_bicubic_downscale_of_the_hr_crop():
    images, sizes = _images(2, ((14, 15), (16, 13)))
    bicubic = degradations.DegradationConfig(blur_p=0.0, noise_p=0.0, jpeg_p=0.0, second_order_p=0.0,
                                             resize_kernels=(("bicubic", 1.0),))
    for lr, hr in _py_batches(images, sizes, 2, **_kwargs(batch_size=2, augment_p=0.5, degradation=bicubic)):
        for l, h in zip(lr, hr):
            np.testing.assert_array_equal(np.round(l * 255), imresize.downscale(np.round(h * 255).astype(np.uint8), 4))


def test_eval_sequence_gives_the_eval_pipeline_pairs():
    pairs = loaders.eval_pairs("samples", "bicubic_x4", "test")
    seq = pydata.EvalSequence(pairs, 4)
    assert len(seq) == len(pairs) == 2 and len(seq.take(1)) == 1 and len(seq.take(-1)) == 2
    for (lr_a, hr_a), (lr_b, hr_b) in zip(pipeline.eval_pipeline(pairs, 4), seq):
        np.testing.assert_array_equal(lr_a.numpy(), lr_b)
        np.testing.assert_array_equal(hr_a.numpy(), hr_b)
