#!/usr/bin/env python3
"""Network interpolation (ESRGAN section 3.4): blend two trainings of one generator, weight by weight.

The command lives in sr_keras.cli.interpolate (console script: sr-interpolate).
"""
from sr_keras.cli.interpolate import main

if __name__ == "__main__":
    main()
