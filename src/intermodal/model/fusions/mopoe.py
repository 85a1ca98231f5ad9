"""Fusion ``mopoe``, the mixture of products of experts (MoPoE-VAE: Sutter et al. 2021;
docs/method.md §2b), and its posterior, whose 2^K − 1 components are never listed."""

from __future__ import annotations

import torch

from ..posterior import MixturePosterior
from .experts import MixtureVAE, gaussian_kl, product_of_experts

__all__ = ["MixtureOfProductsOfExperts"]

# Subsets of experts whose products are computed at once for a mixture of products' mean.
SUBSETS_PER_PASS = 64
ROWS_PER_SUBSET_BLOCK = 128


class MixtureOfProductsOfExperts(MixtureVAE):
    """Fusion ``mopoe`` (MoPoE-VAE): the posterior is the uniform mixture, over the
    non-empty subsets of the present experts, of each subset's product (with the prior
    expert; the prior itself when no expert is present). In training each row uses one
    subset, drawn uniformly: its latent loss is that product's KL divergence from the prior
    in closed form and its reconstruction is decoded from a sample of it, an unbiased
    estimate of the average over subsets that MoPoE's objective is, at the cost of one
    product (a complete iCub row has 10 experts: 1023 subsets)."""

    fusion = "mopoe"
    summary = "mixture of products of experts"

    def training_noise(self, generator, n_rows, dtype):
        eps = torch.randn(n_rows, self.latent_size, generator=generator, dtype=dtype)
        return torch.cat([eps, torch.rand(n_rows, 1, generator=generator, dtype=dtype)], dim=1)

    @staticmethod
    def _subset(present: torch.Tensor, pick: torch.Tensor) -> torch.Tensor:
        """The subset number ``1 + floor(pick · (2^K − 1))`` of each row's ``K`` present
        experts, as members ``[.., experts, n]``: bit ``j`` of the number keeps the row's
        ``j``-th present expert. ``present [.., experts, n]``, ``pick [.., n]`` in [0, 1)."""
        k = present.sum(-2)
        count = torch.bitwise_left_shift(torch.ones_like(k), k) - 1  # 2^K - 1 non-empty subsets
        number = 1 + torch.floor(pick.double() * count.double()).long()
        rank = (torch.cumsum(present.long(), -2) - 1).clamp_min(0)
        return present & (torch.bitwise_right_shift(number.unsqueeze(-2), rank) & 1).bool()

    def training_losses(self, x_ff, target_ff, noise_ff):
        eps, pick = noise_ff[:, :-1], noise_ff[:, -1]
        mean, var = self._experts_ff(x_ff)
        members = self._subset(self._present_in_training(x_ff), pick)
        mean, var = product_of_experts(mean, var, members)
        z = mean + torch.sqrt(var) * eps
        return self._recon(target_ff, z), gaussian_kl(mean, var).sum(1)

    def _posterior_ff(self, x_ff, muted):
        mean, var = self._experts_ff(x_ff)
        return _SubsetProducts(self, mean, var, self._present_in_mask(muted))

    def _coupled_samples(self, mean, var, present, noise) -> torch.Tensor:
        """One latent per noise row ``[models, samples, n, latent]``: the complete row's
        subset of all experts, less those this input leaves out; where none is left, a
        subset of its own experts."""
        every = torch.ones_like(present)
        samples = []
        for eps, pick, repick in zip(noise[..., :-2], noise[..., -2], noise[..., -1]):  # [n, latent], [n], [n]
            kept = self._subset(every, pick[None]) & present
            members = torch.where(kept.any(1, keepdim=True), kept, self._subset(present, repick[None]))
            mu, v = product_of_experts(mean, var, members)
            samples.append((mu + torch.sqrt(v) * eps.T).transpose(1, 2))
        return torch.stack(samples, 1)

    def _subsets_of(self, present_row: torch.Tensor) -> torch.Tensor:
        """Every non-empty subset of the experts ``present_row [experts]`` gives, as rows of
        a ``[subsets, experts]`` 0/1 matrix (none when no expert is present)."""
        experts = torch.nonzero(present_row).flatten()
        numbers = torch.arange(1, 2 ** len(experts), device=present_row.device)
        bits = (numbers[:, None] >> torch.arange(len(experts), device=present_row.device)) & 1
        subsets = torch.zeros(len(numbers), self.n_experts, device=present_row.device)
        subsets[:, experts] = bits.to(subsets.dtype)
        return subsets

    def _over_subsets(self, mean, var, present: torch.Tensor, *, with_kl: bool):
        """The mean over each row's subsets of the products' means ``[models, latent, n]``
        and, with ``with_kl``, of their KL divergences from N(0, I) per latent dimension
        (else None); rows are grouped by the experts they give. ``present [experts, n]``; a
        row with none gives the prior's (mean 0, KL 0). Computed in the experts' dtype,
        accumulated in float64."""
        n_models, _, latent, n = mean.shape
        out_mean = torch.zeros(n_models, latent, n, dtype=torch.float64, device=mean.device)
        out_kl = torch.zeros_like(out_mean) if with_kl else None
        patterns, group = torch.unique(present.T, dim=0, return_inverse=True)
        for g, pattern in enumerate(patterns):
            cols = torch.nonzero(group == g).flatten()
            subsets = self._subsets_of(pattern).to(mean.dtype)
            if len(subsets) == 0:
                continue  # the prior: mean 0 and KL 0, as initialised
            precision = (1.0 / var).index_select(3, cols)
            weighted = (mean / var).index_select(3, cols)
            # Blocks of rows and subsets small enough to stay in cache; each block's products
            # are one matrix product [subsets, experts] @ [models, experts, latent * rows].
            for j in range(0, len(cols), ROWS_PER_SUBSET_BLOCK):
                p = precision[..., j : j + ROWS_PER_SUBSET_BLOCK]
                w = weighted[..., j : j + ROWS_PER_SUBSET_BLOCK]
                block = p.shape[-1]
                p, w = p.reshape(n_models, self.n_experts, -1), w.reshape(n_models, self.n_experts, -1)
                sum_mean = torch.zeros(n_models, latent * block, dtype=torch.float64, device=mean.device)
                sum_kl = torch.zeros_like(sum_mean) if with_kl else None
                for s in range(0, len(subsets), SUBSETS_PER_PASS):
                    chunk = subsets[s : s + SUBSETS_PER_PASS]
                    t = torch.matmul(chunk, p).add_(1.0)  # the product's precision [models, s, latent * rows]
                    mu = torch.matmul(chunk, w).div_(t)
                    sum_mean += mu.sum(1, dtype=torch.float64)
                    if sum_kl is not None:  # with_kl
                        # KL(N(mu, 1/t) || N(0, 1)) = (1/t + mu^2 - 1 + log t) / 2
                        kl = t.reciprocal().add_(mu.square_()).sub_(1.0).add_(t.log_())
                        sum_kl += 0.5 * kl.sum(1, dtype=torch.float64)
                target = cols[j : j + block]
                out_mean[..., target] = sum_mean.view(n_models, latent, block) / len(subsets)
                if out_kl is not None and sum_kl is not None:  # with_kl
                    out_kl[..., target] = sum_kl.view(n_models, latent, block) / len(subsets)
        return out_mean, out_kl


class _SubsetProducts(MixturePosterior):
    """``mopoe``'s posterior: the uniform mixture over the non-empty subsets of the present
    experts of each subset's product (the prior where none is present). Its 2^K − 1
    components are never listed: the mean and the KL are sums over subsets in blocks, and a
    sample is drawn by the model's own coupling (which takes the complete row to have every
    expert, as the measures give it)."""

    def __init__(self, model, mean, var, present):
        self._model, self._e_mean, self._e_var, self._present = model, mean, var, present

    @property
    def weights(self):
        raise NotImplementedError("mopoe's posterior does not list its 2^K - 1 components")

    def mean(self):
        m = self._model._over_subsets(self._e_mean, self._e_var, self._present[0], with_kl=False)[0]
        return m.to(self._e_mean.dtype).transpose(1, 2)

    def sample(self, noise, reference=None):
        return self._model._coupled_samples(self._e_mean, self._e_var, self._present, noise.to(self._e_mean.dtype))

    def kl_to_prior(self):
        present = self._present[0].expand(-1, self._e_mean.shape[-1])
        return self._model._over_subsets(self._e_mean, self._e_var, present, with_kl=True)[1].transpose(1, 2)

    def repeat(self, times):
        return _SubsetProducts(
            self._model,
            self._e_mean.repeat(1, 1, 1, times),
            self._e_var.repeat(1, 1, 1, times),
            self._present.repeat(1, 1, times),
        )
