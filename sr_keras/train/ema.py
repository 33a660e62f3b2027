"""Exponential moving average (EMA) of a generator's weights (--ema DECAY), kept by its Adam optimizer.

Keras' optimizer EMA (use_ema, ema_momentum) updates, after every step, average = decay * average +
(1 - decay) * weight (the first step copies the weight), inside the compiled train step and under
tf.distribute. The averages are optimizer variables, so a run's checkpoint holds them and --resume
restores them exactly. `WeightAverage.applied()` puts them into the generator for a while (validation,
the selected generator's checkpoint, the image panel) and then puts the trained weights back.
"""
import contextlib

import keras


@keras.saving.register_keras_serializable(package="sr_keras")
class EMAAdam(keras.optimizers.Adam):
    """Adam with an EMA of the weights it trains, whose averages never replace the trained weights.

    Keras' fit() ends by overwriting the model's trainable weights with the averages
    (finalize_variable_values, with *all* the model's trainable weights: for a GAN, G's and D's, which
    G's optimizer cannot match). Here the run's checkpoints and export read the averages explicitly,
    so the trained weights stay as the last step left them.
    """

    def finalize_variable_values(self, var_list):
        """Leaves `var_list` unchanged (see the class docstring)."""


def adam(lr, ema=None):
    """Adam with PyTorch's epsilon 1e-8 and, with `ema` (the decay, in (0, 1)), an EMA of the weights.

    Args:
        lr: learning rate.
        ema: EMA decay, or None for no EMA.
    """
    if ema is None:
        return keras.optimizers.Adam(lr, epsilon=1e-8)
    if not 0.0 < ema < 1.0:
        raise ValueError(f"ema must be a decay in (0, 1). Received: ema={ema!r}")
    return EMAAdam(lr, epsilon=1e-8, use_ema=True, ema_momentum=float(ema))


class WeightAverage:
    """The EMA kept by `optimizer` (an `adam(lr, ema)`, possibly wrapped in a LossScaleOptimizer) of the
    weights it trains; the variables are looked up when used, after the optimizer is built."""

    def __init__(self, optimizer):
        self.optimizer = getattr(optimizer, "inner_optimizer", optimizer)

    def pairs(self):
        """[(trained variable, its average)] in the optimizer's order."""
        opt = self.optimizer
        if not opt.use_ema or not opt.built:
            raise ValueError(f"the optimizer keeps no built EMA. Received: optimizer={opt.name!r}")
        # the attributes Keras' own SwapEMAWeights callback reads
        return list(zip(opt._trainable_variables, opt._model_variables_moving_average))

    def swap_in(self):
        """Put the averages into the trained variables; returns their trained values for swap_out."""
        pairs = self.pairs()
        trained = [keras.ops.convert_to_numpy(v) for v, _ in pairs]
        for variable, average in pairs:
            variable.assign(average)
        return trained

    def swap_out(self, trained):
        for (variable, _), value in zip(self.pairs(), trained):
            variable.assign(value)

    @contextlib.contextmanager
    def applied(self):
        """The averages in place of the trained weights inside the `with` block."""
        trained = self.swap_in()
        try:
            yield
        finally:
            self.swap_out(trained)
