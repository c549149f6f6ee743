"""One registry entry per architecture: ``model.name`` -> LightningModule class + config schema.

Modelled on timm's registry: an architecture registers itself with a decorator,
and everything else (configs, the IMP driver, stylize, export) reaches it only
through :func:`create_model`, so adding an architecture touches no engine code.
Its name is said once, as the default of its config schema's ``name``; the
schema holds every default, ``conf/model/<name>.yaml`` only selects it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from lottery_style.models.base import StyleTransferModule

T = TypeVar("T")


@dataclass(frozen=True)
class ModelEntry:
    module: type
    config: type


MODEL_REGISTRY: dict[str, ModelEntry] = {}


def register_model(config: type) -> Callable[[T], T]:
    """Class decorator: make ``model=<name>`` build this module with ``config`` as its schema, ``<name>`` being
    the default of the schema's ``name`` field."""
    name = next(f.default for f in dataclasses.fields(config) if f.name == "name")
    if not isinstance(name, str):
        raise TypeError(f"{config.__name__}.name needs the model's name as its default, not {name!r}")

    def decorate(cls: T) -> T:
        if name in MODEL_REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        MODEL_REGISTRY[name] = ModelEntry(module=cls, config=config)  # type: ignore[arg-type]
        return cls

    return decorate


def model_class(name: str) -> type[StyleTransferModule]:
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}: expected one of {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name].module


def create_model(model_cfg: Any) -> StyleTransferModule:
    """Build the LightningModule named by ``model_cfg.name`` from its (validated) config."""
    return model_class(model_cfg.name)(model_cfg)
