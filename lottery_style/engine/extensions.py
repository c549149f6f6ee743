"""Extensions: a user's own models, methods and metrics, in modules outside the package.

An extension is any importable module that registers what it adds with the
package's decorators (``register_model``, ``register_method``,
``register_metric``). The root option ``extensions=[module, ...]`` names them;
they are imported before the config is composed, because a model's schema and
a method's options section must be registered by then
(:func:`lottery_style.engine.compose.register`). The list is read from the
command line (:func:`extensions_in`), and recorded in every run's config, so
that whatever reads the run later (a job in another process, a resume,
``lottery-style report``) imports the same modules first (:func:`load_extensions`).
Their group files (``conf/model/<name>.yaml``, ``conf/pruning/<name>.yaml``) sit
in a config folder of the user's own, which ``hydra.searchpath`` (or Hydra's
``--config-dir``) adds.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from lottery_style.core.config import ConfigError

KEY = "extensions"


def load_extensions(names: Iterable[str]) -> None:
    """Import every module of ``names`` (once: Python caches them, so the registrations run once)."""
    for name in names:
        try:
            importlib.import_module(str(name))
        except ImportError as error:
            raise ConfigError(
                f"{KEY}=[{name}] cannot be imported ({error}): expected a module on the Python path"
            ) from None


def extensions_in(arguments: Sequence[str]) -> list[str]:
    """The modules an ``extensions=[...]`` override of a command line names (none when it has none, or when it
    cannot be parsed: Hydra then reports the command line itself)."""
    candidates = [argument for argument in arguments if argument.lstrip("+").startswith(f"{KEY}=")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return []
    names: list[str] = []
    for override in overrides:
        value = override.value()
        names += [str(item) for item in value] if isinstance(value, list) else [str(value)]
    return names
