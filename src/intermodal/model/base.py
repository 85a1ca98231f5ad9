"""What every fusion of the multimodal VAE shares (docs/method.md §2-3): an ensemble of
independent models with stacked parameters, Zambelli's decoder (shared layers, a slice per
modality, per-modality layers, a Gaussian head per modality), the loss's elementwise tail,
and the model protocol: the decoder's Gaussian for rows with some columns hidden.

Every parameter carries a leading model axis (``weight: [models, in, out]``) so that a
group of models trains as one batched computation; model ``k`` never sees another model's
numbers. How the encoder turns a (partly muted) row into a latent is each fusion's own, one
module each in :mod:`intermodal.model.fusions`, through the hooks :class:`EnsembleVAE`
documents.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..data.description import DatasetDescription
from ..errors import ModelError
from ..streams import initialisation
from .architecture import Architecture
from .likelihoods import SCALED_FAMILIES, Likelihood, Outputs
from .posterior import Posterior, latent_noise

__all__ = ["EnsembleVAE", "VARIANCE_FLOOR", "column_weights", "losses", "recon_constant"]

VARIANCE_FLOOR = 1e-4


def _floored_logvar(raw: torch.Tensor) -> torch.Tensor:
    # The original's log(exp(a) + 1e-4), a variance floored at 1e-4, written as the original
    # does (faster than logaddexp; docs/performance.md). It overflows where the original does
    # (a > 88 in float32, 709 in float64); the trainer then stops that model (isolated divergence).
    return torch.log(torch.exp(raw) + VARIANCE_FLOOR)


# Training's elementwise tail as two autograd functions with hand-derived gradients: the
# same values as _floored_logvar, the reparameterisation and losses(), in about a third of
# the passes over memory that autograd makes for them. tests/test_train.py checks values
# and gradients against that plain form.
class _LatentSample(torch.autograd.Function):
    """``z = mean + sqrt(v)·eps`` and ``KL(N(mean, v) ‖ N(0, 1))`` summed over the latent
    axis (1), with ``v = exp(raw) + 1e-4``. Features-first ``[models, latent, rows]``;
    the KL is ``[models, rows]``."""

    @staticmethod
    def forward(ctx, mean, raw, eps):
        e = torch.exp(raw)
        var = e + VARIANCE_FLOOR
        std = torch.sqrt(var)
        z = torch.addcmul(mean, std, eps)
        kl = (torch.log(var) - var - mean * mean + 1).sum(1) * -0.5
        ctx.save_for_backward(mean, e, var, std, eps)
        return z, kl

    @staticmethod
    def backward(ctx, grad_z, grad_kl):
        mean, e, var, std, eps = ctx.saved_tensors
        grad_kl = grad_kl.unsqueeze(1)
        grad_mean = torch.addcmul(grad_z, grad_kl, mean)
        # d z / d raw = eps·e / (2·std); d KL / d raw = (1 - 1/var)·e / 2
        grad_raw = (grad_z * eps / std + grad_kl * (1 - 1 / var)) * (0.5 * e)
        return grad_mean, grad_raw, None


class _GaussianNLL(torch.autograd.Function):
    """The reconstruction loss per row (docs/method.md §3) from the output Gaussian's mean and
    raw log-variance (variance ``exp(raw) + 1e-4``): ``Σ_i w_i·½((x_i−μ_i)²/σ_i² + log σ_i²)
    + constant``, features-first (``[models, columns, rows]`` -> ``[models, rows]``);
    ``column_weight [columns, 1]`` holds 1/d_m."""

    @staticmethod
    def forward(ctx, target, mean, raw, column_weight, constant):
        e = torch.exp(raw)
        var = e + VARIANCE_FLOOR
        diff = mean - target
        scaled = diff * diff / var
        recon = ((scaled + torch.log(var)) * (0.5 * column_weight)).sum(1) + constant
        ctx.save_for_backward(e, var, diff, scaled, column_weight)
        return recon

    @staticmethod
    def backward(ctx, grad):
        e, var, diff, scaled, column_weight = ctx.saved_tensors
        weighted = grad.unsqueeze(1) * column_weight / var
        grad_mean = weighted * diff
        grad_raw = weighted * (1 - scaled) * (0.5 * e)
        return None, grad_mean, grad_raw, None, None


class EnsembleVAE(nn.Module):
    """``n_models`` independent multimodal VAEs of one fusion, with stacked parameters.

    Parameters are named ``weights.<layer>`` ``[models, in, out]`` and ``biases.<layer>``
    ``[models, 1, out]``. Inside, activations are features-first, ``[models, features,
    rows]`` (names ending in ``_ff``): each layer is ``W^T h`` with the rows as the long,
    contiguous dimension (faster per training step than rows-first; docs/performance.md),
    and a modality's features are one contiguous block.

    A fusion is a subclass with a name (``fusion``, the key it is registered under in
    :data:`~intermodal.model.fusions.FUSIONS`; ``summary``, its name in words) that fills
    four hooks:

    - ``_build_encoder(self) -> None``: register the encoder's layers with :meth:`_add`
      (or :meth:`_stack`); called before the decoder's.
    - ``_posterior_ff(self, x_ff, muted) -> Posterior``: the posterior of inputs ``x_ff
      [models, columns, n]`` (features-first; muted columns hold the muted value) whose
      muted columns are ``muted [n, columns]`` (bool, True where muted).
    - ``training_noise(self, generator, n_rows, dtype) -> Tensor``: one model's noise for
      ``n_rows`` training rows, ``[n_rows, width]``, drawn from ``generator``.
    - ``training_losses(self, x_ff, target_ff, noise_ff) -> (recon, latent)``: each row's
      reconstruction and latent loss ``[models, rows]`` for inputs ``x_ff [models,
      columns, rows]`` (muted columns hold the muted value), targets ``target_ff`` (same
      shape) and noise ``noise_ff [models, width, rows]`` (``training_noise``'s rows,
      features-first).

    It then answers the model protocol (:class:`~intermodal.model.protocol.LatentModel`):
    ``posterior``, ``decode``, ``likelihoods``; and the plain one, ``output_gaussian``.
    """

    fusion = ""  # the fusion's name, its key in the registry (concat, poe, moe, mopoe)
    summary = ""  # the fusion in words, for the command line's help
    mixture_posterior = False  # whether the posterior is a mixture (the measures' default divergence: predictive)
    default_z_samples = 0  # latent samples the measures decode from by default (0: the posterior's mean)
    rows_per_model = True  # posterior() takes rows [models, n, columns], an input per model (a rollout's)
    valid_outputs = True  # decode() gives outputs of the right shape and positive scales by construction
    # buffers (register_buffer in __init__), declared for type checkers
    column_weight: torch.Tensor
    _input_index: torch.Tensor
    _output_index: torch.Tensor

    def __init__(
        self, description: DatasetDescription, arch: Architecture, n_models: int, *, dtype=torch.float32, device="cpu"
    ):
        super().__init__()
        arch.check(description)
        self.description, self.architecture, self.n_models = description, arch, int(n_models)
        # Which model each position holds (a list of ModelKey), where a trainer or a
        # checkpoint knows it; tables of measures and predictions are then labelled by it.
        self.model_keys: list | None = None
        self.n_columns = description.n_columns
        self.latent_size = arch.latent or description.n_columns
        self.modalities = description.modality_names
        self._dtype, self._device = dtype, device
        self._layers: list[tuple[str, int, int]] = []
        self._paired_heads: set[str] = set()
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        self.modality_columns = [description.columns_of(m) for m in self.modalities]
        self._build_encoder()
        self._build_decoder()
        self.register_buffer(
            "column_weight", torch.as_tensor(column_weights(description), dtype=dtype, device=device), persistent=False
        )
        self.recon_constant = recon_constant(description, self.latent_size)

    def _add(self, name: str, n_in: int, n_out: int, *, paired: bool = False) -> str:
        """Register a layer of every model; ``paired``: a mean and log-variance head computed
        as one product of width ``2·d`` (initialised as two layers of width ``d``)."""
        self._layers.append((name, n_in, n_out))
        shape = (self.n_models, n_in, n_out)
        self.weights[name] = nn.Parameter(torch.zeros(shape, dtype=self._dtype, device=self._device))
        self.biases[name] = nn.Parameter(torch.zeros(self.n_models, 1, n_out, dtype=self._dtype, device=self._device))
        if paired:
            self._paired_heads.add(name)
        return name

    def _stack(self, prefix: str, widths: list[int]) -> list[str]:
        return [self._add(f"{prefix}:{i}", a, b) for i, (a, b) in enumerate(zip(widths, widths[1:]))]

    def _build_encoder(self) -> None:
        """The fusion's hook: register the encoder's layers (see the class docstring)."""
        raise NotImplementedError

    def _build_decoder(self) -> None:
        """Zambelli's decoder: shared layers from z, cut into one slice per modality, each
        through its modality's layers and a Gaussian head onto the modality's columns."""
        arch = self.architecture
        self.shared_decoder_layers = self._stack("dec:shared", [self.latent_size] + arch.shared_decoder)
        self.slice_sizes = [arch.slices[m] for m in self.modalities]
        self.decoder_layers, self.output_heads = {}, {}
        # A Gaussian or Laplace head outputs a location and a raw log-variance per column
        # (one product of width 2·d); a Bernoulli or categorical head the logits alone.
        self._scaled = {m: self.description.modality(m).likelihood in SCALED_FAMILIES for m in self.modalities}
        for m, cols in zip(self.modalities, self.modality_columns):
            widths = [arch.slices[m]] + arch.decoders[m]
            self.decoder_layers[m] = self._stack(f"dec:{m}", widths)
            width = 2 * len(cols) if self._scaled[m] else len(cols)
            self.output_heads[m] = self._add(f"dec:{m}:head", widths[-1], width, paired=self._scaled[m])
        self._build_families()
        order = np.concatenate(self.modality_columns)
        self._identity_order = bool(np.array_equal(order, np.arange(self.n_columns)))
        # Every tensor the model holds lives on its device (a CPU index on a GPU tensor fails).
        self.register_buffer("_input_index", torch.as_tensor(order, device=self._device), persistent=False)
        self.register_buffer("_output_index", torch.as_tensor(np.argsort(order), device=self._device), persistent=False)

    def _build_families(self) -> None:
        """Which columns hold which output family (buffers on the model's device), for
        the reconstruction loss of a description that is not all Gaussian."""
        families = self.description.likelihoods
        self.all_gaussian = all(f == "gaussian" for f in families.values())
        if self.all_gaussian:
            return
        names = self.description.column_names()
        self._family_names = [f for f in ("gaussian", "laplace", "bernoulli") if f in families.values()]
        for f in self._family_names:
            cols = np.concatenate([self.description.columns_of(m) for m, g in families.items() if g == f])
            self.register_buffer(f"_family_{f}", torch.as_tensor(np.sort(cols), device=self._device), persistent=False)
        self._n_groups = 0
        for m, f in families.items():
            if f != "categorical":
                continue
            for step in self.description.time_steps:
                group = [names.index(f"{m}_{step}_{i}") for i in range(self.description.modality(m).size)]
                self.register_buffer(
                    f"_group_{self._n_groups}", torch.as_tensor(group, device=self._device), persistent=False
                )
                self._n_groups += 1

    # ---------------------------------------------------------------- set-up
    def reset_parameters(self, seeds: list[int]) -> None:
        """Initialise model ``k`` from ``seeds[k]`` alone, as the original: weights uniform
        in ±sqrt(1/(fan_in + fan_out)), biases 0, drawn layer by layer in registration
        order. A model's numbers do not depend on the other models in the group."""
        if len(seeds) != self.n_models:
            raise ModelError(f"need {self.n_models} seeds, got {len(seeds)}")
        with torch.no_grad():
            for k, seed in enumerate(seeds):
                gen = initialisation(seed)
                for name, n_in, n_out in self._layers:
                    # Paired heads (mean, log-variance) share one product; in the original
                    # each is its own layer, so each keeps that layer's fan_out.
                    fan_out = n_out // 2 if name in self._paired_heads else n_out
                    bound = math.sqrt(1.0 / (n_in + fan_out))
                    w = torch.rand(n_in, n_out, generator=gen, dtype=torch.float64) * (2 * bound) - bound
                    self.weights[name][k].copy_(w)
                    self.biases[name][k].zero_()

    @property
    def layer_shapes(self) -> list[tuple[str, int, int]]:
        return list(self._layers)

    # ---------------------------------------------------------------- layers
    def _linear(self, name: str, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.biases[name].transpose(1, 2), self.weights[name].transpose(1, 2), h)

    def _mlp(self, names: list[str], h: torch.Tensor) -> torch.Tensor:
        for name in names:
            h = torch.relu_(self._linear(name, h))  # in place: the product's output is fresh
        return h

    def _decode_raw(self, z_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the output Gaussian's mean and raw log-variance in column order, features-first
        h = self._mlp(self.shared_decoder_layers, z_ff)
        means, raws = [], []
        for m, s in zip(self.modalities, torch.split(h, self.slice_sizes, dim=1)):
            out = self._linear(self.output_heads[m], self._mlp(self.decoder_layers[m], s))
            # logits alone: a raw of 0 stands in (the Outputs' scale, ignored for these families)
            mu, raw = out.chunk(2, dim=1) if self._scaled[m] else (out, torch.zeros_like(out))
            means.append(mu)
            raws.append(raw)
        mean, raw = torch.cat(means, dim=1), torch.cat(raws, dim=1)
        if not self._identity_order:
            mean, raw = mean.index_select(1, self._output_index), raw.index_select(1, self._output_index)
        return mean, raw

    def decode_features_first(self, z_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`decode` for latents ``z_ff [models, latent, rows]``; returns
        ``[models, n_columns, rows]`` in column order."""
        mean, raw = self._decode_raw(z_ff)
        return mean, _floored_logvar(raw)

    def decode(self, z: torch.Tensor) -> Outputs:
        """The output Gaussians for latents ``z [models, rows, latent]``: ``Outputs(mean,
        std)``, each ``[models, rows, n_columns]`` in column order (the model protocol's
        ``decode``; std = sqrt(exp(raw) + 1e-4))."""
        mean, raw = self._decode_raw(z.transpose(1, 2).contiguous())
        std = torch.sqrt(torch.exp(raw) + VARIANCE_FLOOR)
        return Outputs(mean.transpose(1, 2), std.transpose(1, 2))

    def _recon(self, target_ff: torch.Tensor, z_ff: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss per row ``[models, rows]`` of ``target_ff`` from latents ``z_ff``."""
        return self._reconstruction(target_ff, *self._decode_raw(z_ff))

    def _reconstruction(self, target_ff: torch.Tensor, loc_ff: torch.Tensor, raw_ff: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss per row ``[models, rows]`` (docs/method.md §3, §5b): each
        column's negative log-likelihood under its modality's family, weighted by 1/d_m,
        plus the original code's constant for the Gaussian modalities. All Gaussian (the
        default): the fused form; otherwise per family."""
        if self.all_gaussian:
            return _GaussianNLL.apply(target_ff, loc_ff, raw_ff, self.column_weight[:, None], self.recon_constant)
        low, high = self.description.value_range
        weight = self.column_weight[:, None]
        total = loc_ff.new_zeros(loc_ff.shape[0], loc_ff.shape[2])
        for family in self._family_names:
            idx = getattr(self, f"_family_{family}")
            x, loc, raw = (t.index_select(1, idx) for t in (target_ff, loc_ff, raw_ff))
            if family == "bernoulli":  # the value as the probability of the range's upper end
                nll = torch.nn.functional.binary_cross_entropy_with_logits(
                    loc, (x - low) / (high - low), reduction="none"
                )
            else:
                var = torch.exp(raw) + VARIANCE_FLOOR
                if family == "gaussian":
                    nll = 0.5 * ((x - loc) ** 2 / var + torch.log(var))
                else:  # Laplace, scale b = sqrt(exp(raw) + 1e-4), as a Gaussian's σ
                    b = torch.sqrt(var)
                    nll = torch.abs(x - loc) / b + torch.log(2 * b)
            total = total + (nll * weight.index_select(0, idx)).sum(1)
        for k in range(self._n_groups):
            idx = getattr(self, f"_group_{k}")
            x, loc = target_ff.index_select(1, idx), loc_ff.index_select(1, idx)
            nll = -((x - low) / (high - low)) * torch.log_softmax(loc, dim=1)
            total = total + (nll * weight.index_select(0, idx)).sum(1)
        return total + self.recon_constant

    # ---------------------------------------------------------------- the model protocol
    @property
    def likelihoods(self) -> dict[str, Likelihood]:
        """Every modality's output distribution, its description's family: by default a
        Gaussian with a learned variance (floored at 1e-4), as Zambelli's decoder; Laplace
        with a learned scale ``b = sqrt(exp(raw) + 1e-4)``; Bernoulli or categorical
        logits."""
        return {m: Likelihood(self.description.modality(m).likelihood) for m in self.modalities}

    def posterior(self, rows, muted) -> Posterior:
        """The latent posterior for rows with the ``muted`` columns hidden (the model
        protocol's :meth:`~intermodal.model.protocol.LatentModel.posterior`).

        ``rows``: ``[n, columns]`` (the same for every model) or ``[models, n, columns]``,
        complete or not (hidden columns are set to the muted value here); ``muted``:
        ``[n, columns]`` bool, True where hidden. Returns a posterior over ``[models, n]``
        (the prior N(0, I) where an expert fusion is left with no expert)."""
        p = self.column_weight
        x = torch.as_tensor(rows, dtype=p.dtype, device=p.device)
        mask = torch.as_tensor(muted, device=p.device)
        if mask.dtype != torch.bool or mask.shape != x.shape[-2:]:
            raise ModelError(f"muted: expected a bool mask of shape {tuple(x.shape[-2:])}; got {tuple(mask.shape)}")
        x = torch.where(mask, torch.tensor(self.description.muted_value, dtype=p.dtype, device=p.device), x)
        if x.ndim == 2:
            x = x.expand(self.n_models, -1, -1)
        return self._posterior_ff(x.transpose(1, 2).contiguous(), mask)

    def _posterior_ff(self, x_ff: torch.Tensor, muted: torch.Tensor) -> Posterior:
        """The fusion's hook: the posterior for (muted) inputs ``x_ff [models, columns, n]``
        whose muted columns are ``muted [n, columns]``."""
        raise NotImplementedError

    def training_losses(
        self, x_ff: torch.Tensor, target_ff: torch.Tensor, noise_ff: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fusion's hook: each row's reconstruction and latent loss ``[models, rows]``
        for inputs ``x_ff``, targets ``target_ff`` ``[models, columns, rows]`` and noise
        ``noise_ff [models, width, rows]`` (:meth:`training_noise`'s, features-first)."""
        raise NotImplementedError

    def output_gaussian(self, rows, muted, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's Gaussian for rows with the ``muted`` columns hidden (the plain
        protocol, :class:`~intermodal.model.protocol.OutputGaussianModel`).

        ``rows``, ``muted``: as :meth:`posterior`. ``noise``: None decodes from the
        posterior's mean (a mixture's: the mean of the mixture); ``[samples, n, latent + 2]``
        from :meth:`latent_noise` decodes one latent sample per row and noise sample (a
        mixture's coupled to the complete row's component). Returns the mean and the
        variance ``[models, n, columns]`` (``[models, samples, n, columns]`` with noise)."""
        post = self.posterior(rows, muted)
        if noise is None:
            out = self.decode(post.mean())
            return out.loc, out.scale**2
        noise = torch.as_tensor(noise, dtype=self.column_weight.dtype, device=self.column_weight.device)
        z = post.sample(noise)  # [models, samples, n, latent]
        out = self.decode(z.reshape(self.n_models, -1, self.latent_size))
        shape = (*z.shape[:-1], self.n_columns)
        return out.loc.reshape(shape), (out.scale**2).reshape(shape)

    def latent_noise(self, n_rows: int, samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The noise a posterior's sample decodes from
        (:func:`~intermodal.model.posterior.latent_noise`): ``[samples, n_rows, latent + 2]``
        in the model's dtype, drawn on the generator's device (the CPU without one)."""
        return latent_noise(n_rows, samples, self.latent_size, dtype=self._dtype, generator=generator)

    def training_noise(self, generator: torch.Generator, n_rows: int, dtype: torch.dtype) -> torch.Tensor:
        """The fusion's hook: one epoch's noise for one model, ``[n_rows, width]``; by
        default ``torch.randn(n_rows, latent)`` (ε) for a Gaussian posterior."""
        return torch.randn(n_rows, self.latent_size, generator=generator, dtype=dtype)

    # ---------------------------------------------------------------- ensembles
    def select(self, models: list[int]):
        """A new ensemble holding copies of the given models (by position)."""
        idx = torch.as_tensor(models, device=self.column_weight.device)
        out = self._from_tensors(len(models), {n: p.detach().index_select(0, idx) for n, p in self.named_parameters()})
        if self.model_keys is not None:
            out.model_keys = [self.model_keys[i] for i in models]
        return out

    @staticmethod
    def concatenate(ensembles: list):
        """One ensemble holding copies of the models of several (same fusion and
        architecture), in order."""
        first = ensembles[0]
        tensors = {
            n: torch.cat([dict(e.named_parameters())[n].detach() for e in ensembles])
            for n, _ in first.named_parameters()
        }
        out = first._from_tensors(sum(e.n_models for e in ensembles), tensors)
        if all(e.model_keys is not None for e in ensembles):
            out.model_keys = [k for e in ensembles for k in e.model_keys]
        return out

    def same_kind(self, other) -> bool:
        """Whether ``other`` is an ensemble of the same fusion, architecture and data layout
        (so the two can be concatenated)."""
        return (
            type(other) is type(self)
            and other.architecture == self.architecture
            and other.description.column_names() == self.description.column_names()
            and other.column_weight.dtype == self.column_weight.dtype
        )

    def empty_like(self, n_models: int):
        """A new ensemble of this kind with ``n_models`` models (parameters zero)."""
        p = self.column_weight
        return type(self)(self.description, self.architecture, n_models, dtype=p.dtype, device=p.device)

    def _from_tensors(self, n_models: int, tensors: dict[str, torch.Tensor]):
        out = self.empty_like(n_models)
        with torch.no_grad():
            for n, param in out.named_parameters():
                param.copy_(tensors[n])
        return out


def column_weights(description: DatasetDescription) -> np.ndarray:
    """1/d_m for each column (d_m = the modality's number of columns), shape ``[n_columns]``."""
    sizes = np.array([description.columns_of(m).size for m in description.modality_names], dtype=np.float64)
    return 1.0 / sizes[description.modality_of_column()]


def recon_constant(description: DatasetDescription, latent_size: int) -> float:
    """Σ_m ½·(n_z/2)·log 2π / d_m over the Gaussian modalities: the original code's constant
    term of the reconstruction loss (with n_z the latent size, not d_m). Kept so loss values
    compare with the original's; it changes no gradient."""
    inverse_widths = sum(
        1.0 / description.columns_of(m.name).size for m in description.modalities if m.likelihood == "gaussian"
    )
    return 0.5 * (latent_size / 2) * math.log(2 * math.pi) * inverse_widths


def losses(description: DatasetDescription, latent_size: int, target, out_mean, out_logvar, z_mean, z_logvar):
    """Per-row reconstruction and latent loss (docs/method.md §3), each ``[models, rows]``.

    recon = Σ_m [ ½Σ_{i∈m}(x_i−μ_i)²/σ_i² + ½Σ_{i∈m} log σ_i² + ½·(n_z/2)·log 2π ] / d_m;
    latent = KL(N(z_mean, exp(z_logvar)) ‖ N(0, I)), summed over the latent dimensions.
    """
    w = torch.as_tensor(column_weights(description), dtype=out_mean.dtype, device=out_mean.device)
    sq = (target - out_mean) ** 2 * torch.exp(-out_logvar)
    recon = (0.5 * (sq + out_logvar) * w).sum(-1) + recon_constant(description, latent_size)
    latent = -0.5 * (1 + z_logvar - z_mean**2 - torch.exp(z_logvar)).sum(-1)
    return recon, latent
