"""The checks a researcher should run before trusting a wrapped model (docs/own_model.md).

:func:`check_model` asks a model the questions whose wrong answers give plausible, wrong
measures and no error: does the complete input compared with itself give 0, does a hidden
column leak into the output, does the same input give the same output, are the outputs of
the right shape and type with positive scales, and what can it hide. Each check is a line
with PASS, FAIL or NOTE; nothing is printed unless the caller prints the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import IntermodalError, ModelError
from ..model.group import groups_of
from ..model.protocol import ModelView, check_protocol, description_for, view_of
from .measures import as_model, as_rows

__all__ = ["Check", "ModelCheck", "check_model"]

# Outputs that differ by less than this (relative to their size) count as the same.
TOLERANCE = 1e-6


@dataclass(frozen=True)
class Check:
    """One check: its ``name``, ``status`` (``"PASS"``, ``"FAIL"`` or ``"NOTE"``: a fact, not
    a fault) and what it found (``detail``)."""

    name: str
    status: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"


@dataclass(frozen=True)
class ModelCheck:
    """What :func:`check_model` found: ``checks`` in order; ``ok`` when none failed;
    ``table`` as a DataFrame (``name, status, detail``); ``str()`` one line per check."""

    model: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame([(c.name, c.status, c.detail) for c in self.checks], columns=["name", "status", "detail"])

    def __str__(self) -> str:
        verdict = "every check passed" if self.ok else "FAILED: do not trust this model's measures yet"
        return "\n".join([f"check_model({self.model}): {verdict}", *(str(c) for c in self.checks)])

    def _repr_html_(self) -> str:  # a notebook shows the table
        return self.table.to_html(index=False)


def check_model(model, rows, *, description: DatasetDescription | None = None, seed: int = 0) -> ModelCheck:
    """Check a model (any of :mod:`intermodal.model.protocol`'s protocols, an adapter, a
    fusion of intermodal's) on some complete rows.

    Parameters
    ----------
    model : the model; an ensemble of several fusions is checked group by group.
    rows : array or tensor ``[n_rows, n_columns]`` of complete rows (a few dozen suffice).
    description : None (the model's own) or one with the model's columns.
    seed : seed of the values written into hidden columns by the leak check.

    Returns
    -------
    :class:`ModelCheck`: ``print(result)`` shows a line per check, ``result.ok`` is False
    if any failed. The checks: the protocol it answers and its output families; shapes,
    dtypes and positive scales; the complete input compared with itself gives 0; the same
    input gives the same output (or a note that it is stochastic); for every part it can
    hide (each modality, and each modality at each step where it hides columns), changing
    the hidden values changes nothing (no leak), everything hidden included; that a finer
    part than it can hide is refused; for a latent model, that its posterior's weights are
    normalised and its samples decode.
    """
    model = as_model(model)
    check_protocol(model)
    description = description_for(model, description)
    checks: list[Check] = []
    for start, group in groups_of(model):
        view = view_of(group)
        prefix = "" if start == 0 and len(groups_of(model)) == 1 else f"[{getattr(group, 'fusion', start)}] "
        checks += [Check(prefix + c.name, c.status, c.detail) for c in _check_view(view, rows, description, seed)]
    return ModelCheck(type(model).__name__, tuple(checks))


def _check_view(view: ModelView, rows, description: DatasetDescription, seed: int) -> list[Check]:
    out: list[Check] = []
    families = ", ".join(f"{m} {lik.label}" for m, lik in view.layout.likelihoods.items())
    protocol = {"latent": "LatentModel", "outputs": "OutputModel", "gaussian": "OutputGaussianModel"}[view.kind]
    out.append(Check("protocol", "NOTE", f"{protocol}, {view.n_models} model(s); outputs: {families}"))
    dtype, device = view.dtype_device(rows)
    x = as_rows(rows, description, dtype=dtype, device=device)
    n, c = x.shape
    none = torch.zeros(n, c, dtype=torch.bool, device=device)
    with torch.no_grad():
        try:
            first = view.outputs(x, none)
        except IntermodalError as e:
            out.append(Check("shapes and scales", "FAIL", str(e)))
            return out
        if first.loc.dtype != dtype:
            out.append(Check("shapes and scales", "FAIL", f"outputs are {first.loc.dtype}; the rows were {dtype}"))
        elif not bool(torch.isfinite(first.loc).all()):
            out.append(Check("shapes and scales", "FAIL", "the outputs hold a non-finite number"))
        else:
            out.append(
                Check("shapes and scales", "PASS", f"[{view.n_models}, {n}, {c}] {str(dtype).removeprefix('torch.')}")
            )
        self_kl = view.layout.kl_per_column(first, first).sum(-1).abs().max().item()
        out.append(
            Check(
                "complete input with itself",
                "PASS" if self_kl <= 1e-9 else "FAIL",
                f"largest divergence {self_kl:.3g} nats (must be 0)",
            )
        )
        second = view.outputs(x, none)
        difference = _difference(first, second)
        out.append(
            Check(
                "same input, same output",
                "PASS" if difference <= TOLERANCE else "NOTE",
                "deterministic"
                if difference <= TOLERANCE
                else f"stochastic: two calls differ by {difference:.3g}; the measures then hold its noise",
            )
        )
        out += _leak_checks(view, x, description, seed)
        out += _finer_checks(view, x, description)
        if view.kind == "latent":
            out += _latent_checks(view, x)
    return out


def _difference(a, b) -> float:
    """The largest difference between two outputs, relative to their size."""
    diff = max((a.loc - b.loc).abs().max().item(), (a.scale - b.scale).abs().max().item())
    size = max(a.loc.abs().max().item(), a.scale.abs().max().item(), 1.0)
    return diff / size


def _units(view: ModelView, description: DatasetDescription) -> list[tuple[str, np.ndarray]]:
    """The parts the model can hide, each with its mask: every modality, each modality at
    each step where it hides columns, and everything."""
    units = [(m, description.mask(m)) for m in description.modality_names]
    if view.hideable == "columns" and len(description.time_steps) > 1:
        for m in description.modality_names:
            if view.layout.likelihoods[m].family == "categorical":
                continue
            units += [(f"{m}@{s}", description.mask(f"{m}@{s}")) for s in description.time_steps]
    units.append(("everything", np.ones(description.n_columns, dtype=bool)))
    return units


def _leak_checks(view: ModelView, x: torch.Tensor, description: DatasetDescription, seed: int) -> list[Check]:
    gen = torch.Generator().manual_seed(seed)
    low, high = description.value_range
    leaks, refused, checked = [], [], 0
    for name, hidden in _units(view, description):
        mask = torch.as_tensor(hidden, device=x.device).expand(x.shape[0], -1)
        other = x.clone()
        noise = torch.rand(x.shape, generator=gen, dtype=torch.float64).to(x.dtype).to(x.device)
        other[mask] = (low + (high - low) * noise)[mask]
        try:
            a, b = view.outputs(x, mask), view.outputs(other, mask)
        except ModelError as e:
            refused.append(f"{name} ({e})")
            continue
        checked += 1
        if _difference(a, b) > TOLERANCE:
            leaks.append(f"{name} (changes the output by {_difference(a, b):.3g})")
    checks = []
    if leaks:
        found = "hidden values reach the output: " + "; ".join(leaks)
        checks.append(Check("no leak from hidden columns", "FAIL", found))
    else:
        checks.append(
            Check("no leak from hidden columns", "PASS", f"{checked} parts hidden, other values in them change nothing")
        )
    if refused:
        checks.append(Check("hidden parts refused", "FAIL", "; ".join(refused)))
    return checks


def _finer_checks(view: ModelView, x: torch.Tensor, description: DatasetDescription) -> list[Check]:
    if view.hideable == "columns":
        return [Check("what it can hide", "NOTE", "any column (hideable = 'columns')")]
    if len(description.time_steps) < 2:
        return [Check("what it can hide", "NOTE", "whole modalities")]
    m = description.modality_names[0]
    selector = f"{m}@{description.time_steps[0]}"
    try:
        view.check_hidden(description.mask(selector), f"hiding {selector!r}")
    except ModelError:
        return [Check("what it can hide", "PASS", f"whole modalities; a finer part ({selector!r}) is refused")]
    return [Check("what it can hide", "FAIL", f"declares whole modalities but accepts {selector!r}")]


def _latent_checks(view: ModelView, x: torch.Tensor) -> list[Check]:
    n, c = x.shape
    everything = torch.ones(n, c, dtype=torch.bool, device=x.device)
    post = view.posterior(x, torch.zeros_like(everything))
    checks = []
    if post.is_mixture and hasattr(post, "log_weights"):
        total = torch.logsumexp(post.log_weights, -1).abs().max().item()
        checks.append(
            Check("posterior", "PASS" if total < 1e-5 else "FAIL", f"a mixture, weights summing to 1 ({total:.2g} off)")
        )
    else:
        checks.append(Check("posterior", "NOTE", "a mixture" if post.is_mixture else "a Gaussian"))
    prior = view.posterior(x, everything).mean()
    spread = (prior - prior[:, :1]).abs().max().item()
    checks.append(
        Check(
            "everything hidden",
            "PASS" if spread <= TOLERANCE else "FAIL",
            "the same posterior for every row (its prior)" if spread <= TOLERANCE else f"differs by row ({spread:.3g})",
        )
    )
    noise = view.latent_noise(n, 2, torch.Generator().manual_seed(0)).to(x.device)
    sampled = view.sampled_outputs(x, torch.zeros_like(everything), noise)
    ok = tuple(sampled.loc.shape) == (view.n_models, 2, n, c) and bool(torch.isfinite(sampled.loc).all())
    checks.append(Check("latent samples decode", "PASS" if ok else "FAIL", f"{tuple(sampled.loc.shape)}"))
    return checks
