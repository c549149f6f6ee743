"""What a config option needs beyond the core install: extras of ``pyproject.toml``, commands of the machine."""

from __future__ import annotations

import importlib.util

# "group=option" -> (the module it needs, the extra that installs it)
OPTION_EXTRAS: dict[str, tuple[str, str]] = {
    "launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}
# "group=option" -> (a command it runs, what provides that command): submitit's SLURM executor needs ``srun``
# on the PATH, and only finds out after Hydra made the sweep folder.
OPTION_COMMANDS: dict[str, tuple[str, str]] = {
    "launcher=slurm": ("srun", "a SLURM cluster"),
}


def not_installed(what: str, module: str, extra: str) -> str:
    """The one-line error for ``what`` (an option or a tool's flag) that needs ``module``, which is missing."""
    return f"{what} needs {module}, which is not installed: expected the {extra} extra (pip install 'lottery-style[{extra}]')"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it.

    ``importlib.util.find_spec("a.b")`` imports ``a`` and raises ModuleNotFoundError
    when ``a`` itself is missing (``hydra_plugins`` when no Hydra plugin is
    installed), so that case is a plain False here.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
