"""Multimodal VAEs whose modalities are *experts*, each with its own Gaussian over the
latent, fused into one posterior (docs/method.md §2b): a product of experts (``poe``, MVAE:
Wu & Goodman 2018), a mixture of experts (``moe``, MMVAE: Shi et al. 2019) and a mixture of
products of experts (``mopoe``, MoPoE-VAE: Sutter et al. 2021). The decoder is Zambelli's
(:class:`~intermodal.model.base.EnsembleVAE`), so fusion is the only thing that differs
from ``concat``.

The experts are the parts of a row that the data set's muting patterns and the measures
mute: the columns that every pattern and every modality treats alike (for the iCub set,
each modality at each time step, since a pattern mutes "everything at t"). A muted
expert is left out of the fusion, not given a value; with none left, the posterior is the
prior N(0, I). Each expert's encoder has the architecture's widths for its modality,
scaled to the expert's share of the modality's columns, and ends in a mean and a floored
log-variance over the latent, as Zambelli's encoder does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.description import DatasetDescription
from ..errors import ModelError
from .base import VARIANCE_FLOOR, EnsembleVAE
from .posterior import MIXTURE_Z_SAMPLES, GaussianPosterior, MixturePosterior

__all__ = [
    "Expert",
    "experts_of",
    "ProductOfExperts",
    "MixtureOfExperts",
    "MixtureOfProductsOfExperts",
    "MIXTURE_Z_SAMPLES",
    "mixture_log_density",
    "decodes_every_pair",
]

# Subsets of experts whose products are computed at once for a mixture of products' mean.
SUBSETS_PER_PASS = 64
ROWS_PER_SUBSET_BLOCK = 128
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Expert:
    """One expert: a modality's columns at some of its time steps (``name``: the modality,
    or ``modality@step+step`` for part of its steps); ``columns`` ascending."""

    name: str
    modality: str
    columns: tuple[int, ...]


def experts_of(description: DatasetDescription) -> list[Expert]:
    """The experts of a data set: the columns grouped by how every muting pattern and every
    modality treats them (the atoms of the sets they mute), in modality order, then column
    order."""
    masks = [description.mask(list(s)) for s in description.muting_patterns.values()]
    masks += [description.mask(m) for m in description.modality_names]
    signature = np.stack(masks, axis=1)  # [columns, masks]
    names = description.column_names()
    groups: dict[bytes, list[int]] = {}
    for c in range(description.n_columns):
        groups.setdefault(signature[c].tobytes(), []).append(c)
    experts = []
    for m in description.modality_names:
        own = set(np.flatnonzero(description.mask(m)).tolist())
        for columns in groups.values():
            if columns[0] not in own:
                continue
            steps = [s for s in description.time_steps if any(names[c].startswith(f"{m}_{s}_") for c in columns)]
            name = m if len(columns) == len(own) else f"{m}@{'+'.join(steps)}"
            experts.append(Expert(name, m, tuple(sorted(columns))))
    return experts


class _ExpertsVAE(EnsembleVAE):
    """Expert encoders (``enc:<expert>:<i>``, ``enc:<expert>:latent``) before Zambelli's decoder."""

    _first_columns: torch.Tensor  # buffers (register_buffer below), declared for type checkers
    _membership: torch.Tensor

    def _build_encoder(self) -> None:
        self.experts = experts_of(self.description)
        self.expert_layers, self.expert_heads = [], []
        sizes = {m: len(c) for m, c in zip(self.modalities, self.modality_columns)}
        for e in self.experts:
            share = len(e.columns) / sizes[e.modality]
            widths = [len(e.columns)] + [max(1, math.ceil(w * share)) for w in self.architecture.encoders[e.modality]]
            self.expert_layers.append(self._stack(f"enc:{e.name}", widths))
            self.expert_heads.append(self._add(f"enc:{e.name}:latent", widths[-1], 2 * self.latent_size, paired=True))
        # Buffers on the model's device, so that they follow it (and a CPU index never meets
        # a GPU tensor): each expert's columns, its first column, which columns it holds.
        for k, e in enumerate(self.experts):
            columns = torch.as_tensor(e.columns, device=self._device)
            self.register_buffer(f"_expert_columns_{k}", columns, persistent=False)
        first = torch.as_tensor([e.columns[0] for e in self.experts], device=self._device)
        self.register_buffer("_first_columns", first, persistent=False)
        membership = torch.zeros(self.n_columns, len(self.experts))
        for k, e in enumerate(self.experts):
            membership[list(e.columns), k] = 1.0
        self.register_buffer("_membership", membership.to(self._device), persistent=False)

    @property
    def _expert_columns(self) -> list[torch.Tensor]:
        return [getattr(self, f"_expert_columns_{k}") for k in range(len(self.experts))]

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    # ---------------------------------------------------------------- experts
    def _experts_ff(self, x_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every expert's mean and variance ``[models, experts, latent, n]`` (the variance
        floored as Zambelli's: ``exp(raw) + 1e-4``), whether present or not."""
        means, raws = [], []
        for columns, layers, head in zip(self._expert_columns, self.expert_layers, self.expert_heads):
            h = self._mlp(layers, x_ff.index_select(1, columns))
            mean, raw = self._linear(head, h).chunk(2, dim=1)
            means.append(mean)
            raws.append(raw)
        return torch.stack(means, 1), torch.exp(torch.stack(raws, 1)) + VARIANCE_FLOOR

    def _present_in_input(self, x_ff: torch.Tensor) -> torch.Tensor:
        """Which experts an input gives, ``[models, experts, n]``: those whose columns do not
        hold the muted value (a pattern mutes an expert whole)."""
        return x_ff.index_select(1, self._first_columns) != self.description.muted_value

    def _present_in_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Which experts a muted mask ``[n, columns]`` leaves, ``[1, experts, n]``; a mask that
        hides part of an expert is refused."""
        hidden = mask.to(self._membership.dtype) @ self._membership  # [n, experts]: hidden columns
        sizes = self._membership.sum(0)
        partial = (hidden > 0) & (hidden < sizes)
        if bool(partial.any()):
            expert = self.experts[int(torch.nonzero(partial)[0, 1])]
            names = self.description.column_names()
            raise ModelError(
                f"the {self.fusion} model leaves out whole experts, and these columns hide part of the expert "
                f"{expert.name!r} ({', '.join(names[c] for c in expert.columns)}); hide all of them or none "
                "(the experts are the parts the data set's muting patterns and modalities mute)"
            )
        return (hidden == 0).T.unsqueeze(0)


def _product(mean: torch.Tensor, var: torch.Tensor, members: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The product of the member experts' Gaussians and the prior N(0, I): precision
    ``1 + Σ 1/var_e``, mean ``Σ (mean_e/var_e) / precision``. ``mean, var [.., experts,
    latent, n]``, ``members [.., experts, n]`` (broadcast); returns ``[.., latent, n]``."""
    weight = members.unsqueeze(-2).to(var.dtype) / var
    precision = 1.0 + weight.sum(-3)
    return (weight * mean).sum(-3) / precision, 1.0 / precision


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
    than by gathering every component's parameters at every sample, which made MMVAE's
    training several times slower. A sample's own component is computed from its ``eps``
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


def _gaussian_kl(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, var) ‖ N(0, 1)) elementwise."""
    return 0.5 * (var + mean * mean - 1.0 - torch.log(var))


class ProductOfExperts(_ExpertsVAE):
    """Fusion ``poe`` (MVAE): the posterior is the product of the present experts and the
    prior N(0, I), in closed form; the latent loss is its KL divergence from the prior."""

    fusion = "poe"

    def _posterior_ff(self, x_ff, mask):
        mean, var = _product(*self._experts_ff(x_ff), self._present_in_mask(mask))
        return GaussianPosterior(mean.transpose(1, 2), var.transpose(1, 2))

    def training_losses(self, x_ff, target_ff, eps_ff):
        mean, var = _product(*self._experts_ff(x_ff), self._present_in_input(x_ff))
        z = mean + torch.sqrt(var) * eps_ff
        return self._recon(target_ff, z), _gaussian_kl(mean, var).sum(1)


class _Mixture(_ExpertsVAE):
    """A mixture posterior: the measures decode from samples by default (docs/method.md §2b).

    The samples of every input are *coupled* to those of the complete row: the first
    uniform of a noise row picks the component the complete row's sample comes from; a
    muted input keeps that component (for ``mopoe``, the part of the subset it still has)
    when it has it, and otherwise the second picks one of its own. Each input's samples
    remain exact samples of its own posterior (the coupling keeps the marginals uniform),
    and a component the muting leaves untouched gives the same z for both inputs, as it
    should: an expert sees only its own columns."""

    default_z_samples = MIXTURE_Z_SAMPLES


class MixtureOfExperts(_Mixture):
    """Fusion ``moe`` (MMVAE): the posterior is the uniform mixture of the present experts'
    Gaussians (the prior when none is present). Training follows MMVAE's stratified
    estimator: one sample from each present expert, each decoded, the reconstruction loss
    the mean over them, and the latent loss ``log q(z) − log p(z)`` of the mixture at each
    sample, averaged likewise (the KL divergence of the mixture from the prior, estimated by
    sampling)."""

    fusion = "moe"

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

    def training_losses(self, x_ff, target_ff, eps_ff):
        mean, var, present = self._components(x_ff, self._present_in_input(x_ff))
        n_models, n_components, latent, rows = mean.shape
        eps = eps_ff.view(n_models, n_components, latent, rows)
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

    def _posterior_ff(self, x_ff, mask):
        mean, var, present = self._components(x_ff, self._present_in_mask(mask))
        log_weights = torch.zeros(present.shape, dtype=mean.dtype, device=mean.device).masked_fill(~present, -math.inf)
        # The complete row's weights: every expert alike, the prior not at all.
        reference = torch.zeros(self.n_experts + 1, dtype=mean.dtype, device=mean.device)
        reference[-1] = -math.inf
        return MixturePosterior(
            mean.permute(0, 3, 1, 2), var.permute(0, 3, 1, 2), log_weights.permute(0, 2, 1), reference
        )


class MixtureOfProductsOfExperts(_Mixture):
    """Fusion ``mopoe`` (MoPoE-VAE): the posterior is the uniform mixture, over the
    non-empty subsets of the present experts, of each subset's product (with the prior
    expert; the prior itself when no expert is present). In training each row uses one
    subset, drawn uniformly: its latent loss is that product's KL divergence from the prior
    in closed form and its reconstruction is decoded from a sample of it, an unbiased
    estimate of the average over subsets that MoPoE's objective is, at the cost of one
    product (a complete iCub row has 10 experts: 1023 subsets)."""

    fusion = "mopoe"

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
        members = self._subset(self._present_in_input(x_ff), pick)
        mean, var = _product(mean, var, members)
        z = mean + torch.sqrt(var) * eps
        return self._recon(target_ff, z), _gaussian_kl(mean, var).sum(1)

    def _posterior_ff(self, x_ff, mask):
        mean, var = self._experts_ff(x_ff)
        return _SubsetProducts(self, mean, var, self._present_in_mask(mask))

    def _coupled_samples(self, mean, var, present, noise) -> torch.Tensor:
        """One latent per noise row ``[models, samples, n, latent]``: the complete row's
        subset of all experts, less those this input leaves out; where none is left, a
        subset of its own experts."""
        every = torch.ones_like(present)
        samples = []
        for eps, pick, repick in zip(noise[..., :-2], noise[..., -2], noise[..., -1]):  # [n, latent], [n], [n]
            kept = self._subset(every, pick[None]) & present
            members = torch.where(kept.any(1, keepdim=True), kept, self._subset(present, repick[None]))
            mu, v = _product(mean, var, members)
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
