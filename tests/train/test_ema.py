"""--ema: the optimizer's exponential moving average of the generator's weights, against hand-computed
averages; what validation, the selected checkpoint and the trainer checkpoint hold; resume."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from sr_keras.archs.config import GeneratorConfig
from sr_keras.evaluation.metrics import tf_psnr_y
from sr_keras.train import callbacks, ema, loop

TINY_RRDB = GeneratorConfig(4, arch="rrdbnet", num_blocks=1, filters=8, growth=4)


def _pairs(seed=0, n=2):
    rng = np.random.default_rng(seed)
    hr = rng.random((n, 32, 32, 3), dtype=np.float32)
    return hr.reshape(n, 8, 4, 8, 4, 3).mean(axis=(2, 4)), hr


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _trainer(decay, seed=0):
    keras.utils.set_random_seed(seed)
    return loop.build_srresnet_trainer(TINY_RRDB, lr=1e-2, loss="l1", ema=decay)


def test_average_is_the_hand_computed_ema_of_three_steps():
    trainer, generator = _trainer(0.9)
    steps = []
    for i in range(3):
        trainer.train_on_batch(*_pairs(i))
        steps.append(_weights(generator))
    average = ema.WeightAverage(trainer.optimizer)
    w1, w2, w3 = steps
    for k, (variable, avg) in enumerate(average.pairs()):
        # the first step copies the weights; then average = 0.9 * average + 0.1 * weights
        expected = 0.9 * (0.9 * w1[k] + 0.1 * w2[k]) + 0.1 * w3[k]
        np.testing.assert_allclose(np.asarray(avg), expected, rtol=1e-5, atol=1e-7, err_msg=variable.path)
        np.testing.assert_array_equal(np.asarray(variable), w3[k])  # training goes on from the trained weights
    assert not np.allclose(w3[0], w1[0])  # the weights moved, so the test distinguishes


def test_applied_swaps_the_average_in_and_the_trained_weights_back():
    trainer, generator = _trainer(0.5)
    for i in range(2):
        trainer.train_on_batch(*_pairs(i))
    trained = _weights(generator)
    average = ema.WeightAverage(trainer.optimizer)
    averages = [np.asarray(a) for _, a in average.pairs()]
    with average.applied():
        for got, want in zip(_weights(generator), averages):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(_weights(generator), trained):
        np.testing.assert_array_equal(got, want)


def test_no_ema_is_plain_adam_and_a_bad_decay_is_refused():
    assert type(ema.adam(1e-4)) is keras.optimizers.Adam and not ema.adam(1e-4).use_ema
    assert ema.adam(1e-4, 0.999).ema_momentum == pytest.approx(0.999)
    with pytest.raises(ValueError, match=r"Received: ema=1\.0"):
        ema.adam(1e-4, 1.0)


class _RecordWeights(keras.callbacks.Callback):
    def __init__(self, generator):
        super().__init__()
        self.generator, self.steps = generator, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(_weights(self.generator))


@pytest.mark.slow  # a whole training run
def test_fit_validates_and_selects_the_average_and_checkpoints_the_trained_weights(tmp_path):
    trainer, generator = _trainer(0.5)
    lr, hr = _pairs(3)
    train_ds = tf.data.Dataset.from_tensors((lr, hr)).repeat()
    val_ds = tf.data.Dataset.from_tensor_slices((lr, hr)).batch(1)
    average = ema.WeightAverage(trainer.optimizer)
    record = _RecordWeights(generator)
    checkpoint = callbacks.RunCheckpoint(str(tmp_path), generator, {"model": "toy"}, average=average)
    hist = trainer.fit(train_ds, steps_per_epoch=2, epochs=1, validation_data=val_ds, verbose=0,
                       callbacks=[record, callbacks.AverageValidation(average), checkpoint]).history
    w1, w2 = record.steps
    expected = [0.5 * a + 0.5 * b for a, b in zip(w1, w2)]
    for got, want in zip(_weights(generator), w2):  # fit leaves the trained weights (no finalize)
        np.testing.assert_array_equal(got, want)
    best = TINY_RRDB.build()
    best.load_weights(str(tmp_path / "checkpoints" / checkpoint.best_file))
    for got, want in zip(_weights(best), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    # validation PSNR is the average's
    np.testing.assert_allclose(hist["val_psnr"][0], np.mean(tf_psnr_y(best.predict(lr, verbose=0), hr, 4)),
                               rtol=1e-4)
    resumed, resumed_generator = _trainer(0.5, seed=1)
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(str(tmp_path / "checkpoints" / "last-e0001.weights.h5"))
    for got, want in zip(_weights(resumed_generator), w2):
        np.testing.assert_array_equal(got, want)
    for (_, got), want in zip(ema.WeightAverage(resumed.optimizer).pairs(), expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)
    assert int(resumed.optimizer.iterations) == 2
