"""Ready adapters: other libraries' models, and models that condition on subsets of whole
modalities, as latent models the measures take (docs/own_model.md).

- :func:`subsets` (:mod:`.subset_model`): any model that encodes a subset of modalities and
  decodes a latent.
- :func:`multivae` (:mod:`.multivae_model`): MultiVae's models (MVAE, MMVAE, MoPoE, ...),
  with the decoder family and scale read from each model's config (the
  ``intermodal[multivae]`` extra).

MultiVae itself is imported only when a model is wrapped. (The modules are not named after
the functions: a submodule ``subsets`` would shadow the function ``subsets`` once loaded.)
"""

from __future__ import annotations

from .multivae_model import MultiVaeModel, multivae
from .subset_model import SubsetModel, subsets

__all__ = ["subsets", "SubsetModel", "multivae", "MultiVaeModel"]
