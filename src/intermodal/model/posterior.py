"""A latent posterior as the measures, prediction and the diagnostics see it (docs/method.md §5c).

A :class:`~intermodal.model.protocol.LatentModel` answers ``posterior(rows, muted)`` with
one of these, for ``models`` models and ``n`` rows:

- :class:`GaussianPosterior`: ``N(mean, diag var)``, ``mean, var [models, n, latent]``;
- :class:`MixturePosterior`: a mixture of ``K`` diagonal Gaussians (or Laplace
  distributions, ``family="laplace"``, as MMVAE's default posterior) with weights,
  ``means, vars [models, n, K, latent]``, ``log_weights [models or 1, n, K]`` (``-inf`` for
  a component the input does not have), and optionally ``reference_log_weights``, the
  complete row's weights. Component ``k`` must mean the same thing for every input of a
  row (MMVAE's: the ``k``-th modality's expert), which is what lets a muted input's sample
  be coupled to the complete row's.

Every posterior gives three things:

- ``mean()`` ``[models, n, latent]``: the latent the measures decode from with
  ``z_samples=0``. For a mixture it is **the mixture's mean**, ``Σ_k w_k mean_k`` (its
  first moment; the one choice that treats every component alike and needs no argmax
  over weights). ``moe``, ``mopoe`` and an adapted MMVAE or MoPoE all use it.
- ``sample(noise, reference)`` ``[models, samples, n, latent]``: one latent per noise row,
  ``noise [samples, n, latent + 2]`` from :func:`latent_noise` (a standard normal ``ε`` and
  two uniforms). A mixture draws its component by *maximal coupling* to ``reference``'s
  weights (the complete row's): the first uniform picks the complete row's component
  ``k`` (inverse CDF of the reference weights); the input keeps it with probability
  ``min(1, w(k) / w_ref(k))``, else the second uniform, rescaled, picks from the residual
  weights ``(w − w_ref)⁺``. Each input's samples remain exact samples of its own posterior,
  and an input that keeps every component of the complete row draws the same latent.
- ``kl_to_prior()`` ``[models, n, latent]``: per latent dimension, the KL divergence from
  N(0, 1) (a mixture: the weighted mean of its components', an upper bound of its own by
  convexity), for :func:`~intermodal.evaluation.diagnostics.latent_diagnostics`.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Laplace, Normal, kl_divergence

from ..errors import ModelError

__all__ = [
    "MIXTURE_Z_SAMPLES",
    "MAX_Z_SAMPLES",
    "Posterior",
    "GaussianPosterior",
    "MixturePosterior",
    "latent_noise",
    "NOISE_EXTRA",
]

LATENT_FAMILIES = ("gaussian", "laplace")  # a mixture's components (MMVAE's default is Laplace)
NOISE_EXTRA = 2  # uniform numbers after ε in each noise row: the component picks
# The measures of a mixture posterior decode from this many latent samples per row by
# default (the mixture's mean may fall between its components, where no expert put any mass).
MIXTURE_Z_SAMPLES = 16
# The most latent samples a measure decodes from (``z_samples``): each multiplies the rows a
# pass decodes, so more is refused before anything is drawn (docs/reliability.md, "Limits").
MAX_Z_SAMPLES = 10_000


def latent_noise(
    n_rows: int, samples: int, latent: int, *, dtype=torch.float32, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The noise a posterior's :meth:`~Posterior.sample` decodes from: ``[samples, n_rows,
    latent + 2]``, ``torch.randn(samples, n_rows, latent)`` then ``torch.rand(samples,
    n_rows, 2)`` from the same generator (on its device; the CPU without one)."""
    device = generator.device if generator is not None else "cpu"
    eps = torch.randn(samples, n_rows, latent, generator=generator, dtype=dtype, device=device)
    picks = torch.rand(samples, n_rows, NOISE_EXTRA, generator=generator, dtype=dtype, device=device)
    return torch.cat([eps, picks], dim=-1)


class Posterior:
    """The base of the posteriors: see the module docstring."""

    is_mixture = False

    def mean(self) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, noise: torch.Tensor, reference: Posterior | None = None) -> torch.Tensor:
        raise NotImplementedError

    def kl_to_prior(self) -> torch.Tensor:
        raise NotImplementedError

    def repeat(self, times: int) -> Posterior:
        """The posterior of ``times`` copies of the rows, one after the other (row-major
        blocks), as a stacked batch of muted copies is laid out."""
        raise NotImplementedError


class GaussianPosterior(Posterior):
    """``N(mean, diag var)``, ``mean, var [models, n, latent]`` (var > 0)."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor):
        if mean.ndim != 3 or var.shape != mean.shape:
            raise ModelError(
                f"GaussianPosterior: mean and var must both be [models, n, latent]; got {tuple(mean.shape)} and "
                f"{tuple(var.shape)}"
            )
        self._mean, self.var = mean, var

    def mean(self) -> torch.Tensor:
        return self._mean

    def sample(self, noise, reference=None):
        eps = noise[..., : self._mean.shape[-1]].to(self._mean.dtype)  # [samples, n, latent]
        return self._mean.unsqueeze(1) + torch.sqrt(self.var).unsqueeze(1) * eps.unsqueeze(0)

    def kl_to_prior(self):
        # (expm1(log v) - log v)/2: accurate where v is near 1 (a collapsed dimension)
        mean, logvar = self._mean.double(), torch.log(self.var.double())
        return 0.5 * (mean * mean + torch.expm1(logvar) - logvar)

    def repeat(self, times):
        return GaussianPosterior(self._mean.repeat(1, times, 1), self.var.repeat(1, times, 1))


class MixturePosterior(Posterior):
    """A mixture of ``K`` diagonal Gaussians: ``means, vars [models, n, K, latent]``,
    ``log_weights [models or 1, n, K]`` (normalised here; ``-inf`` where a component is
    absent; at least one present per row)."""

    is_mixture = True

    def __init__(
        self,
        means: torch.Tensor,
        vars: torch.Tensor,
        log_weights: torch.Tensor,
        reference_log_weights: torch.Tensor | None = None,
        *,
        family: str = "gaussian",
    ):
        if means.ndim != 4 or vars.shape != means.shape:
            raise ModelError(
                f"MixturePosterior: means and vars must both be [models, n, K, latent]; got {tuple(means.shape)} "
                f"and {tuple(vars.shape)}"
            )
        if log_weights.ndim != 3 or log_weights.shape[1:] != means.shape[1:3]:
            raise ModelError(
                f"MixturePosterior: log_weights must be [models or 1, n, K] = [., {means.shape[1]}, {means.shape[2]}]; "
                f"got {tuple(log_weights.shape)}"
            )
        if family not in LATENT_FAMILIES:
            raise ModelError(f"MixturePosterior: family {family!r}; expected one of {', '.join(LATENT_FAMILIES)}")
        self.family = family
        self.means, self.vars = means, vars
        self.log_weights = torch.log_softmax(log_weights.to(means.dtype), dim=-1)
        # The complete row's weights, [K] or broadcastable to log_weights: what sample()
        # couples to when no reference is given (MMVAE's: every modality's expert alike).
        self.reference_log_weights = (
            None
            if reference_log_weights is None
            else torch.log_softmax(torch.as_tensor(reference_log_weights).to(means.device, means.dtype), dim=-1)
        )

    @property
    def weights(self) -> torch.Tensor:
        return torch.exp(self.log_weights)

    def mean(self):
        return (self.weights.unsqueeze(-1) * self.means).sum(-2)

    def sample(self, noise, reference=None):
        latent = self.means.shape[-1]
        eps, pick, repick = noise[..., :latent], noise[..., latent], noise[..., latent + 1]  # [S, n, .]
        w = self.weights.unsqueeze(1)  # [models or 1, 1, n, K]
        if reference is not None:
            w_ref = reference.weights.unsqueeze(1)
        elif self.reference_log_weights is not None:
            w_ref = torch.exp(self.reference_log_weights).expand_as(self.log_weights).unsqueeze(1)
        else:
            w_ref = w
        chosen = _coupled_choice(w, w_ref, pick.to(w.dtype), repick.to(w.dtype))  # [models or 1, S, n] long
        index = chosen.unsqueeze(-1).unsqueeze(-1).expand(*chosen.shape, 1, latent)
        models = self.means.shape[0]
        index = index.expand(models, *index.shape[1:])
        mu = self.means.unsqueeze(1).expand(-1, index.shape[1], -1, -1, -1).gather(3, index).squeeze(3)
        sd = torch.sqrt(self.vars).unsqueeze(1).expand(-1, index.shape[1], -1, -1, -1).gather(3, index).squeeze(3)
        eps = eps.to(mu.dtype)
        if self.family == "laplace":  # ε's normal quantile, as a Laplace draw of unit variance
            u = (0.5 * torch.erfc(-eps / math.sqrt(2))).clamp(1e-12, 1 - 1e-12) - 0.5
            eps = -torch.sign(u) * torch.log1p(-2 * u.abs()) / math.sqrt(2)
        return mu + sd * eps.unsqueeze(0)

    def kl_to_prior(self):
        mean, var = self.means.double(), self.vars.double()
        if self.family == "laplace":
            component = Laplace(mean, torch.sqrt(var / 2), validate_args=False)
            kl = kl_divergence(component, Normal(torch.zeros_like(mean), torch.ones_like(mean)))
        else:
            kl = 0.5 * (var + mean * mean - 1.0 - torch.log(var))  # [models, n, K, latent]
        w = self.weights.double().unsqueeze(-1)
        return torch.where(w > 0, w * kl, torch.zeros_like(kl)).sum(-2)

    def repeat(self, times):
        ref = self.reference_log_weights
        if ref is not None and ref.ndim == 3:
            ref = ref.repeat(1, times, 1)
        return MixturePosterior(
            self.means.repeat(1, times, 1, 1),
            self.vars.repeat(1, times, 1, 1),
            self.log_weights.repeat(1, times, 1),
            ref,
            family=self.family,
        )


def _coupled_choice(w: torch.Tensor, w_ref: torch.Tensor, pick: torch.Tensor, repick: torch.Tensor) -> torch.Tensor:
    """The component each sample draws, maximally coupled to the reference's draw.
    ``w, w_ref [models or 1, 1, n, K]`` weights; ``pick, repick [S, n]`` uniforms.
    Returns ``[models or 1, S, n]`` component numbers."""
    k = w.shape[-1]
    cdf_ref = torch.cumsum(w_ref, -1)
    first = (cdf_ref <= pick.unsqueeze(-1)).sum(-1).clamp_max(k - 1)  # [., S, n]: the reference's component
    w_first = w.expand(-1, first.shape[1], -1, -1).gather(-1, first.unsqueeze(-1)).squeeze(-1)
    ref_first = w_ref.expand(-1, first.shape[1], -1, -1).gather(-1, first.unsqueeze(-1)).squeeze(-1)
    accept = torch.where(ref_first > 0, (w_first / ref_first).clamp_max(1.0), torch.zeros_like(w_first))
    # Rejected: the second uniform, rescaled to (0, 1) given rejection, picks from the residual.
    residual = (w - w_ref).clamp_min(0.0)
    total = residual.sum(-1, keepdim=True)
    residual = torch.where(total > 0, residual / total.clamp_min(1e-300), w)
    u = ((repick - accept) / (1 - accept).clamp_min(1e-12)).clamp(0.0, 1.0 - 1e-12)
    other = (torch.cumsum(residual, -1) <= u.unsqueeze(-1)).sum(-1)
    # A rounding gap at the top of the CDF must not pick an absent component.
    other = torch.minimum(other, (residual > 0).to(torch.long).cumsum(-1).argmax(-1, keepdim=False))
    kept = repick < accept
    return torch.where(kept, first, other)
