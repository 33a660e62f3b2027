#!/usr/bin/env python3
"""Train SRGAN (report sections 3.2 and 4.6): G = SRResNet, D = the report's discriminator, G's loss

The command lives in sr_keras.cli.train_srgan (console script: sr-train-srgan).
"""
from sr_keras.cli.train_srgan import main

if __name__ == "__main__":
    main()
