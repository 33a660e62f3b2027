"""Output locations, checked before slow work: a folder that cannot be made or written fails in one
line about `out` naming the path as given ("out runs/x: cannot write there (...)"; a script names its
flag there), before the first epoch or the first image is spent.

Writability is proven by creating (and removing) a file there: `os.access` says yes to root on a
read-only filesystem.
"""
import contextlib
import os
import tempfile

from sr_keras.core.errors import UserError


def _existing(folder):
    """`folder` or its nearest ancestor that exists."""
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


def _remove_made(folder, existing):
    """Remove `folder` and its parents up to `existing` (which all did not exist before) while empty."""
    while folder != existing and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        folder = os.path.dirname(folder)


def _probe(folder, shown, keep_folders=True):
    existing = _existing(folder)
    if not os.path.isdir(existing):
        raise UserError(f"{shown}: cannot write there ({existing} is a file, not a folder)", argument="out")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except FileNotFoundError:
        # the folder `existing` is there, yet it takes no new entry: a virtual filesystem such as /proc
        # answers "No such file or directory", which would send the user looking for a typo
        raise UserError(f"{shown}: cannot write there ({existing} takes no new files or folders)",
                        argument="out") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(f"{shown}: cannot write there ({reason})", argument="out") from None
    finally:
        if not keep_folders:  # the folders made for the probe, deepest first, while empty
            _remove_made(folder, existing)


def check_writable_folder(path):
    """Make the folder `path` (with its parents) if it does not exist and prove it writable.

    Args:
        path: the output folder.

    Raises:
        UserError: one line about `out` naming the path, e.g. under a regular file or read-only.
    """
    _probe(os.path.abspath(os.fspath(path)), path)


def check_writable_parent(path, keep_folders=True):
    """Prove that `path` can be created: its parent folder is made if needed and written to; `path`
    itself is not created (an export folder or a file written atomically at the end).

    Args:
        path: the output file or folder (an export folder, a file written atomically).
        keep_folders: False removes the parent folders the check made (for writers that make them
            themselves, so that a command refused later leaves nothing behind).

    Raises:
        UserError: one line about `out` naming the path.
    """
    _probe(os.path.dirname(os.path.abspath(os.fspath(path))), path, keep_folders)


@contextlib.contextmanager
def removed_if_left_empty(path):
    """The block may make the folder `path` (check_writable_folder, a writer): if it did not exist
    before and the block leaves nothing in it (a refused model, no image written), it is removed
    again on the way out, with any empty folders inside it and the parents made for it.

    Args:
        path: an output folder (e.g. --out).
    """
    folder = os.path.abspath(os.fspath(path))
    existing = _existing(folder)
    try:
        yield
    finally:
        if folder != existing and os.path.isdir(folder) and not os.path.islink(folder):
            tree = list(os.walk(folder, topdown=False))  # deepest first, `folder` last
            if not any(files or any(os.path.islink(os.path.join(root, d)) for d in dirs)
                       for root, dirs, files in tree):  # only empty folders (figures/): nothing was written
                for root, _, _ in tree:
                    os.rmdir(root)
                _remove_made(os.path.dirname(folder), existing)
