#!/usr/bin/env python3
"""Score SR models against bicubic on DIV2K or a folder of photographs (PSNR/SSIM on Y, as Table 2).

The command lives in sr_keras.cli.evaluate (console script: sr-evaluate).
"""
from sr_keras.cli.evaluate import main

if __name__ == "__main__":
    main()
