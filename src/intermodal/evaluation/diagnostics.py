"""Latent diagnostics beside the measures: how much each latent dimension of a model
carries, a check for posterior collapse (docs/method.md §5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..model.protocol import description_for
from .measures import as_rows, labelled

__all__ = ["latent_diagnostics", "ACTIVE_THRESHOLD"]

# Burda et al. (2015): a latent dimension is active when the variance of its posterior mean
# over the rows exceeds this.
ACTIVE_THRESHOLD = 0.01


def latent_diagnostics(
    model, rows, *, description: DatasetDescription | None = None, threshold: float = ACTIVE_THRESHOLD
) -> pd.DataFrame:
    """Per latent dimension of every model: how much the posterior carries (collapse check).

    For the full (unmuted) input rows ``x``, with posterior ``q(z|x) = N(m(x), diag s(x)^2)``:

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
    description = description_for(model, description)
    parameter = next(model.parameters())
    x = as_rows(rows, description, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad():
        z_mean, z_logvar = model.encode(x[None].expand(model.n_models, -1, -1))
        z_mean, z_logvar = z_mean.to(torch.float64), z_logvar.to(torch.float64)
        kl = (0.5 * (z_mean**2 + torch.expm1(z_logvar) - z_logvar)).mean(dim=1)
        variance = z_mean.var(dim=1, correction=0)
    n_models, latent = kl.shape
    variance = variance.cpu().numpy().reshape(-1)
    table = pd.DataFrame(
        {
            "model": np.repeat(np.arange(n_models, dtype=np.int64), latent),
            "latent_dim": np.tile(np.arange(latent, dtype=np.int64), n_models),
            "kl": kl.cpu().numpy().reshape(-1),
            "posterior_mean_variance": variance,
            "active": variance > threshold,
        }
    )
    return labelled(table, model)
