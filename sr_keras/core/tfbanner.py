"""Importing TensorFlow without its start-up noise, for the CLIs and the Python API (sr_keras.api).

TensorFlow 2.21 writes a banner through absl before TF_CPP_MIN_LOG_LEVEL is read (oneDNN's "custom
operations are on", CPU features, missing CUDA drivers, a failed cuInit), so no setting hides it; it
would bury the CLIs' one-line errors and a program's own output. Imports the standard library only.
"""
import os
import re
import sys
import tempfile

# The banner's lines (also the failed-CUDA lines of GPU builds on CPU machines); anything else is passed on.
_BANNER = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                     rb"|I0000 \S+ +\d+ (port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc)"
                     rb"|E0000 \S+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit"
                     rb"|[EIW]0000 \S+ +\d+ cuda_diagnostics\.cc"
                     rb"|To enable the following instructions)")


def hide_tensorflow_banner():
    """Import TensorFlow with stderr (fd 2) captured and pass on everything except its start-up banner.

    Called before anything imports TensorFlow: by each CLI, and by sr_keras.api on first use (fd 2 is
    redirected only while TensorFlow imports, and all else written meanwhile is passed on). Sets
    TF_CPP_MIN_LOG_LEVEL=2 unless the user has set it. Does nothing more when TensorFlow is already
    imported or stderr has no file descriptor (e.g. under pytest's capture).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return  # already imported, or another Keras backend (KERAS_BACKEND=jax) that never imports it
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), fd)
        try:
            import tensorflow

            # list devices now, inside the capture: on a machine without a GPU this is where
            # TensorFlow logs its failed CUDA initialisation
            tensorflow.config.list_physical_devices()
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            buf.seek(0)
            kept = [line for line in buf.read().splitlines(keepends=True) if not _BANNER.match(line)]
            if kept:
                os.write(fd, b"".join(kept))
