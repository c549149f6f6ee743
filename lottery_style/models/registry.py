"""One registry entry per architecture: ``model.name`` -> LightningModule class + config schema.

Modelled on timm's registry: an architecture registers itself with a decorator,
``@register_model("adain", AdaINConfig)``, and everything else (configs, the IMP
driver, stylize, export) reaches it only through :func:`create_model`, so adding
an architecture touches no engine code. Its name is said once, in that
decorator; the schema holds every other default (its ``name`` is left unset and
filled from the registry, :meth:`ModelEntry.schema`), and
``conf/model/<name>.yaml`` only selects it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from omegaconf import MISSING, DictConfig, OmegaConf

if TYPE_CHECKING:
    from lottery_style.models.base import StyleTransferModule

T = TypeVar("T")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    module: type
    config: type

    def schema(self) -> DictConfig:
        """The config schema as a node with ``name`` set: what ``model=<name>`` composes onto, and its defaults."""
        node = OmegaConf.structured(self.config)
        node.name = self.name
        return node


MODEL_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, config: type) -> Callable[[T], T]:
    """Class decorator: make ``model=<name>`` build this module, ``config`` (a ``ModelConfig`` dataclass whose
    ``name`` stays unset: the name is this argument) being its schema."""
    declared = next((f.default for f in dataclasses.fields(config) if f.name == "name"), None)
    if declared is not MISSING:
        raise TypeError(f"{config.__name__}.name must stay unset (the registered name is {name!r}), not {declared!r}")

    def decorate(cls: T) -> T:
        if name in MODEL_REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        MODEL_REGISTRY[name] = ModelEntry(name=name, module=cls, config=config)  # type: ignore[arg-type]
        return cls

    return decorate


def model_class(name: str) -> type[StyleTransferModule]:
    if name not in MODEL_REGISTRY:
        raise ValueError(f"unknown model {name!r}: expected one of {sorted(MODEL_REGISTRY)}")
    return MODEL_REGISTRY[name].module


def create_model(model_cfg: Any) -> StyleTransferModule:
    """Build the LightningModule named by ``model_cfg.name`` from its (validated) config."""
    return model_class(model_cfg.name)(model_cfg)
