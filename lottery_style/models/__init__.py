"""Architectures register themselves on import; importing this package makes them all available."""

from lottery_style.models import (
    adaattn,  # noqa: F401  (registers model=adaattn)
    adain,  # noqa: F401  (registers model=adain)
    lst,  # noqa: F401  (registers model=lst)
    manet,  # noqa: F401  (registers model=manet)
    mccnet,  # noqa: F401  (registers model=mccnet)
    sanet,  # noqa: F401  (registers model=sanet)
)
from lottery_style.models.base import Losses, StyleTransferModule
from lottery_style.models.registry import MODEL_REGISTRY, create_model, model_class, register_model

__all__ = ["MODEL_REGISTRY", "Losses", "StyleTransferModule", "create_model", "model_class", "register_model"]
