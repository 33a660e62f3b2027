"""Keras 3 on JAX without TensorFlow: the training modules import, the GAN's JAX train step resumes
exactly (both optimizers and the EMA checkpointed), and the export is model.keras + generator.json."""
import importlib
import os
import sys

import keras
import numpy as np
import skimage.data

from sr_keras.archs.config import GeneratorConfig
from sr_keras.data.pydata import TrainingSequence
from sr_keras.train import runs
from sr_keras.train.ema import WeightAverage
from sr_keras.train.gan import build_srgan_trainer


def test_the_training_path_imports_without_tensorflow():
    for name in ("sr_keras.cli.train_srresnet", "sr_keras.cli.train_srgan", "sr_keras.train.loop", "sr_keras.data.loaders",
                 "sr_keras.train.callbacks", "sr_keras.train.distribute", "sr_keras.exports.savedmodel", "sr_keras.train.gan", "sr_keras.train.runs"):
        importlib.import_module(name)
    assert keras.backend.backend() == "jax" and "tensorflow" not in sys.modules


def _sequence(start_batch):
    hr = np.ascontiguousarray(skimage.data.astronaut()[100:196, 140:236])
    lr = hr.reshape(24, 4, 24, 4, 3).mean(axis=(1, 3)).round().astype(np.uint8)
    return TrainingSequence(lambda ks: [(lr, hr)] * len(ks), [(24, 24)], scale=4, batch_size=2, lr_crop=8,
                            augment_p=0.5, seed=3, start_batch=start_batch, workers=1)


def _gan():
    keras.utils.set_random_seed(0)
    generator = GeneratorConfig(scale=4, num_blocks=1, filters=8).build()
    return build_srgan_trainer(generator, 32, None, 4, lr=1e-3, content_weight=0.0, ema=0.9)


def _state(model):
    average = [keras.ops.convert_to_numpy(a) for _, a in WeightAverage(model.g_optimizer).pairs()]
    return ([keras.ops.convert_to_numpy(v) for v in model.weights] + average
            + [keras.ops.convert_to_numpy(v) for o in model.optimizers for v in o.variables])


def test_gan_resume_is_exact_with_both_optimizers_and_the_average(tmp_path):
    straight = _gan()
    straight.fit(_sequence(0), epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)

    first = _gan()
    first.fit(_sequence(0), epochs=1, steps_per_epoch=2, shuffle=False, verbose=0)
    path = str(tmp_path / "last.weights.h5")
    runs.atomic_save_weights(first, path)
    resumed = _gan()
    resumed.load_weights(path)
    assert int(resumed.g_optimizer.iterations) == int(resumed.d_optimizer.iterations) == 2
    resumed.fit(_sequence(2), epochs=2, initial_epoch=1, steps_per_epoch=2, shuffle=False, verbose=0)

    assert int(straight.d_optimizer.iterations) == 4
    for a, b in zip(_state(straight), _state(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    trained, average = zip(*WeightAverage(resumed.g_optimizer).pairs())
    assert not np.array_equal(keras.ops.convert_to_numpy(trained[0]), keras.ops.convert_to_numpy(average[0]))


def test_export_is_model_keras_and_generator_json(tmp_path):
    from sr_keras.exports.savedmodel import export_model, is_export

    config = GeneratorConfig(scale=2, num_blocks=1, filters=8, bicubic_skip=True)
    generator = config.build()
    out = export_model(generator, str(tmp_path / "export"), config)
    assert sorted(os.listdir(out)) == ["generator.json", "model.keras"] and is_export(out)
    x = np.random.default_rng(0).random((1, 10, 9, 3)).astype("float32")
    loaded = keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(generator(x)))
