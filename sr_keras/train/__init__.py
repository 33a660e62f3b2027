"""Training: the run loop, the SRResNet and GAN trainers, losses, callbacks, run folders and resume,
EMA, distribution. Imports every wing above it, none imports it."""
