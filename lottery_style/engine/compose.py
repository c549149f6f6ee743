"""What Hydra must know before it composes a config (the typed schemas and the ``run_id`` resolver), and
composing the root config outside the app.

:func:`register` is the one place both are registered, and every way in calls it
before anything is composed: the Hydra app (``lottery_style.train.main``, hence
``lottery-style``, ``python -m lottery_style``, ``python -m lottery_style.train``
and the DDP ranks Lightning starts by re-running that command), and
:func:`compose`, which tests, benches and notebooks use to build a config as
the command line would. A job that a launcher runs in another process
(submitit: SLURM or local) gets both from the process that launched it: Hydra
ships its ConfigStore and OmegaConf's resolvers with every job. Nothing
registers as a side effect of an import.

Registration needs every architecture imported (each registers its config schema
with its module), so it lives here, above the models in the import order,
rather than in :mod:`lottery_style.core.config`, which every model imports.
"""

from __future__ import annotations

from collections.abc import Sequence

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from lottery_style.core.conf_dir import CONF_DIR
from lottery_style.core.config import root_schema
from lottery_style.engine.extensions import extensions_in, load_extensions
from lottery_style.engine.methods import METHODS  # noqa: F401  (registers every method and its options section)
from lottery_style.models import MODEL_REGISTRY
from lottery_style.tickets.identity import run_id


def register(extensions: Sequence[str] = ()) -> None:
    """Import the ``extensions`` (:mod:`lottery_style.engine.extensions`), then register the schemas and the
    resolver; calling it again changes nothing.

    The root schema and every registered model's schema go to Hydra's ConfigStore
    (the ``model`` group is typed per model). The model schemas are stored outside
    the ``model`` group, as bases that ``conf/model/<name>.yaml`` extends
    (``/<name>_schema@_here_``), so that ``model=`` offers, and an unknown choice
    lists, only the real models. ``${run_id:}`` in ``conf/train.yaml`` names a run
    folder by the hash of its result-defining keys (:mod:`lottery_style.tickets.identity`).
    """
    load_extensions(extensions)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=root_schema())
    for name, entry in MODEL_REGISTRY.items():
        cs.store(name=f"{name}_schema", node=entry.schema())
    OmegaConf.register_new_resolver("run_id", run_id, replace=True)


def compose(overrides: Sequence[str] = (), *, return_hydra_config: bool = False) -> DictConfig:
    """The root config as ``lottery-style <overrides>`` composes it, without running anything.

    ``return_hydra_config`` keeps the ``hydra`` node (the run and sweep folders, the sweeper's parameters).
    """
    register(extensions_in(overrides))
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name="train", overrides=list(overrides), return_hydra_config=return_hydra_config)
