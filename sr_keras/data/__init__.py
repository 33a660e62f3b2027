"""Training and validation data: DIV2K and folder sources, LR/HR pairing, the tf.data and PyDataset
pipelines, degradations, MATLAB's imresize, the open photo corpus. Imports sr_keras.core.

The public contract's data API is handed on from sr_keras.data.loaders, lazily (importing a module of
this package imports no TensorFlow):

    from sr_keras import data
    ds = data.training_dataset("tfds", "bicubic_x4", batch_size=8, hr_crop=180, seed=0)
    val = data.eval_dataset("tfds", "bicubic_x4", "validation")
"""
_LOADERS = ("training_dataset", "eval_dataset", "eval_pairs", "eval_names", "scale_of", "TRACKS", "SPLITS")


def __getattr__(name):
    if name in _LOADERS:
        from sr_keras.data import loaders

        return getattr(loaders, name)
    raise AttributeError(f"module 'sr_keras.data' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LOADERS])
