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

from sr_keras import corpus  # noqa: E402
from sr_keras.cli import HelpFormatter  # noqa: E402
from sr_keras.errors import cli_entry  # noqa: E402


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("out_dir", help="folder to write train/, valid/, test/ and manifest.json into")
    out_dir = parser.parse_args(argv).out_dir
    manifest = corpus.build(out_dir)
    counts = manifest["counts"]
    print(f"corpus in {out_dir}: {counts['train']} train, {counts['valid']} validation, "
          f"{counts['test']} test photographs")


if __name__ == "__main__":
    main()
