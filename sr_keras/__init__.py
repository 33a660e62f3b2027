"""sr-keras: SRResNet and SRGAN super-resolution in TensorFlow/Keras.

    import sr_keras
    upscaler = sr_keras.load("srresnet_x4")              # a shipped model by name, or a path
    big = sr_keras.upscale(pixels, model="srresnet_x4")  # uint8 array (or path, PIL image) -> uint8 array

Importing the package imports nothing else and leaves the host program's file descriptors alone
(`load` and `upscale` import TensorFlow on first use); the CLIs hide TensorFlow's start-up banner
themselves (sr_keras.cli.hide_tensorflow_banner).
"""
__version__ = "0.2.0"

_API = ("load", "upscale")


def __getattr__(name):
    if name in _API:
        from sr_keras import api

        return getattr(api, name)
    raise AttributeError(f"module 'sr_keras' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_API])
