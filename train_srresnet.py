#!/usr/bin/env python3
"""Train SRResNet (report section 4.5) with Keras model.fit, then export the best model.

The command lives in sr_keras.cli.train_srresnet (console script: sr-train-srresnet).
"""
from sr_keras.cli.train_srresnet import main

if __name__ == "__main__":
    main()
