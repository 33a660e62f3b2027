"""sr-keras: SRResNet and SRGAN super-resolution in TensorFlow/Keras."""
import os
import re
import sys
import tempfile

# TensorFlow 2.21 writes a start-up banner through absl before TF_CPP_MIN_LOG_LEVEL is read, so no
# setting hides it (nor the failed-CUDA line of GPU builds on CPU machines); it would bury the
# one-line errors of the CLIs. Import TensorFlow once with stderr captured and pass on everything
# except those lines.
_BANNER = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
                     rb"|I0000 \S+ +\d+ (port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc)"
                     rb"|E0000 \S+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit"
                     rb"|To enable the following instructions)")


def _import_tensorflow_quietly():
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (e.g. pytest capture): nothing to filter
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


_import_tensorflow_quietly()
