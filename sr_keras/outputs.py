"""Output locations, checked before slow work: a folder that cannot be made or written fails in one
line naming the flag and the path as given, before the first epoch or the first image is spent.

Writability is proven by creating (and removing) a file there: `os.access` says yes to root on a
read-only filesystem.
"""
import os
import tempfile

from sr_keras.errors import UserError


def _probe(folder, flag, shown, keep_folders=True):
    existing = folder
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {shown}: cannot write there ({existing} is a file, not a folder)")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(f"{flag} {shown}: cannot write there ({reason})") from None
    finally:
        if not keep_folders:  # the folders made for the probe, deepest first, while empty
            made = folder
            while made != existing and os.path.isdir(made) and not os.listdir(made):
                os.rmdir(made)
                made = os.path.dirname(made)


def check_writable_folder(path, flag):
    """Make the folder `path` (with its parents) if it does not exist and prove it writable.

    Args:
        path: the output folder (e.g. --out).
        flag: the flag that named it, for the error.

    Raises:
        UserError: one line naming the flag and the path, e.g. under a regular file or read-only.
    """
    _probe(os.path.abspath(os.fspath(path)), flag, path)


def check_writable_parent(path, flag, keep_folders=True):
    """Prove that `path` can be created: its parent folder is made if needed and written to; `path`
    itself is not created (an export folder or a file written atomically at the end).

    Args:
        path: the output file or folder (e.g. --export, evaluate.py --out FILE).
        flag: the flag that named it, for the error.
        keep_folders: False removes the parent folders the check made (for writers that make them
            themselves, so that a command refused later leaves nothing behind).

    Raises:
        UserError: one line naming the flag and the path.
    """
    _probe(os.path.dirname(os.path.abspath(os.fspath(path))), flag, path, keep_folders)
