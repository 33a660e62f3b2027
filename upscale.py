#!/usr/bin/env python3
"""Upscale pictures with a trained model: files or folders in, <stem>_x<s>.png out.

The command lives in sr_keras.cli.upscale (console script: sr-upscale).
"""
from sr_keras.cli.upscale import main

if __name__ == "__main__":
    main()
