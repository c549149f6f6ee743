"""The architectures: each module of this package registers one (``@register_model``) when imported, and
importing the package imports them all (:mod:`lottery_style.core.discovery`): a new architecture is a new file."""

from lottery_style.core.discovery import import_modules
from lottery_style.models.base import Losses, StyleTransferModule
from lottery_style.models.registry import MODEL_REGISTRY, create_model, model_class, register_model

import_modules(__name__, __path__)

__all__ = ["MODEL_REGISTRY", "Losses", "StyleTransferModule", "create_model", "model_class", "register_model"]
