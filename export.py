#!/usr/bin/env python3
"""Export a trained generator for deployment: a SavedModel export folder, or a TFLite model.

The command lives in sr_keras.cli.export (console script: sr-export).
"""
from sr_keras.cli.export import main

if __name__ == "__main__":
    main()
