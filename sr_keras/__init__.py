"""sr-keras: SRResNet and SRGAN super-resolution in TensorFlow/Keras.

    import sr_keras
    upscaler = sr_keras.load("srresnet_x4")              # a shipped model by name, or a path
    big = sr_keras.upscale(pixels, model="srresnet_x4")  # uint8 array (or path, PIL image) -> uint8 array
    score = sr_keras.niqe(big)                           # NIQE, lower = more natural (numpy/scipy only)
    sr_keras.list_models()  # [{name, scale, purpose, score, path}]: which model for which picture

Importing the package imports nothing else and leaves the host program's file descriptors alone
(`load` and `upscale` import TensorFlow on first use; `niqe` never does). Like the CLIs, that first use
hides TensorFlow's start-up banner (sr_keras.core.tfbanner: stderr is captured only while TensorFlow
imports, and everything else written meanwhile is passed on).
"""
__version__ = "0.2.0"

_API = ("load", "upscale")
_NUMPY_API = ("niqe",)  # sr_keras.evaluation.perception: numpy/scipy only, no TensorFlow
_CATALOG_API = ("list_models",)  # sr_keras.catalog: model cards read as JSON, no TensorFlow


def __getattr__(name):
    if name in _API:
        from sr_keras import api

        return getattr(api, name)
    if name in _NUMPY_API:
        from sr_keras.evaluation import perception

        return getattr(perception, name)
    if name in _CATALOG_API:
        from sr_keras import catalog

        return getattr(catalog, name)
    raise AttributeError(f"module 'sr_keras' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API, *_NUMPY_API, *_CATALOG_API])
