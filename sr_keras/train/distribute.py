"""Precision, tf.distribute strategy and seeding of a run, and the Keras plumbing that lets model.fit
train under MultiWorkerMirroredStrategy. TensorFlow is imported only on its backend: on JAX the default
strategy is backend.NoStrategy and the others are refused in one line."""
import json
import os

import keras

from sr_keras.core import backend
from sr_keras.core.errors import UserError, first_line

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")


def set_precision(name):
    """Set the global Keras dtype policy. Build models after this; their variables stay float32."""
    if name not in PRECISIONS:
        raise UserError(f"--precision {name}: expected one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(name)


def strategy_from_flag(name):
    """tf.distribute strategy for --strategy (multiworker reads the cluster from TF_CONFIG)."""
    if name not in STRATEGIES:
        raise UserError(f"--strategy {name}: expected one of {', '.join(STRATEGIES)}")
    if not backend.is_tensorflow():
        if name == "default":
            return backend.NoStrategy()
        backend.require_tensorflow(f"--strategy {name} (tf.distribute)")
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy {name}: expected one of {', '.join(STRATEGIES)}")


def _chief_rule(task_type, task_id, has_chief):
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def is_chief(strategy):
    """Whether this process writes checkpoints, logs and exports (worker 0 or the chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return _chief_rule(resolver.task_type, resolver.task_id, "chief" in resolver.cluster_spec().as_dict())


def tf_config_is_chief(tf_config=None):
    """is_chief's answer read from TF_CONFIG before any strategy exists (a task without a type is
    worker 0's).

    Args:
        tf_config: TF_CONFIG's JSON text; None reads the environment variable.

    Raises:
        UserError: one line naming TF_CONFIG when it is not a JSON cluster description.
    """
    text = os.environ.get("TF_CONFIG") if tf_config is None else tf_config
    try:
        cluster = json.loads(text or "{}")
        task = cluster.get("task") or {}
        has_chief = "chief" in (cluster.get("cluster") or {})
        return _chief_rule(task.get("type", "worker"), int(task.get("index", 0)), has_chief)
    except (ValueError, TypeError, AttributeError) as e:  # bad JSON, or JSON of another shape
        raise UserError(f"TF_CONFIG is not a cluster description for --strategy multiworker ({first_line(e)}): "
                        'give JSON like {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": 0}}'
                        ) from None


def seed_everything(seed):
    """Seed Python, NumPy, the backend and Keras, and make TF ops deterministic, so seeded runs repeat."""
    if seed is None:
        return
    keras.utils.set_random_seed(seed)
    if backend.is_tensorflow():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def is_multi_worker(strategy):
    if not backend.is_tensorflow():
        return False
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


class MultiWorkerFit:
    """keras.Model mixin that lets Keras 3.15's fit()/evaluate() run under MultiWorkerMirroredStrategy
    (keras-team/keras#20585); under any other strategy it changes nothing.

    Keras (a) MEAN-reduces the first batch, a tuple of PerReplica values, for its symbolic build, and
    the collective strategy cannot reduce a tuple: only shapes matter there, so replica 0's share is
    used. (b) Keras reduces each step's scalar logs with reduce("MEAN", log, axis=0), an invalid axis
    for a scalar (its distribute_reduction_method is not consulted in 3.15): the steps return each log
    with a leading axis of 1, which that reduce then averages over all replicas of all workers. Epoch
    logs (what callbacks and checkpoints see) come from the metrics themselves, whose on-read variables
    are summed over all workers, so they are global either way.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self.distribute_strategy
        if iterator is not None and is_multi_worker(strategy):
            import tensorflow as tf

            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(it))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def train_step(self, *args):  # (data) on TensorFlow, (state, data) on JAX
        return self.reducible_logs(super().train_step(*args))

    def test_step(self, *args):
        return self.reducible_logs(super().test_step(*args))

    def reducible_logs(self, logs):
        """The step's logs in the form Keras can reduce under the strategy (a custom train_step or
        test_step overriding this mixin's returns its logs through this)."""
        if not is_multi_worker(getattr(self, "distribute_strategy", None)):  # JAX models have none
            return logs
        return {key: keras.ops.expand_dims(value, 0) for key, value in logs.items()}


class Trainer(MultiWorkerFit, keras.Model):
    """Functional keras.Model with MultiWorkerFit. Never saved whole: checkpoints hold its weights and
    the export saves the generator, so it needs no serialization registration."""


def replicate_for_replicas(val_ds, replicas):
    """A validation dataset (batches of one full-size image) that every replica gets a share of.

    A strategy splits each batch over its replicas, and one image over two replicas leaves one empty
    (Keras then fails, or averages in an empty batch). Each image is repeated once per replica, so every
    replica validates on one copy: the means over images are unchanged. Auto-sharding is off, so every
    worker of a multi-worker run validates on all images rather than on a file or batch shard of them.
    """
    if replicas <= 1:
        return val_ds
    import tensorflow as tf

    val_ds = val_ds.map(lambda lr, hr: (tf.repeat(lr, replicas, axis=0), tf.repeat(hr, replicas, axis=0)))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return val_ds.with_options(options)
