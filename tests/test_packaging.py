"""pyproject.toml: compatible ranges (no pins), the console scripts, the shipped models as package data."""
import ast
import os
import re
import tomllib

import sr_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"sr-train-srresnet": "train_srresnet", "sr-train-srgan": "train_srgan", "sr-evaluate": "evaluate",
           "sr-upscale": "upscale", "sr-export": "export", "sr-interpolate": "interpolate", "sr-web": "web"}


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_dependencies_are_ranges_not_pins():
    deps = _project()["project"]["dependencies"]
    assert deps and not [d for d in deps if "==" in d or "===" in d]
    # every requirements.txt lock line names a package the ranges cover (or a test/tool-only extra)
    names = {re.split(r"[<>=!~ ]", d)[0].lower() for d in deps}
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        locked = {line.split("==")[0].strip().lower() for line in f if "==" in line}
    assert locked - names == {"pytest", "pytest-xdist", "execnet", "hypothesis", "importlib_resources", "selenium"}
    test_extra = {re.split(r"[<>=!~ ]", d)[0].lower() for d in _project()["project"]["optional-dependencies"]["test"]}
    assert {"pytest", "pytest-xdist", "hypothesis", "selenium"} <= test_extra


def test_the_seven_console_scripts_point_at_the_entry_points_the_top_level_scripts_call():
    scripts = _project()["project"]["scripts"]
    assert scripts == {name: f"sr_keras.cli.{module}:main" for name, module in SCRIPTS.items()}
    for module in SCRIPTS.values():
        with open(os.path.join(ROOT, f"{module}.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        imports = [(n.module, [a.name for a in n.names]) for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert imports == [(f"sr_keras.cli.{module}", ["main"])]


def test_version_is_read_from_the_package():
    project = _project()
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sr_keras.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", sr_keras.__version__)


def test_every_subpackage_and_the_shipped_models_are_installed():
    setuptools = _project()["tool"]["setuptools"]
    subpackages = sorted("sr_keras" + root[len(os.path.join(ROOT, "sr_keras")):].replace(os.sep, ".")
                         for root, _, files in os.walk(os.path.join(ROOT, "sr_keras")) if "__init__.py" in files)
    assert sorted(setuptools["packages"]) == sorted(subpackages + ["sr_keras.saved_models"])
    assert setuptools["package-dir"] == {"sr_keras.saved_models": "saved_models"}
