"""Hydra's ConfigStore entries: the root schema and one schema per registered model.

Registration needs every architecture imported (each registers its config
schema with its module), so it lives here, above the models in the import
order, rather than in :mod:`lottery_style.config`, which every model imports.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from lottery_style.config import TrainConfig
from lottery_style.models import MODEL_REGISTRY


def register_configs() -> None:
    """Store the root schema and every registered model's schema (the ``model`` group is typed per model).

    The model schemas are stored outside the ``model`` group, as bases that
    ``conf/model/<name>.yaml`` extends (``/<name>_schema@_here_``), so that
    ``model=`` offers, and an unknown choice lists, only the real models.
    """
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, entry in MODEL_REGISTRY.items():
        cs.store(name=f"{name}_schema", node=entry.config)
