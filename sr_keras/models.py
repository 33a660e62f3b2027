"""The public contract's model builders, at the path users and saved model files know
(`sr_keras.models.srresnet`, `.discriminator`, `.rrdbnet`): they live in sr_keras.archs, and this module
only hands them on. Importing it registers the project's Keras layers, as `keras.models.load_model` of an
export needs."""
from sr_keras.archs.models import count_trainable, discriminator, srresnet
from sr_keras.archs.rrdb import rrdbnet

__all__ = ["srresnet", "discriminator", "rrdbnet", "count_trainable"]
