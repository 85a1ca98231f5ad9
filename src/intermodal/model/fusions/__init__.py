"""The fusions: how a multimodal VAE's encoder turns a (partly muted) row into a latent, one
module each, and :data:`FUSIONS`, the registry every list of fusions reads (the run
config's check, the command line's help, the report, :func:`~intermodal.model.group.build_model`).

Modules: :mod:`.concat` (Zambelli's concatenation, the paper's), :mod:`.experts` (what the
expert fusions share: the experts and their base class), :mod:`.poe` (product of experts),
:mod:`.moe` (mixture of experts) and :mod:`.mopoe` (mixture of products of experts).

A new fusion is a subclass of :class:`~intermodal.model.base.EnsembleVAE` that fills its
hooks, passed to :func:`register_fusion`; nothing else lists it.
"""

from __future__ import annotations

from ...errors import ModelError
from ..base import EnsembleVAE
from .concat import MultimodalVAE
from .moe import MixtureOfExperts
from .mopoe import MixtureOfProductsOfExperts
from .poe import ProductOfExperts

__all__ = ["FUSIONS", "register_fusion", "unregister_fusion"]

# The fusions by name, in the order they are listed.
FUSIONS: dict[str, type[EnsembleVAE]] = {
    cls.fusion: cls for cls in (MultimodalVAE, ProductOfExperts, MixtureOfExperts, MixtureOfProductsOfExperts)
}


def register_fusion(cls: type[EnsembleVAE]) -> type[EnsembleVAE]:
    """Add ``cls`` to :data:`FUSIONS` under its ``fusion`` name (usable as a decorator);
    a name taken is refused."""
    if not (isinstance(cls, type) and issubclass(cls, EnsembleVAE)) or not cls.fusion:
        raise ModelError(f"{cls!r}: a fusion is a subclass of EnsembleVAE with a name (its class attribute fusion)")
    if cls.fusion in FUSIONS:
        raise ModelError(f"fusion {cls.fusion!r} is registered already ({FUSIONS[cls.fusion].__name__})")
    FUSIONS[cls.fusion] = cls
    return cls


def unregister_fusion(name: str) -> None:
    """Remove the fusion ``name`` from :data:`FUSIONS`."""
    if name not in FUSIONS:
        raise ModelError(f"fusion {name!r} is not registered; registered: {', '.join(FUSIONS)}")
    del FUSIONS[name]
