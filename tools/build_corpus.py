#!/usr/bin/env python3
"""Rebuild the photo corpus the shipped models were trained on (offline, from installed packages):

    apt-get install lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 && pip install scikit-learn
    python tools/build_corpus.py corpus/

Writes corpus/{train,valid,test}/*.png and corpus/manifest.json (source, licence and SHA-256 of every
file; compare them with a model card's). Train with `train_srresnet.py --data corpus/ ...`.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sr_keras.cli.parsing import HelpFormatter  # noqa: E402
from sr_keras.core.errors import cli_entry  # noqa: E402
from sr_keras.data import corpus  # noqa: E402


def _scales(text):
    try:
        return corpus.check_train_scales(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated factors in (0, 1], e.g. 1,0.5. Received: {text!r}")


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("out_dir", help="folder to write train/, valid/, test/ and manifest.json into")
    parser.add_argument("--train-scales", type=_scales, default="1", metavar="F,F,...",
                        help="also write each training photograph Lanczos-reduced by these factors in (0, 1], "
                             "e.g. 1,0.75,0.5,0.33 (Real-ESRGAN's multi-scale copies); validation and test stay "
                             "full size")
    flags = parser.parse_args(argv)
    out_dir = flags.out_dir
    manifest = corpus.build(out_dir, train_scales=flags.train_scales)
    counts = manifest["counts"]
    print(f"corpus in {out_dir}: {counts['train']} train, {counts['valid']} validation, "
          f"{counts['test']} test images")


if __name__ == "__main__":
    main()
