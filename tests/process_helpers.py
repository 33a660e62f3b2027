"""Helpers for tests that drive a training process (kill -9, resume) or a command in-process."""
import queue
import threading
import time

import pytest


def lines_until(proc, needle, timeout_s=300):
    """proc's stdout lines up to the first holding `needle`; kills proc and fails after timeout_s."""
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True).start()
    seen, deadline = [], time.monotonic() + timeout_s
    while not seen or needle not in seen[-1]:
        try:
            seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            proc.kill()
            pytest.fail(f"no {needle!r} within {timeout_s}s; last output: {''.join(seen[-20:])}")
    return seen


def run_main(main, argv, capsys):
    """(exit code, stdout, stderr) of a CLI entry point run in this process."""
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
