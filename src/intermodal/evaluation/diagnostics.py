"""Latent diagnostics beside the measures: how much each latent dimension of a model
carries, a check for posterior collapse (docs/method.md §5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import ModelError
from ..model.group import groups_of
from ..model.protocol import description_for, view_of
from ..training.config import label_models
from .measures import as_model, as_rows

__all__ = ["latent_diagnostics", "ACTIVE_THRESHOLD"]

# Burda et al. (2015): a latent dimension is active when the variance of its posterior mean
# over the rows exceeds this.
ACTIVE_THRESHOLD = 0.01


def latent_diagnostics(
    model, rows, *, description: DatasetDescription | None = None, threshold: float = ACTIVE_THRESHOLD
) -> pd.DataFrame:
    """Per latent dimension of every model: how much the posterior carries (collapse check).

    For the full (unmuted) input rows ``x``, with posterior ``q(z|x) = N(m(x), diag s(x)^2)``
    (for a mixture posterior, ``m`` is the mixture's mean and the KL the weighted mean of
    its components', an upper bound of the mixture's); any
    :class:`~intermodal.model.protocol.LatentModel` (a model of one's own, an adapted one):

    - ``kl``: mean over rows of ``KL(q(z_j|x) || N(0, 1))`` in nats (the dimension's share
      of the latent loss);
    - ``posterior_mean_variance``: variance over rows (population, ``ddof=0``) of ``m_j(x)``;
    - ``active``: ``posterior_mean_variance > threshold`` (Burda et al. 2015 use 0.01).

    Parameters
    ----------
    model, description : as in :func:`~intermodal.evaluation.measures.integration_measures`.
    rows : array or tensor ``[n_rows, n_columns]`` of complete rows.
    threshold : activity threshold on the variance of the posterior mean.

    Returns
    -------
    DataFrame, one row per (model, latent dimension), columns ``model`` (then the model's
    ``model_keys`` columns where it has them), ``latent_dim``, ``kl``,
    ``posterior_mean_variance``, ``active``.
    """
    model = as_model(model)
    description = description_for(model, description)
    kls, variances = [], []
    for _, group in groups_of(model):
        view = view_of(group)
        if view.kind != "latent":
            raise ModelError(
                f"latent diagnostics need a model with a latent posterior (intermodal.LatentModel: "
                f"posterior(rows, muted)); {view.name} has none"
            )
        dtype, device = view.dtype_device()
        x = as_rows(rows, description, dtype=dtype, device=device)
        no_mask = torch.zeros_like(x, dtype=torch.bool)
        with torch.no_grad():
            post = view.posterior(x, no_mask)
            z_mean, kl = post.mean().double(), post.kl_to_prior()  # [models, rows, latent]
            kls.append(kl.mean(dim=1))
            variances.append(z_mean.var(dim=1, correction=0))
    kl, variance = torch.cat(kls), torch.cat(variances)
    n_models, latent = kl.shape
    per_dim = variance.cpu().numpy().reshape(-1)
    table = pd.DataFrame(
        {
            "model": np.repeat(np.arange(n_models, dtype=np.int64), latent),
            "latent_dim": np.tile(np.arange(latent, dtype=np.int64), n_models),
            "kl": kl.cpu().numpy().reshape(-1),
            "posterior_mean_variance": per_dim,
            "active": per_dim > threshold,
        }
    )
    return label_models(table, getattr(model, "model_keys", None))
