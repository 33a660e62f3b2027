"""Which Keras backend runs, and the one-line refusal of what only TensorFlow can do.

Training runs on TensorFlow or JAX (KERAS_BACKEND=jax, for machines without TensorFlow). The models,
losses and metrics are keras.ops; the data pipeline, the GAN train step and the distribution strategy
have one implementation per backend; SavedModel/TFLite export, tensorflow-datasets, tf.distribute and
TensorBoard logs stay TensorFlow-only and are refused (or skipped) with one line on JAX.
"""
import contextlib

import keras

from sr_keras.core.errors import UserError


def name():
    """The Keras backend's name ("tensorflow", "jax", ...)."""
    return keras.backend.backend()


def is_tensorflow():
    return name() == "tensorflow"


def require_tensorflow(what):
    """Raise UserError (one line) unless the backend is TensorFlow.

    Args:
        what: the flag or feature asked for, e.g. "--strategy mirrored (tf.distribute)".
    """
    if not is_tensorflow():
        raise UserError(f"{what} needs TensorFlow; this run uses KERAS_BACKEND={name()} (unset KERAS_BACKEND, or "
                        "set it to tensorflow, on a machine with TensorFlow)")


class NoStrategy:
    """The default strategy's stand-in on backends without tf.distribute: one replica, a scope that changes
    nothing, no cluster."""

    num_replicas_in_sync = 1
    cluster_resolver = None

    def scope(self):
        return contextlib.nullcontext()
