"""What every script's command line shares: the parser (a mistyped flag gets the closest one), its help
formatter (every default shown, the examples kept as written) and checked argument types."""
import argparse
import difflib
import math
import re
import sys

from sr_keras.core.errors import naming


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default and keeps the description's line breaks (its example commands).

    A help text that states its default itself ("(default: the model's scale)") gets no second one, and
    a default of None (the flag is simply not set) is not shown: "(default: None)" tells a user nothing.
    """

    def _get_help_string(self, action):
        if action.default is None or re.search(r"\bdefault:", action.help or ""):
            return action.help
        return super()._get_help_string(action)


_NEGATIVE_NUMBER = re.compile(r"-\d+$|-\d*\.\d+$")


class ArgumentParser(argparse.ArgumentParser):
    """The parser of every script: the project's HelpFormatter, and a mistyped flag gets the closest one
    ("unrecognized arguments: --ouput; --ouput: did you mean --out?"), which Python 3.11's argparse
    does not do.

    The hint is added to whatever error argparse reports (also "the following arguments are required:
    --model" after a mistyped --mdoel). A unique prefix of a flag is no typo: argparse takes it as that
    flag (allow_abbrev), and reports an ambiguous one itself.
    """

    def __init__(self, *positional, formatter_class=HelpFormatter, **keywords):
        super().__init__(*positional, formatter_class=formatter_class, **keywords)
        self._given = []

    @classmethod
    def from_doc(cls, doc):
        """A parser whose description is `doc`'s first paragraph and whose epilog (the examples) its last."""
        paragraphs = doc.split("\n\n")
        return cls(description=paragraphs[0], epilog=paragraphs[-1])

    def parse_known_args(self, argv=None, namespace=None):
        self._given = list(sys.argv[1:] if argv is None else argv)
        return super().parse_known_args(argv, namespace)

    def error(self, message):
        super().error(message + self.typo_hint(self._given))

    def _is_flag(self, name):
        flags = self._option_string_actions
        if name in flags:
            return True
        if name.startswith("--"):
            return self.allow_abbrev and any(f.startswith(name) for f in flags if f.startswith("--"))
        return name[:2] in flags  # a short flag with its value attached: -ofile.png

    def typo_hint(self, tokens):
        """"; --ouput: did you mean --out?" for each token that looks like a flag but is none of this
        parser's and has a close one; "" when there is none."""
        shown = [s for action in self._actions if action.help != argparse.SUPPRESS for s in action.option_strings]
        pairs = []
        for token in tokens:
            if token == "--":
                break
            name = token.split("=", 1)[0]
            if (len(name) < 2 or name[0] not in self.prefix_chars or _NEGATIVE_NUMBER.match(name)
                    or self._is_flag(name)):
                continue
            close = difflib.get_close_matches(name, shown, n=1, cutoff=0.7)
            if close and (name, close[0]) not in pairs:
                pairs.append((name, close[0]))
        return "".join(f"; {name}: did you mean {flag}?" for name, flag in pairs)


def checked(convert, ok, expected):
    """argparse type: convert(text), accepted when ok(value); otherwise the error names what was expected
    and the text as given ("expected a positive integer, got 'two'").

    Args:
        convert: callable text -> value; a ValueError means the text is refused.
        ok: predicate on the converted value.
        expected: what a valid value is, for the error message.
    """
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


# Counts stop at 2**31 - 1: TensorFlow's int32 shapes and step counters (and no run needs more).
INT_MAX = 2 ** 31 - 1
SEED_MAX = 2 ** 32 - 1  # NumPy's seeds are 32-bit
positive_int = checked(int, lambda v: 0 < v <= INT_MAX, "a positive integer")
non_negative_int = checked(int, lambda v: 0 <= v <= INT_MAX, "an integer >= 0")
seed_int = checked(int, lambda v: 0 <= v <= SEED_MAX, f"an integer in [0, {SEED_MAX}] (2**32 - 1)")
positive_float = checked(float, lambda v: 0 < v < math.inf, "a positive number")  # also refuses nan and inf
non_negative_float = checked(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")
probability = checked(float, lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]")


def naming_flags(**flags):
    """Within the block, a UserError about a library argument names the flag that gave it.

    The library words its errors after its own arguments ("model 'x' not found"); the script knows
    which flag gave each: `with naming_flags(model="--model"):` makes that "--model 'x' not found".
    Advice naming another argument takes its flag too where one is given (`trust_model="--trust-model"`:
    "pass --trust-model", not "pass trust_model=True"). Errors about other arguments, or about none,
    pass unchanged.

    Args:
        **flags: {library argument: the flag that gives it}, e.g. model="--model", out="-o".
    """
    return naming(**flags)
