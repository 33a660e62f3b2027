"""One-line errors for users: CLIs catch UserError and print it instead of a traceback."""
import functools
import sys


def first_line(e):
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class UserError(Exception):
    """Bad input from the user (a path, a value, a file). The message names it exactly as given."""


def cli_entry(main):
    """Wrap a CLI main(): a UserError becomes `error: <message>` on stderr and exit status 2."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return run
