"""Fusion ``poe``, the product of experts (MVAE: Wu & Goodman 2018; docs/method.md §2b)."""

from __future__ import annotations

import torch

from ..posterior import GaussianPosterior
from .experts import ExpertsVAE, gaussian_kl, product_of_experts

__all__ = ["ProductOfExperts"]


class ProductOfExperts(ExpertsVAE):
    """Fusion ``poe`` (MVAE): the posterior is the product of the present experts and the
    prior N(0, I), in closed form; the latent loss is its KL divergence from the prior."""

    fusion = "poe"
    summary = "product of experts"

    def _posterior_ff(self, x_ff, muted):
        mean, var = product_of_experts(*self._experts_ff(x_ff), self._present_in_mask(muted))
        return GaussianPosterior(mean.transpose(1, 2), var.transpose(1, 2))

    def training_losses(self, x_ff, target_ff, noise_ff):
        mean, var = product_of_experts(*self._experts_ff(x_ff), self._present_in_training(x_ff))
        z = mean + torch.sqrt(var) * noise_ff
        return self._recon(target_ff, z), gaussian_kl(mean, var).sum(1)
