"""sr-keras: SRResNet and SRGAN super-resolution in TensorFlow/Keras."""
