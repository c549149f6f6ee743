"""Where the Hydra configs are: the one definition every entry point, test, bench and notebook uses.

The repository's top-level ``conf/`` is the source. ``pyproject.toml`` maps it
onto the package ``lottery_style.conf`` (setuptools ``package-dir``), so a wheel
or ``pip install .`` holds it as ``lottery_style/conf/`` inside the installed
package, while a checkout (editable install or ``PYTHONPATH``) keeps reading
``conf/`` itself. Both are found from this file, never from the working
directory or another installation, so the command runs from any directory and a
checkout always uses its own configs. (Hydra's ``pkg://lottery_style.conf``
would need that package importable, which an editable install's import finder
does not make of a directory without ``__init__.py``.)
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # lottery_style/, this file being lottery_style/core/conf_dir.py


def _locate() -> Path:
    for candidate in (_PACKAGE / "conf", _PACKAGE.parent / "conf"):  # installed package, then checkout
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no Hydra configs (train.yaml) in {_PACKAGE / 'conf'} or {_PACKAGE.parent / 'conf'}")


CONF_DIR: Path = _locate()
