"""Ready adapters: other libraries' models, and models that condition on subsets of whole
modalities, as latent models the measures take (docs/own_model.md).

- :func:`subsets`: any model that encodes a subset of modalities and decodes a latent.
- :func:`multivae`: MultiVae's models (MVAE, MMVAE, MoPoE, ...), with the decoder family
  and scale read from each model's config (the ``intermodal[multivae]`` extra).

Names load on first use, so ``import intermodal.adapters`` does not import MultiVae.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .multivae import MultiVaeModel, multivae
    from .subsets import SubsetModel, subsets

__all__ = ["subsets", "SubsetModel", "multivae", "MultiVaeModel"]

_EXPORTS = {"subsets": "subsets", "SubsetModel": "subsets", "multivae": "multivae", "MultiVaeModel": "multivae"}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'intermodal.adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
