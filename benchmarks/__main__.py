"""`python -m benchmarks KIND [flags]`: runs benchmarks/<KIND>.py; JSON lines on stdout, logs on stderr.

    python -m benchmarks train --model srresnet --batch 8     # train-step speed (benchmarks/train.py)
    python -m benchmarks infer --lr-size 480x270              # inference speed (benchmarks/infer.py)
    python -m benchmarks data --data samples                  # input-pipeline speed (benchmarks/data.py)
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sr_keras.cli.parsing import HelpFormatter  # noqa: E402

KINDS = ("train", "infer", "data")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("kind", choices=KINDS, help="the benchmark: benchmarks/<KIND>.py")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="its flags (python -m benchmarks KIND --help)")
    return parser


def main(argv):
    namespace = build_parser().parse_args(argv)
    return importlib.import_module(f"benchmarks.{namespace.kind}").main(namespace.flags) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
