"""The package ships its configs: pyproject's explicit package list covers every code package and config group."""

from __future__ import annotations

from pathlib import Path

import pytest
from lottery_style.conf_dir import CONF_DIR

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
