"""The networks: SRResNet and its layers, RRDBNet (ESRGAN), the discriminators, and GeneratorConfig,
the one registry of architectures. Free of training code; imports only sr_keras.core."""
