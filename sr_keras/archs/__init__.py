"""The networks: SRResNet and its layers, RRDBNet (ESRGAN), the discriminators, the one registry of
generator architectures (registry) and GeneratorConfig. Free of training code; imports only sr_keras.core."""
