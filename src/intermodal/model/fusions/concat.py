"""The multimodal VAE of Zambelli et al. (2020) (docs/method.md §2-3): per-modality encoders
whose outputs are concatenated into one shared encoder, a missing modality being a value
(the muted value) in the input. Fusion ``concat``, the paper's and the default; its numbers
are the original code's.
"""

from __future__ import annotations

import torch

from ..base import VARIANCE_FLOOR, EnsembleVAE, _floored_logvar, _LatentSample
from ..posterior import GaussianPosterior

__all__ = ["MultimodalVAE"]


class MultimodalVAE(EnsembleVAE):
    """``n_models`` independent multimodal VAEs of Zambelli's architecture, with stacked
    parameters.

    Shapes: inputs ``[models, rows, n_columns]`` (muted entries hold the muted value);
    outputs per model and row. Layers: ``enc:<modality>:<i>``, ``enc:shared:<i>``,
    ``enc:latent`` (mean and log-variance heads as one product), then the decoder of
    :class:`~intermodal.model.base.EnsembleVAE`.
    """

    fusion = "concat"
    summary = "Zambelli's concatenation"

    def _build_encoder(self) -> None:
        arch = self.architecture
        self.encoder_layers, width = {}, 0
        for m, cols in zip(self.modalities, self.modality_columns):
            widths = [len(cols)] + arch.encoders[m]
            self.encoder_layers[m] = self._stack(f"enc:{m}", widths)
            width += widths[-1]
        widths = [width] + arch.shared_encoder
        self.shared_encoder_layers = self._stack("enc:shared", widths)
        self.latent_head = self._add("enc:latent", widths[-1], 2 * self.latent_size, paired=True)
        self._modality_widths = [len(c) for c in self.modality_columns]

    # ---------------------------------------------------------------- encoder
    def _encode_raw(self, x_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the posterior's mean and raw log-variance (before the floor), features-first
        if not self._identity_order:
            x_ff = x_ff.index_select(1, self._input_index)
        parts = torch.split(x_ff, self._modality_widths, dim=1)
        h = torch.cat([self._mlp(self.encoder_layers[m], p) for m, p in zip(self.modalities, parts)], dim=1)
        h = self._mlp(self.shared_encoder_layers, h)
        mean, raw = self._linear(self.latent_head, h).chunk(2, dim=1)
        return mean, raw

    def encode_features_first(self, x_ff: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode` for inputs ``x_ff [models, n_columns, rows]``; returns
        ``[models, latent, rows]``."""
        mean, raw = self._encode_raw(x_ff)
        return mean, _floored_logvar(raw)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters for inputs ``x [models, rows, n_columns]``:
        ``mean, logvar [models, rows, latent]``."""
        mean, logvar = self.encode_features_first(x.transpose(1, 2).contiguous())
        return mean.transpose(1, 2), logvar.transpose(1, 2)

    def forward_features_first(self, x_ff: torch.Tensor, eps_ff: torch.Tensor | None = None):
        """:meth:`forward` with every tensor features-first (``[models, features, rows]``)."""
        z_mean, z_logvar = self.encode_features_first(x_ff)
        z = z_mean if eps_ff is None else z_mean + torch.exp(0.5 * z_logvar) * eps_ff
        out_mean, out_logvar = self.decode_features_first(z)
        return out_mean, out_logvar, z_mean, z_logvar

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None):
        """Encode ``x [models, rows, n_columns]``, draw ``z = mean + exp(logvar/2)·eps``
        (the posterior mean where ``eps`` is None), decode. Returns ``(out_mean, out_logvar,
        z_mean, z_logvar)``, each ``[models, rows, ·]``."""
        out = self.forward_features_first(
            x.transpose(1, 2).contiguous(), None if eps is None else eps.transpose(1, 2).contiguous()
        )
        return tuple(t.transpose(1, 2) for t in out)

    # ---------------------------------------------------------------- posterior
    def _posterior_ff(self, x_ff: torch.Tensor, muted: torch.Tensor) -> GaussianPosterior:
        # A muted column holds the muted value in the input (Zambelli's): the mask is not needed.
        mean, raw = self._encode_raw(x_ff)
        return GaussianPosterior(mean.transpose(1, 2), (torch.exp(raw) + VARIANCE_FLOOR).transpose(1, 2))

    def training_losses(self, x_ff: torch.Tensor, target_ff: torch.Tensor, noise_ff: torch.Tensor):
        """Per-row reconstruction and latent loss ``[models, rows]`` of inputs ``x_ff``,
        targets ``target_ff`` and noise ``noise_ff`` (ε) (each features-first), for training: the
        values of :meth:`forward_features_first` and :func:`~intermodal.model.base.losses`,
        with the elementwise tail fused (fewer passes over memory, hand-derived gradients)."""
        z_mean, z_raw = self._encode_raw(x_ff)
        z, latent = _LatentSample.apply(z_mean, z_raw, noise_ff)
        return self._reconstruction(target_ff, *self._decode_raw(z)), latent
