#!/usr/bin/env python3
"""Serve a local web page to upscale pictures (127.0.0.1 by default).

The command lives in sr_keras.cli.web (console script: sr-web).
"""
from sr_keras.cli.web import main

if __name__ == "__main__":
    main()
