"""Method strategies: each ``pruning.method`` is one registered class (see :mod:`.base`)."""

from lottery_style.engine.methods import (
    dense,  # noqa: F401  (registers pruning.method=dense)
    early_bird,  # noqa: F401  (registers pruning.method=early_bird)
    imp,  # noqa: F401  (registers pruning.method=imp)
    instability,  # noqa: F401  (registers the instability analysis)
    oneshot,  # noqa: F401  (registers pruning.method=oneshot)
    random_prune,  # noqa: F401  (registers random_prune, random_prune_own)
    random_reinit,  # noqa: F401  (registers random_reinit, random_reinit_own)
    snip,  # noqa: F401  (registers snip, snip_shuffled)
    synflow,  # noqa: F401  (registers synflow, synflow_shuffled)
)
from lottery_style.engine.methods.base import METHODS, MethodStrategy, RoundInputs, method_strategy, register_method

__all__ = ["METHODS", "MethodStrategy", "RoundInputs", "method_strategy", "register_method"]
