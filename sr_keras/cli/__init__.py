"""The command-line layer, the one part of sr_keras that imports argparse: sr_keras.cli.parsing holds
what every script shares (the parser, its help formatter, checked argument types), training_flags
the training scripts' flags, and each script's main() lives in sr_keras.cli.<script> (train_srresnet,
train_srgan, evaluate, upscale, export, interpolate, web), which the top-level scripts and the console
scripts call."""
