"""What an install holds: the configs inside the package, and a suite that collects without the optional extras.

The wheel itself is built, installed into a fresh venv and run from another
directory by ``.ci/run``; these tests guard what that relies on.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.extras import installed

ROOT = Path(__file__).resolve().parent.parent


def test_package_list_names_every_package_and_config_group() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    groups = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir())
    code = [".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lottery_style").rglob("__init__.py")]
    expected = code + ["lottery_style.conf"] + [f"lottery_style.conf.{group}" for group in groups]
    assert sorted(setuptools["packages"]) == sorted(expected)
    assert setuptools["package-dir"] == {"lottery_style.conf": "conf"}


def test_a_checkout_reads_its_own_conf() -> None:
    assert CONF_DIR == ROOT / "conf"


def load_test_module(name: str) -> ModuleType:
    """Execute a test file as pytest's collection does (a fresh module, so module-level skip conditions run)."""
    spec = importlib.util.spec_from_file_location(f"_collected_{name}", ROOT / "tests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_suite_collects_without_optional_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no Hydra plugin (the slurm extra) and no jupytext (dev), the tests that need them skip, nothing fails."""
    for name in [m for m in sys.modules if m.startswith(("hydra_plugins.", "jupytext."))]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("hydra_plugins", "jupytext"):  # a None entry makes every import of it fail, as if absent
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ModuleNotFoundError):
        importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher")  # the trap `installed` avoids
    assert not installed("hydra_plugins.hydra_submitit_launcher")

    ddp = load_test_module("test_ddp")
    (skip,) = [m for m in ddp.test_slurm_launcher_runs_one_task_per_device.pytestmark if m.name == "skipif"]
    assert skip.args == (True,)
    notebook = load_test_module("test_notebook")
    with pytest.raises(pytest.skip.Exception):
        notebook.test_notebook_is_a_jupytext_percent_notebook_with_parameters()


@pytest.mark.parametrize(("launch", "workers"), [([], "created: 2/2 workers"), (["-p", "no:xdist"], None), (["-n", "0"], None)])
def test_the_suite_runs_with_and_without_xdist(launch: list[str], workers: str | None) -> None:
    """Parallelism is chosen where the tests are launched: two workers by default (tests/conftest.py), one
    process with ``-n 0``, and ``-p no:xdist`` works (a ``-n`` in pytest's addopts made it an unknown option)."""
    one_test = "tests/test_packaging.py::test_a_checkout_reads_its_own_conf"
    command = [sys.executable, "-m", "pytest", *launch, "-p", "no:cacheprovider", one_test]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
    assert ("workers" in result.stdout) == (workers is not None)
    assert workers is None or workers in result.stdout
