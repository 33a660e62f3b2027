"""`python -m benchmarks KIND [flags]`: runs benchmarks/<KIND>.py; JSON lines on stdout, logs on stderr."""
import importlib
import os
import sys

KINDS = ("train", "infer", "data")


def main(argv):
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in KINDS:
        print(f"usage: python -m benchmarks {{{','.join(KINDS)}}} [flags]  (KIND --help for its flags)",
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
