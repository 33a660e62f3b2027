"""The command-line layer (sr_keras.cli) and the layering rules it keeps: argparse in one subpackage, no
`args` deep in the library, library errors about arguments that the scripts turn into their flags
(naming_flags), module sizes, and a package import that leaves file descriptors alone."""
import argparse
import ast
import glob
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys

import pytest

import sr_keras
from sr_keras.cli import parsing, training_flags
from sr_keras.core.errors import UserError, naming

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = sorted(glob.glob(os.path.join(ROOT, "sr_keras", "**", "*.py"), recursive=True))


@pytest.mark.parametrize("kind, text, value", [
    (parsing.positive_int, "3", 3), (parsing.non_negative_int, "0", 0), (parsing.positive_float, "1e-4", 1e-4),
    (parsing.probability, "1", 1.0), (parsing.probability, "0", 0.0),
])
def test_checked_types_accept_valid_values(kind, text, value):
    assert kind(text) == value


@pytest.mark.parametrize("kind, text, message", [
    (parsing.positive_int, "0", "expected a positive integer, got '0'"),
    (parsing.positive_int, "2.5", "expected a positive integer, got '2.5'"),
    (parsing.non_negative_int, "-1", "expected an integer >= 0, got '-1'"),
    (parsing.positive_float, "nan", "expected a positive number, got 'nan'"),
    (parsing.positive_float, "-0.1", "expected a positive number, got '-0.1'"),
    (parsing.probability, "1.5", "expected a probability in [0, 1], got '1.5'"),
])
def test_checked_types_name_what_was_expected_and_the_text_given(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        kind(text)
    assert str(err.value) == message


def test_checked_builds_a_type_from_a_conversion_and_a_predicate():
    even = parsing.checked(int, lambda v: v % 2 == 0, "an even number")
    assert even("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="^expected an even number, got 'x'$"):
        even("x")


def test_train_config_takes_the_run_settings_from_parsed_flags():
    parser = training_flags.add_select_arg(training_flags.add_common_args(argparse.ArgumentParser()))
    namespace = training_flags.resolve_paths(parser.parse_args(["--epochs", "7", "--seed", "5", "--select", "last"]), "srgan")
    train = training_flags.train_config(namespace)
    assert (train.epochs, train.seed, train.select, train.monitor) == (7, 5, "last", None)
    assert train.out == os.path.join("runs", "srgan_bicubic_x4")
    generator = training_flags.generator_config(namespace, 4)
    assert (generator.scale, generator.num_blocks, generator.filters, generator.batch_norm) == (4, 16, 64, True)


def test_importing_the_package_leaves_file_descriptor_2_alone():
    # The child replaces fd 2 by a pipe it watches; importing sr_keras (and its light modules) must write
    # nothing there and must not import TensorFlow, whose import writes a banner to fd 2.
    code = ("import os, sys\n"
            "import sr_keras, sr_keras.cli, sr_keras.archs.config, sr_keras.core.errors\n"
            "print('tensorflow' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "False\n" and proc.stderr == "", proc.stderr


def test_hide_tensorflow_banner_keeps_everything_else_on_stderr():
    code = ("import os, sys\n"
            "from sr_keras.core import tfbanner\n"
            "os.write(2, b'before\\n')\n"
            "tfbanner.hide_tensorflow_banner()\n"
            "assert 'tensorflow' in sys.modules\n"
            "os.write(2, b'after\\n')\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["before", "after"], proc.stderr


def _tree(path):
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), path)


def test_only_the_cli_subpackage_imports_argparse():
    importers = []
    for path in PACKAGE:
        for node in ast.walk(_tree(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            if "argparse" in names:
                importers.append(os.path.relpath(path, ROOT))
    # the CLI subpackage: its shared module, the training flags and one module per script
    assert importers and all(os.path.dirname(path) == os.path.join("sr_keras", "cli") for path in importers)


def test_no_library_function_takes_a_parameter_named_args():
    offenders = []
    for path in PACKAGE:
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                params = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(p.arg == "args" for p in params):
                    offenders.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert offenders == []


def _library_modules():
    """Every module of sr_keras but the command-line layer, imported (TensorFlow too); one that needs an
    optional backend that is not installed (JAX) is left out."""
    modules = []
    for info in pkgutil.walk_packages(sr_keras.__path__, "sr_keras."):
        if info.name == "sr_keras.cli" or info.name.startswith("sr_keras.cli."):
            continue
        try:
            modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as e:
            if e.name != "jax":
                raise
    return modules


def _callables(module):
    """The functions and classes a module defines, and the methods of those classes."""
    found = []
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            found.append(obj)
            for member in vars(obj).values():
                member = getattr(member, "__func__", getattr(member, "fget", member))
                if inspect.isfunction(member):
                    found.append(member)
        elif inspect.isfunction(obj):
            found.append(obj)
    return found


def test_no_library_function_takes_a_flag_to_word_its_errors():
    # the library names its own arguments ("model 'x' ..."); only sr_keras.cli knows the flags (naming_flags)
    offenders = []
    for module in _library_modules():
        for fn in _callables(module):
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):  # a class without a Python signature
                continue
            if {"flag", "flags"} & set(params):
                offenders.append(f"{module.__name__}.{fn.__qualname__}")
    for path in PACKAGE:  # functions inspect does not reach: nested ones, and the modules left out above
        if os.path.join("sr_keras", "cli") not in path:
            for node in ast.walk(_tree(path)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                    offenders += [f"{os.path.relpath(path, ROOT)}:{node.lineno}" for a in args
                                  if a.arg in ("flag", "flags")]
    assert offenders == []


class _Full(UserError):
    """A subclass, as DiskFull: renaming keeps it."""


def test_naming_flags_names_the_flag_of_each_library_argument_it_is_given_and_leaves_the_rest():
    for error, shown in [(UserError("'x.keras': unreadable", argument="model"), "--model 'x.keras': unreadable"),
                         (_Full("runs/x: cannot write", argument="out"), "-o runs/x: cannot write"),
                         (UserError("'blur': unknown", argument="degrade"), "degrade 'blur': unknown"),
                         (UserError("nothing to upscale"), "nothing to upscale")]:
        with pytest.raises(UserError) as e, parsing.naming_flags(model="--model", out="-o"):
            raise error
        assert e.value is error and str(e.value) == shown  # renamed in place: a subclass stays itself


def test_a_library_function_names_an_argument_it_hands_on_as_its_own():
    # errors.naming: what naming_flags does for a script, in the library (a run's export checked as an `out`)
    with pytest.raises(UserError) as e, parsing.naming_flags(export="--export"):
        with naming(out="export"):
            raise UserError("runs/x: cannot write there", argument="out")
    assert str(e.value) == "--export runs/x: cannot write there"


def test_the_trust_advice_names_the_flag_only_where_a_script_gives_one():
    from sr_keras.infer.model_safety import check_savedmodel

    with pytest.raises(UserError) as e:
        check_savedmodel("served")
    library = str(e.value)
    assert library.startswith("model 'served': refused: a SavedModel without model.keras is a program")
    assert library.endswith("or pass trust_model=True if you wrote this model yourself")
    with pytest.raises(UserError) as e, parsing.naming_flags(model="--init-generator", trust_model="--trust-model"):
        check_savedmodel("served")
    assert str(e.value) == "--init-generator " + library[len("model "):].replace("trust_model=True", "--trust-model")
    with pytest.raises(UserError) as e, parsing.naming_flags(model="--model"):  # no flag vouches: the library's words
        check_savedmodel("served")
    assert str(e.value) == "--model " + library[len("model "):]


def test_modules_and_scripts_stay_within_their_size_limits():
    limits = {path: 450 for path in PACKAGE}
    limits.update({os.path.join(ROOT, name): 160 for name in ("train_srresnet.py", "train_srgan.py")})
    limits.update({os.path.join(ROOT, name): 200 for name in ("evaluate.py", "upscale.py")})
    over = {}
    for path, limit in limits.items():
        with open(path, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines > limit:
            over[os.path.relpath(path, ROOT)] = lines
    assert over == {}


def _parser():
    p = parsing.ArgumentParser(prog="tool")
    p.add_argument("--model", required=True)
    p.add_argument("--out", help="output folder")
    p.add_argument("--outscale", type=float, default=None, help="final scale (default: the model's scale)")
    p.add_argument("--tile", type=int, default=256, help="tile side")
    p.add_argument("--tile-memory", type=int, default=768, help="MB")
    p.add_argument("--seed", type=int, default=None, help="a seed")
    return p


def _error(parser, argv, capsys):
    with pytest.raises(SystemExit) as e:
        parser.parse_args(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_help_shows_one_default_and_none_that_says_nothing():
    text = " ".join(_parser().format_help().split())
    assert "final scale (default: the model's scale) " in text and "tile side (default: 256)" in text
    assert "(default: None)" not in text and text.count("(default:") == 3  # --outscale, --tile, --tile-memory


def test_a_mistyped_flag_gets_the_closest_one(capsys):
    p = _parser()
    assert _error(p, ["--model", "m", "--ouput", "x"], capsys) == \
        "tool: error: unrecognized arguments: --ouput x; --ouput: did you mean --out?"
    # also where argparse stops first at a missing required flag, and in --flag=value form
    assert _error(p, ["--mdoel=m"], capsys) == \
        "tool: error: the following arguments are required: --model; --mdoel: did you mean --model?"
    assert _error(p, ["--model", "m", "--tiel", "3", "--zzzzzz"], capsys) == \
        "tool: error: unrecognized arguments: --tiel 3 --zzzzzz; --tiel: did you mean --tile?"


def test_abbreviations_argparse_allows_are_no_typos(capsys):
    p = _parser()
    assert p.parse_args(["--model", "m", "--tile-mem", "512", "--outs", "2"]).tile_memory == 512
    assert _error(p, ["--model", "m", "--ti", "3"], capsys) == \
        "tool: error: ambiguous option: --ti could match --tile, --tile-memory"  # argparse's words, no guess
    assert p.typo_hint(["--tile-m", "-1", "-2.5", "x", "--", "--ouput"]) == ""


def test_every_script_parses_with_the_projects_parser():
    """The one-default help and the typo hint hold for every script only while each builds its parser
    with parsing.ArgumentParser."""
    offenders = [os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "sr_keras", "cli", "*.py"))
                 if "argparse.ArgumentParser(" in open(path, encoding="utf-8").read()
                 and not path.endswith("__init__.py")]
    assert offenders == []


@pytest.mark.parametrize("script", ["train_srresnet", "train_srgan", "evaluate", "upscale", "export", "interpolate",
                                    "web"])
def test_no_script_help_shows_two_defaults_for_one_flag(script, capsys):
    module = __import__(f"sr_keras.cli.{script}", fromlist=["main"])
    with pytest.raises(SystemExit):
        module.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--help" in text and not re.search(r"\(default: [^)]*\)\s*\(default:", text)
    assert "(default: None)" not in text
