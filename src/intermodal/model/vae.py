"""The multimodal VAE of Zambelli et al. (2020) (docs/method.md §2-3), as an ensemble of
independent models.

Every parameter carries a leading model axis (``weight: [models, in, out]``) so that a
group of models trains as one batched computation; model ``k`` never sees another model's
numbers. Layer sizes come from an :class:`~intermodal.model.architecture.Architecture`,
which names its per-modality parts by the data set's modality names.
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

__all__ = ["MultimodalVAE", "VARIANCE_FLOOR", "column_weights", "losses", "recon_constant"]

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


class MultimodalVAE(nn.Module):
    """``n_models`` independent multimodal VAEs with stacked parameters.

    Shapes: inputs ``[models, rows, n_columns]`` (muted entries hold the muted value);
    outputs per model and row. Parameters are named ``weights.<layer>`` ``[models, in, out]``
    and ``biases.<layer>`` ``[models, 1, out]``.
    """

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
        self._layers: list[tuple[str, int, int]] = []
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()

        def add(name: str, n_in: int, n_out: int) -> str:
            self._layers.append((name, n_in, n_out))
            self.weights[name] = nn.Parameter(torch.zeros(n_models, n_in, n_out, dtype=dtype, device=device))
            self.biases[name] = nn.Parameter(torch.zeros(n_models, 1, n_out, dtype=dtype, device=device))
            return name

        self.encoder_layers, self.decoder_layers = {}, {}
        column_index, enc_width = [], 0
        for m in self.modalities:
            cols = description.columns_of(m)
            column_index.append(cols)
            widths = [len(cols)] + arch.encoders[m]
            self.encoder_layers[m] = [add(f"enc:{m}:{i}", a, b) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
            enc_width += widths[-1]
        widths = [enc_width] + arch.shared_encoder
        self.shared_encoder_layers = [add(f"enc:shared:{i}", a, b) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
        # Mean and log-variance heads as one product: [.., 2 * latent] split in half.
        self.latent_head = add("enc:latent", widths[-1], 2 * self.latent_size)
        widths = [self.latent_size] + arch.shared_decoder
        self.shared_decoder_layers = [add(f"dec:shared:{i}", a, b) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
        self.slice_sizes = [arch.slices[m] for m in self.modalities]
        self.output_heads = {}
        for m, cols in zip(self.modalities, column_index):
            widths = [arch.slices[m]] + arch.decoders[m]
            self.decoder_layers[m] = [add(f"dec:{m}:{i}", a, b) for i, (a, b) in enumerate(zip(widths, widths[1:]))]
            self.output_heads[m] = add(f"dec:{m}:head", widths[-1], 2 * len(cols))
        self._paired_heads = {self.latent_head, *self.output_heads.values()}
        order = np.concatenate(column_index)
        self.register_buffer("_input_index", torch.as_tensor(order), persistent=False)
        self._identity_order = bool(np.array_equal(order, np.arange(self.n_columns)))
        self.register_buffer("_output_index", torch.as_tensor(np.argsort(order)), persistent=False)
        self._modality_widths = [len(c) for c in column_index]
        self.register_buffer(
            "column_weight", torch.as_tensor(column_weights(description), dtype=dtype, device=device), persistent=False
        )
        self.recon_constant = recon_constant(description, self.latent_size)

    # ---------------------------------------------------------------- set-up
    def reset_parameters(self, seeds: list[int]) -> None:
        """Initialise model ``k`` from ``seeds[k]`` alone, as the original: weights uniform
        in ±sqrt(1/(fan_in + fan_out)), biases 0. A model's numbers do not depend on the
        other models in the group."""
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

    # ---------------------------------------------------------------- forward
    # Inside, activations are features-first, [models, features, rows] (names ending in
    # _ff): the products are W^T h with the rows as the long, contiguous dimension, which is
    # faster per training step than rows-first (docs/performance.md), and a modality's
    # features are one contiguous block.
    def _linear(self, name: str, h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.biases[name].transpose(1, 2), self.weights[name].transpose(1, 2), h)

    def _mlp(self, names: list[str], h: torch.Tensor) -> torch.Tensor:
        for name in names:
            h = torch.relu_(self._linear(name, h))  # in place: the product's output is fresh
        return h

    def _encode_raw(self, x_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the posterior's mean and raw log-variance (before the floor), features-first
        if not self._identity_order:
            x_ff = x_ff.index_select(1, self._input_index)
        parts = torch.split(x_ff, self._modality_widths, dim=1)
        h = torch.cat([self._mlp(self.encoder_layers[m], p) for m, p in zip(self.modalities, parts)], dim=1)
        h = self._mlp(self.shared_encoder_layers, h)
        mean, raw = self._linear(self.latent_head, h).chunk(2, dim=1)
        return mean, raw

    def _decode_raw(self, z_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the output Gaussian's mean and raw log-variance in column order, features-first
        h = self._mlp(self.shared_decoder_layers, z_ff)
        means, raws = [], []
        for m, s in zip(self.modalities, torch.split(h, self.slice_sizes, dim=1)):
            mu, raw = self._linear(self.output_heads[m], self._mlp(self.decoder_layers[m], s)).chunk(2, dim=1)
            means.append(mu)
            raws.append(raw)
        mean, raw = torch.cat(means, dim=1), torch.cat(raws, dim=1)
        if not self._identity_order:
            mean, raw = mean.index_select(1, self._output_index), raw.index_select(1, self._output_index)
        return mean, raw

    def encode_features_first(self, x_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode` for inputs ``x_ff [models, n_columns, rows]``; returns
        ``[models, latent, rows]``."""
        mean, raw = self._encode_raw(x_ff)
        return mean, _floored_logvar(raw)

    def decode_features_first(self, z_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`decode` for latents ``z_ff [models, latent, rows]``; returns
        ``[models, n_columns, rows]`` in column order."""
        mean, raw = self._decode_raw(z_ff)
        return mean, _floored_logvar(raw)

    def forward_features_first(self, x_ff: torch.Tensor, eps_ff: torch.Tensor | None = None):
        """:meth:`forward` with every tensor features-first (``[models, features, rows]``);
        what training uses."""
        z_mean, z_logvar = self.encode_features_first(x_ff)
        z = z_mean if eps_ff is None else z_mean + torch.exp(0.5 * z_logvar) * eps_ff
        out_mean, out_logvar = self.decode_features_first(z)
        return out_mean, out_logvar, z_mean, z_logvar

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters for inputs ``x [models, rows, n_columns]``:
        ``mean, logvar [models, rows, latent]``."""
        mean, logvar = self.encode_features_first(x.transpose(1, 2).contiguous())
        return mean.transpose(1, 2), logvar.transpose(1, 2)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output Gaussian for latents ``z [models, rows, latent]``:
        ``mean, logvar [models, rows, n_columns]`` in column order."""
        mean, logvar = self.decode_features_first(z.transpose(1, 2).contiguous())
        return mean.transpose(1, 2), logvar.transpose(1, 2)

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None):
        """Encode ``x [models, rows, n_columns]``, draw ``z = mean + exp(logvar/2)·eps``
        (the posterior mean where ``eps`` is None), decode. Returns ``(out_mean, out_logvar,
        z_mean, z_logvar)``, each ``[models, rows, ·]``."""
        out = self.forward_features_first(
            x.transpose(1, 2).contiguous(), None if eps is None else eps.transpose(1, 2).contiguous()
        )
        return tuple(t.transpose(1, 2) for t in out)

    def training_losses(self, x_ff: torch.Tensor, target_ff: torch.Tensor, eps_ff: torch.Tensor):
        """Per-row reconstruction and latent loss ``[models, rows]`` of inputs ``x_ff``,
        targets ``target_ff`` and noise ``eps_ff`` (each features-first), for training: the
        values of :meth:`forward_features_first` and :func:`losses`, with the elementwise
        tail fused (fewer passes over memory, hand-derived gradients)."""
        z_mean, z_raw = self._encode_raw(x_ff)
        z, latent = _LatentSample.apply(z_mean, z_raw, eps_ff)
        out_mean, out_raw = self._decode_raw(z)
        recon = _GaussianNLL.apply(target_ff, out_mean, out_raw, self.column_weight[:, None], self.recon_constant)
        return recon, latent

    def select(self, models: list[int]) -> MultimodalVAE:
        """A new ensemble holding copies of the given models (by position)."""
        idx = torch.as_tensor(models, device=self.column_weight.device)
        out = self._from_tensors(len(models), {n: p.detach().index_select(0, idx) for n, p in self.named_parameters()})
        if self.model_keys is not None:
            out.model_keys = [self.model_keys[i] for i in models]
        return out

    @staticmethod
    def concatenate(ensembles: list[MultimodalVAE]) -> MultimodalVAE:
        """One ensemble holding copies of the models of several (same architecture), in order."""
        first = ensembles[0]
        tensors = {
            n: torch.cat([dict(e.named_parameters())[n].detach() for e in ensembles])
            for n, _ in first.named_parameters()
        }
        out = first._from_tensors(sum(e.n_models for e in ensembles), tensors)
        if all(e.model_keys is not None for e in ensembles):
            out.model_keys = [k for e in ensembles for k in e.model_keys]
        return out

    def _from_tensors(self, n_models: int, tensors: dict[str, torch.Tensor]) -> MultimodalVAE:
        p = self.column_weight
        out = MultimodalVAE(self.description, self.architecture, n_models, dtype=p.dtype, device=p.device)
        with torch.no_grad():
            for n, param in out.named_parameters():
                param.copy_(tensors[n])
        return out


def column_weights(description: DatasetDescription) -> np.ndarray:
    """1/d_m for each column (d_m = the modality's number of columns), shape ``[n_columns]``."""
    sizes = np.array([description.columns_of(m).size for m in description.modality_names], dtype=np.float64)
    return 1.0 / sizes[description.modality_of_column()]


def recon_constant(description: DatasetDescription, latent_size: int) -> float:
    """Σ_m ½·(n_z/2)·log 2π / d_m: the original code's constant term of the reconstruction
    loss (with n_z the latent size, not d_m). Kept so loss values compare with the
    original's; it changes no gradient."""
    inverse_widths = sum(1.0 / description.columns_of(m).size for m in description.modality_names)
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
