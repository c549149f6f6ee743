"""One registry entry per architecture: ``model.name`` -> LightningModule class + config schema.

Modelled on timm's registry: an architecture registers itself with a decorator,
and everything else (configs, the IMP driver, stylize, export) reaches it only
through :func:`create_model`, so adding an architecture touches no engine code.
"""

from __future__ import annotations

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


def register_model(name: str, config: type) -> Callable[[T], T]:
    """Class decorator: make ``model=<name>`` build this module with ``config`` as its schema."""

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
