"""One-line errors for users: CLIs catch UserError and print it instead of a traceback.

A message stays one line whatever it quotes: `cli_entry` prints control characters (a newline in a
file name, a tab, a line separator) as escapes, and `first_line` keeps a path's own newline.
SIGTERM is handled as SIGINT, so the cleanup of atomic writes (sr_keras.core.imageio.atomic_file) runs
when a batch is stopped by `kill` or a job scheduler.
"""
import contextlib
import functools
import os
import signal
import sys
import threading
import unicodedata

# Categories whose characters break a line or are invisible: control, format, line/paragraph separators.
_CONTROL = ("Cc", "Cf", "Zl", "Zp")


def one_line(text):
    """`text` with every control character written as its escape ("a\\nb.png"), so it prints as one line."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _CONTROL else c
                   for c in str(text))


def first_line(e, *keep):
    """The first line of an exception's message (its type name if it has none), for one-line errors.

    Args:
        e: an exception (or a message).
        *keep: paths (or other names) the message may quote; their control characters are escaped
            first, so a newline inside a file name does not cut the line there.
    """
    text = str(e).strip()
    for name in keep:
        name = os.fsdecode(name)
        if name and name != one_line(name):
            text = text.replace(name, one_line(name))
    lines = text.splitlines()
    return lines[0] if lines else type(e).__name__


class UserError(Exception):
    """Bad input from the user (a path, a value, a file). The message names it exactly as given.

    Args:
        message: what is wrong; with `argument`, the words that follow the argument's name.
        argument: the name of the library argument the error is about ("model", "export"), which the
            message starts with: "model 'x.keras': cannot read it". A command line names its flag there
            instead (sr_keras.cli.parsing.naming_flags: "--model 'x.keras': cannot read it").
    """

    def __init__(self, message, argument=None):
        self.detail, self.argument = message, argument
        super().__init__(f"{argument} {message}" if argument else message)

    def rename(self, argument):
        """Say `argument` where the message named the library's argument (in place: subclasses stay)."""
        self.argument = argument
        self.args = (f"{argument} {self.detail}",)

    def rename_arguments(self, names):
        """Say names[a] for each library argument `a` the message names, in place: its `argument`, and in
        a subclass whose advice names another argument (pass trust_model=True), that one too.

        Args:
            names: {library argument: the name to say instead}.
        """
        if self.argument in names:
            self.rename(names[self.argument])


@contextlib.contextmanager
def naming(**names):
    """Within the block, a UserError about library argument `a` is about names[a] instead.

    A function that hands its argument to another under that one's name says so: a training run's
    export checked as an output path, `with naming(out="export"):`. A script names its flags the same
    way (sr_keras.cli.parsing.naming_flags). Errors about other arguments, or about none, pass unchanged.
    """
    try:
        yield
    except UserError as e:
        e.rename_arguments(names)
        raise


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program runs, as SIGINT raises KeyboardInterrupt: every cleanup that
    runs on Ctrl-C (temporary files of atomic writes, locks) runs on `kill` too."""


def _raise_terminated(signum, frame):
    raise Terminated()


def cli_entry(main):
    """Wrap a CLI main(): a UserError becomes `error: <message>` (one line) on stderr and exit status 2;
    Ctrl-C exits 130 and SIGTERM 143, after the same cleanup."""

    @functools.wraps(main)
    def run(*positional, **keywords):
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
        try:
            return main(*positional, **keywords)
        except UserError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(2)
        except Terminated:
            print("terminated", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        finally:
            if in_main_thread:  # None: a handler not set from Python; the default is the closest
                signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    return run
