"""Method strategies: each module of this package registers its ``pruning.method`` classes (see :mod:`.base`)
when imported, and importing the package imports them all (:mod:`lottery_style.core.discovery`): a new method
is a new file."""

from lottery_style.core.discovery import import_modules
from lottery_style.engine.methods.base import METHODS, MethodStrategy, RoundInputs, method_strategy, register_method

import_modules(__name__, __path__)

__all__ = ["METHODS", "MethodStrategy", "RoundInputs", "method_strategy", "register_method"]
