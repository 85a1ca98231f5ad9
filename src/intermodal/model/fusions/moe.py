"""Fusion ``moe``, the mixture of experts (MMVAE: Shi et al. 2019; docs/method.md §2b), and
the mixture's log-density its training estimates the KL divergence with."""

from __future__ import annotations

import math

import torch

from ..posterior import MixturePosterior
from .experts import MixtureVAE

__all__ = ["MixtureOfExperts", "mixture_log_density", "decodes_every_pair"]

LOG_2PI = math.log(2 * math.pi)


def mixture_log_density(z: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """``log q(z)`` of the uniform mixture of the ``present`` components' diagonal Gaussians:
    ``z [models, latent, n]``, ``mean, var [models, components, latent, n]``, ``present
    [models, components, n]`` bool (at least one per row); returns ``[models, n]`` (nats)."""
    log_q = -0.5 * ((z.unsqueeze(1) - mean) ** 2 / var + torch.log(var) + LOG_2PI).sum(2)
    log_q = log_q.masked_fill(~present, -math.inf)
    return torch.logsumexp(log_q, 1) - torch.log(present.sum(1).to(z.dtype))


def _row_mixture_log_density(
    z: torch.Tensor, eps: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, present: torch.Tensor
) -> torch.Tensor:
    """``log q(z)`` of every sample ``z[:, s, :, r] = mean[:, s, :, r] + sd · eps[:, s, :, r]``
    under the uniform mixture of row ``r``'s present components, ``[models, samples, rows]``
    (nats); ``z, eps, mean, var [models, components, latent, rows]``, ``present [models,
    components, rows]`` (at least one per row). The same as :func:`mixture_log_density` at
    each sample, computed per row as small matrix products (the quadratic form expanded) rather
    than by gathering every component's parameters at every sample, which costs far more
    (docs/performance.md, "Costs behind the code"). A sample's own component is computed from its ``eps``
    exactly; the expansion, whose terms can cancel, serves only the others."""
    n_models, n_components, latent, rows = mean.shape
    precision = 1.0 / var
    # quad[m, r, s, c] = Σ_l (z_s - mean_c)² / var_c = Σ z_s² P_c - 2 Σ z_s (mean_c P_c) + Σ mean_c² P_c
    # One product over [z², z] and [P, -2·mean·P] ([models, rows, ., 2·latent]).
    left = torch.cat([z * z, z], dim=2).permute(0, 3, 1, 2)
    right = torch.cat([precision, -2.0 * mean * precision], dim=2).permute(0, 3, 2, 1)
    quad = torch.matmul(left, right) + (mean * mean * precision).sum(2).permute(0, 2, 1).unsqueeze(2)
    own = torch.eye(n_components, dtype=torch.bool, device=z.device)
    quad = torch.where(own, (eps * eps).sum(2).permute(0, 2, 1).unsqueeze(3), quad)
    log_component = -0.5 * (quad + torch.log(var).sum(2).permute(0, 2, 1).unsqueeze(2) + latent * LOG_2PI)
    log_component = log_component.masked_fill(~present.permute(0, 2, 1).unsqueeze(2), -math.inf)
    k = present.sum(1).to(z.dtype)  # [models, rows]
    return (torch.logsumexp(log_component, 3) - torch.log(k).unsqueeze(2)).permute(0, 2, 1)


def decodes_every_pair(device: torch.device) -> bool:
    """Whether ``moe``'s training decodes every (component, row) pair, absent ones weighted
    0 (off the CPU), or only the present pairs (on the CPU). Every pair: a shape known in
    advance (no wait for the device to say how many pairs are present) and sums without
    atomic additions (the same on every run). On the CPU, where the extra pairs would cost
    time and a wait costs nothing, only the present ones. The two agree to rounding."""
    return torch.device(device).type != "cpu"


class MixtureOfExperts(MixtureVAE):
    """Fusion ``moe`` (MMVAE): the posterior is the uniform mixture of the present experts'
    Gaussians (the prior when none is present). Training follows MMVAE's stratified
    estimator: one sample from each present expert, each decoded, the reconstruction loss
    the mean over them, and the latent loss ``log q(z) − log p(z)`` of the mixture at each
    sample, averaged likewise (the KL divergence of the mixture from the prior, estimated by
    sampling)."""

    fusion = "moe"
    summary = "mixture of experts"

    def _components(self, x_ff: torch.Tensor, present: torch.Tensor):
        """Means and variances ``[models, experts + 1, latent, n]`` with the prior last, and
        which are components ``[models or 1, experts + 1, n]`` (the prior only where no
        expert is present)."""
        mean, var = self._experts_ff(x_ff)
        shape = (mean.shape[0], 1, *mean.shape[2:])
        mean = torch.cat([mean, mean.new_zeros(shape)], 1)
        var = torch.cat([var, var.new_ones(shape)], 1)
        present = present.expand(-1, -1, x_ff.shape[-1])
        present = torch.cat([present, ~present.any(1, keepdim=True)], 1)
        return mean, var, present

    def training_noise(self, generator, n_rows, dtype):
        return torch.randn(n_rows, (self.n_experts + 1) * self.latent_size, generator=generator, dtype=dtype)

    def training_losses(self, x_ff, target_ff, noise_ff):
        mean, var, present = self._components(x_ff, self._present_in_training(x_ff))
        n_models, n_components, latent, rows = mean.shape
        eps = noise_ff.view(n_models, n_components, latent, rows)
        z = mean + torch.sqrt(var) * eps  # one sample per component and row, absent ones too
        # log q(z) - log p(z) of every sample under its row's mixture: [models, components, rows]
        latent_loss = _row_mixture_log_density(z, eps, mean, var, present) + 0.5 * (z**2 + LOG_2PI).sum(2)
        k = present.sum(1, keepdim=True).to(z.dtype)  # each row's number of components
        if decodes_every_pair(x_ff.device):
            target_all = target_ff.repeat(1, 1, n_components)  # pair c·rows + r is row r
            recon = self._recon(target_all, z.permute(0, 2, 1, 3).reshape(n_models, latent, -1))
            weight = present.to(z.dtype) / k
            recon = torch.where(present, recon.view(n_models, n_components, rows), 0.0)
            latent_loss = torch.where(present, latent_loss, 0.0)
            return (recon * weight).sum(1), (latent_loss * weight).sum(1)
        # Only the present (component, row) pairs are decoded: each model's first, padded to
        # the longest.
        flat = present.reshape(n_models, -1)  # index: component * rows + row
        counts = flat.sum(1)
        order = torch.argsort((~flat).to(torch.uint8), dim=1, stable=True)[:, : int(counts.max())]
        pairs = order.shape[1]
        valid = torch.arange(pairs, device=order.device)[None] < counts[:, None]
        row = order % rows
        z_pairs = z.permute(0, 2, 1, 3).reshape(n_models, latent, -1).gather(2, order[:, None].expand(-1, latent, -1))
        recon = self._recon(target_ff.gather(2, row[:, None].expand(-1, target_ff.shape[1], -1)), z_pairs)
        latent_pairs = latent_loss.reshape(n_models, -1).gather(1, order)
        k_pairs = k[:, 0].gather(1, row)  # the row's number of components
        weight = valid.to(z.dtype) / k_pairs
        zeros = z.new_zeros(n_models, rows)
        return zeros.scatter_add(1, row, recon * weight), zeros.scatter_add(1, row, latent_pairs * weight)

    def _posterior_ff(self, x_ff, muted):
        mean, var, present = self._components(x_ff, self._present_in_mask(muted))
        log_weights = torch.zeros(present.shape, dtype=mean.dtype, device=mean.device).masked_fill(~present, -math.inf)
        # The complete row's weights: every expert alike, the prior not at all.
        reference = torch.zeros(self.n_experts + 1, dtype=mean.dtype, device=mean.device)
        reference[-1] = -math.inf
        return MixturePosterior(
            mean.permute(0, 3, 1, 2), var.permute(0, 3, 1, 2), log_weights.permute(0, 2, 1), reference
        )
