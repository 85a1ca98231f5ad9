"""MultiVae's models as latent models the measures take (docs/own_model.md; the
``intermodal[multivae]`` extra).

:func:`multivae` wraps trained MultiVae models (MVAE, MMVAE, MoPoE; several trained
models of one kind side by side) with :func:`~intermodal.adapters.subset_model.subsets`, reading
from each model what a hand-written wrapper gets wrong:

- **the posterior of a subset**, as the model defines it: MVAE's product of the subset's
  experts and the prior expert (``compute_mu_log_var_subset``); MMVAE's uniform mixture of
  the subset's experts; MoPoE's uniform mixture, over the non-empty subsets of the given
  modalities, of each subset's product (MultiVae's own ``_poe_fusion``). MoPoE's
  ``encode(..., return_mean=True)`` returns the mixture's mean for the full input but a
  single product for a subset, which is *not* that posterior; the adapter does not use it.
- **the prior** for the empty subset (the baseline), which MultiVae's ``encode`` refuses:
  N(0, I) for MVAE and MoPoE, MMVAE's own (learned) prior ``prior_dist(*pz_params)``;
- **the output families**: ``model_config.decoders_dist`` (``normal``, ``laplace``,
  ``bernoulli``, ``categorical``; ``normal`` where unset) with the fixed scale of
  ``decoder_dist_params[m]["scale"]`` (1.0 where unset). A fixed output scale σ divides
  every Gaussian divergence by σ² (docs/method.md §5b): the table's ``likelihood`` column
  says which scale the numbers come from.

MultiVae is imported only when a model is wrapped; the adapter needs the model objects,
not MultiVae's data classes beyond ``DatasetOutput``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import torch

from ..data.description import DatasetDescription
from ..errors import ModelError
from ..model.likelihoods import Likelihood
from ..model.posterior import GaussianPosterior, MixturePosterior, Posterior
from .subset_model import SubsetModel

__all__ = ["MultiVaeModel", "multivae", "SUPPORTED", "likelihood_of"]

SUPPORTED = ("MVAE", "MMVAE", "MoPoE")
_FAMILY = {"normal": "gaussian", "laplace": "laplace", "bernoulli": "bernoulli", "categorical": "categorical"}


class MultiVaeModel(SubsetModel):
    """MultiVae models of one kind as one :class:`~intermodal.model.protocol.LatentModel`
    (built by :func:`multivae`). ``kind`` is the model's name (``MVAE``, ``MMVAE``,
    ``MoPoE``); ``models`` the wrapped models, in order."""

    def __init__(self, models: list, description: DatasetDescription, kind: str):
        self.models, self.kind = models, kind
        first = models[0]
        modalities = list(first.encoders.keys())
        self._order = modalities  # MultiVae's modality order: MMVAE's components, MoPoE's subsets
        config = first.model_config
        self._laplace_latent = kind == "MMVAE" and getattr(config, "prior_and_posterior_dist", "") == (
            "laplace_with_softmax"
        )
        self._latent_family = "laplace" if self._laplace_latent else "gaussian"
        if kind == "MoPoE":
            self._subsets = [tuple(mods) for key, mods in first.subsets.items() if key != ""]
        super().__init__(
            self._encode_subset_of_models,
            self._decode_models,
            description,
            latent_size=int(config.latent_dim),
            likelihoods={m: likelihood_of(config, m) for m in description.modality_names},
            n_models=len(models),
            prior=self._prior_posterior if kind == "MMVAE" else None,
            reference_log_weights=self._reference_log_weights(),
            parameters=lambda: itertools.chain.from_iterable(m.parameters() for m in models),
            name=f"multivae.{kind}",
        )

    # ---------------------------------------------------------------- posteriors
    def _reference_log_weights(self) -> torch.Tensor | None:
        """The complete row's mixture weights: every modality's expert alike (MMVAE), every
        subset alike (MoPoE); the prior slot not at all."""
        if self.kind == "MMVAE":  # the modalities' slots, then the prior's
            return torch.cat([torch.zeros(len(self._order)), torch.full((1,), -math.inf)])
        if self.kind == "MoPoE":  # the prior (a Gaussian, every modality hidden) gets a slot of its own
            return torch.zeros(len(self._subsets))
        return None

    def _encode_subset_of_models(self, subset: tuple[str, ...], inputs: dict[str, torch.Tensor]) -> Posterior:
        with _evaluating(self.models):
            parts = [self._encode_one(model, subset, inputs) for model in self.models]
        # the models are of one kind, so their posteriors are too
        if isinstance(parts[0], GaussianPosterior):
            gaussians = cast(list[GaussianPosterior], parts)
            return GaussianPosterior(torch.cat([p.mean() for p in gaussians]), torch.cat([p.var for p in gaussians]))
        mixtures = cast(list[MixturePosterior], parts)
        return MixturePosterior(
            torch.cat([p.means for p in mixtures]),
            torch.cat([p.vars for p in mixtures]),
            torch.cat([p.log_weights.expand(1, -1, -1) for p in mixtures]),
            family=mixtures[0].family,
        )

    def _encode_one(self, model, subset, inputs) -> Posterior:
        from multivae.data.datasets.base import DatasetOutput

        if self.kind == "MVAE":
            mu, logvar = model.compute_mu_log_var_subset(DatasetOutput(data=dict(inputs)), list(subset))
            return GaussianPosterior(mu[None], torch.exp(logvar)[None])
        experts = {m: model.encoders[m](inputs[m]) for m in subset}
        n = next(iter(inputs.values())).shape[0]
        latent = self.latent_size
        if self.kind == "MMVAE":
            k = len(self._order)
            like = next(iter(experts.values())).embedding
            means = like.new_zeros(n, k + 1, latent)
            variances = like.new_ones(n, k + 1, latent)
            log_weights = like.new_full((n, k + 1), -math.inf)
            for j, m in enumerate(self._order):
                if m in experts:
                    scale = model.log_var_to_std(experts[m].log_covariance)  # std, or the Laplace scale
                    means[:, j] = experts[m].embedding
                    variances[:, j] = _variance(scale, self._laplace_latent)
                    log_weights[:, j] = 0.0
            return MixturePosterior(means[None], variances[None], log_weights[None], family=self._latent_family)
        # MoPoE: every non-empty subset of the given modalities, each its product (MultiVae's own
        # _poe_fusion, which adds the prior expert to the subset of every modality).
        like = next(iter(experts.values())).embedding
        k = len(self._subsets)
        means = like.new_zeros(n, k, latent)
        variances = like.new_ones(n, k, latent)
        log_weights = like.new_full((n, k), -math.inf)
        given = set(subset)
        for j, mods in enumerate(self._subsets):
            if not set(mods) <= given:
                continue
            mu = torch.stack([experts[m].embedding for m in mods])
            logvar = torch.stack([experts[m].log_covariance for m in mods])
            s_mu, s_logvar = model._poe_fusion(mu, logvar)
            means[:, j], variances[:, j] = s_mu.reshape(n, latent), torch.exp(s_logvar).reshape(n, latent)
            log_weights[:, j] = 0.0
        return MixturePosterior(means[None], variances[None], log_weights[None])

    def _prior_posterior(self, n: int, dtype, device) -> Posterior:
        """MMVAE's prior as the last slot of its mixture (the slots of the modalities empty)."""
        k = len(self._order)
        means, variances = [], []
        with _evaluating(self.models):
            for model in self.models:
                mean, scale = model.pz_params
                means.append(mean.reshape(-1).to(dtype=dtype, device=device))
                variances.append(_variance(scale.reshape(-1), self._laplace_latent).to(dtype=dtype, device=device))
        latent = self.latent_size
        m = len(self.models)
        all_means = torch.zeros(m, n, k + 1, latent, dtype=dtype, device=device)
        all_vars = torch.ones_like(all_means)
        all_means[:, :, k] = torch.stack(means)[:, None]
        all_vars[:, :, k] = torch.stack(variances)[:, None]
        log_weights = torch.full((1, n, k + 1), -math.inf, dtype=dtype, device=device)
        log_weights[..., k] = 0.0
        return MixturePosterior(all_means, all_vars, log_weights, family=self._latent_family)

    # ---------------------------------------------------------------- decoder
    def _decode_models(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, list[torch.Tensor]] = {m: [] for m in self.description.modality_names}
        with _evaluating(self.models):
            for k, model in enumerate(self.models):
                for m in out:
                    out[m].append(model.decoders[m](z[k]).reconstruction.reshape(z.shape[1], -1))
        return {m: torch.stack(v) for m, v in out.items()}


def _variance(scale: torch.Tensor, laplace: bool) -> torch.Tensor:
    """A latent distribution's variance from its scale: σ² (Gaussian), 2b² (Laplace)."""
    return 2 * scale**2 if laplace else scale**2


@contextlib.contextmanager
def _evaluating(models: Sequence[torch.nn.Module]):
    """The models in eval mode for the call, their modes restored after (a library call
    leaves the user's objects as it found them)."""
    modes = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)


def likelihood_of(config, modality: str) -> Likelihood:
    """The :class:`~intermodal.model.likelihoods.Likelihood` of one modality of a MultiVae
    model's config: ``decoders_dist[m]`` (``normal`` where unset) with the fixed
    ``decoder_dist_params[m]["scale"]`` (1.0 where unset) for ``normal`` and ``laplace``."""
    dists = getattr(config, "decoders_dist", None) or {}
    params = getattr(config, "decoder_dist_params", None) or {}
    dist = dists.get(modality, "normal")
    if dist not in _FAMILY:
        raise ModelError(
            f"MultiVae model: modality {modality!r} has decoder distribution {dist!r}; intermodal measures "
            f"{', '.join(_FAMILY)}"
        )
    family = _FAMILY[dist]
    if family in ("gaussian", "laplace"):
        scale = (params.get(modality) or {}).get("scale", 1.0)
        return Likelihood(family, float(scale))
    return Likelihood(family)


def multivae(models, description: DatasetDescription) -> MultiVaeModel:
    """Trained MultiVae models as one latent model for the measures, prediction, the
    diagnostics and :func:`~intermodal.evaluation.checks.check_model`.

    Parameters
    ----------
    models : a MultiVae model (MVAE, MMVAE or MoPoE), or a list of models of one kind with
        the same modalities and latent size (e.g. seeds), held side by side as ``n_models``.
    description : the data set's description. Its modalities must be the models'
        (``model.encoders``' names), each modality's input its columns in the description's
        order (every time step, ``columns_of(m)``), of the size the model's
        ``input_dims`` says.

    Returns
    -------
    :class:`MultiVaeModel`: hides whole modalities only (``vision@t-1`` is refused); its
    output families and fixed scales are read from each model's config.
    """
    if not isinstance(description, DatasetDescription):
        raise ModelError(f"description: expected an intermodal DatasetDescription; got {type(description).__name__}")
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise ModelError("multivae: no model given")
    kinds = {getattr(m, "model_name", type(m).__name__) for m in models}
    if len(kinds) != 1:
        raise ModelError(f"multivae: the models must be of one kind; got {sorted(kinds)}")
    kind = kinds.pop()
    if kind not in SUPPORTED:
        raise ModelError(
            f"multivae: {kind} is not adapted yet (supported: {', '.join(SUPPORTED)}); wrap it with "
            "intermodal.adapters.subsets(encode, decode, description, ...)"
        )
    first = models[0]
    names = list(first.encoders.keys())
    if sorted(names) != sorted(description.modality_names):
        raise ModelError(
            f"multivae: the model's modalities {names} are not the description's {description.modality_names}"
        )
    for model in models[1:]:
        if list(model.encoders.keys()) != names or model.model_config.latent_dim != first.model_config.latent_dim:
            raise ModelError("multivae: the models must have the same modalities and latent size")
        for m in names:
            if likelihood_of(model.model_config, m) != likelihood_of(first.model_config, m):
                raise ModelError(f"multivae: the models' output distributions differ for {m!r}")
    dims = getattr(first.model_config, "input_dims", None) or {}
    for m in names:
        expected = len(description.columns_of(m))
        if m in dims and dims[m] is not None and int(np.prod(dims[m])) != expected:
            raise ModelError(
                f"multivae: modality {m!r} has input_dims {tuple(dims[m])}; the description gives it {expected} "
                "columns (every time step)"
            )
    return MultiVaeModel(models, description, kind)
