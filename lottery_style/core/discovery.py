"""Registration by presence: a package of plug-in modules imports every module it holds.

An architecture (``lottery_style/models/``) or a method
(``lottery_style/engine/methods/``) registers itself with a decorator when its
module is imported; importing every module of the package, rather than a list
of them, makes a new one a new file and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_modules(package: str, path: Iterable[str]) -> list[str]:
    """Import every module (not subpackage) of ``package`` found on ``path`` (its ``__path__``), in name order;
    their names."""
    names = [f"{package}.{info.name}" for info in pkgutil.iter_modules(path) if not info.ispkg]
    for name in names:
        importlib.import_module(name)
    return names
