"""The measures as a run config asks for them: on which rows, with which latent noise and
extra pairs, during training (:func:`make_evaluator`, the function the trainer calls every
K epochs) and afterwards on a run's trained models (:func:`measure_run`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.dataset import Dataset
from ..data.digits import digits_pairs
from ..data.sim_truth import ground_truth_of
from ..errors import ConfigError
from ..model.group import groups_of
from ..model.protocol import view_of
from ..streams import Purpose, torch_generator
from ..training import runfolder
from ..training.config import RunConfig
from .diagnostics import latent_diagnostics
from .divergences import as_rows, resolved_decoding
from .lattice import modality_shares
from .measures import evaluation_rows, integration_measures, measure_specs

__all__ = [
    "DEFAULT_EVALUATION_ROWS",
    "evaluation_rows_of",
    "evaluation_generator",
    "measured_pairs",
    "make_evaluator",
    "with_decoding",
    "measure_run",
]

logger = logging.getLogger("intermodal")

DEFAULT_EVALUATION_ROWS = 1024  # the paper's: the first 1024 rows of the iCub test file


def evaluation_rows_of(config: RunConfig, dataset: Dataset, *, say: bool = False) -> np.ndarray:
    """The test rows a run's measures are taken on (``eval_rows``, ``n_eval_rows``,
    ``eval_seed``); ``n_eval_rows`` None means 1024, or the whole test part when it is
    smaller (``say`` logs that)."""
    n = config.n_eval_rows
    if n is None:
        n = min(DEFAULT_EVALUATION_ROWS, len(dataset.test))
        if n < DEFAULT_EVALUATION_ROWS and config.eval_rows != "all" and say:
            logger.info(
                "note: the test part holds %d rows, fewer than %d; the measures use all %d "
                "(set --n-eval-rows to choose)",
                len(dataset.test),
                DEFAULT_EVALUATION_ROWS,
                n,
            )
    try:
        return evaluation_rows(dataset.test, mode=config.eval_rows, n=n, seed=config.eval_seed)
    except ConfigError as e:
        raise ConfigError(f"{e} (options --n-eval-rows and --eval-rows)") from None


def evaluation_generator(eval_seed: int, epoch: int) -> torch.Generator:
    """The generator of the latent noise of the evaluation after ``epoch`` epochs (with
    ``--z-samples``): derived from the evaluation seed and the epoch alone, so an evaluation
    draws the same noise whether or not the run was interrupted and resumed before it. The
    noise is the same for every model of the ensemble (docs/method.md §5), so a model gets
    the numbers it gets alone, and schedules are compared on paired noise."""
    return torch_generator(Purpose.EVALUATION_NOISE, eval_seed, epoch)


def measured_pairs(config: RunConfig, description) -> dict:
    """The extra pairs a run measures: with ``ground_truth`` on the simulator's data or the
    digits, the pairs their checks need (:func:`intermodal.data.sim_truth.ground_truth_of`,
    :func:`intermodal.data.digits.digits_pairs`), then
    the config's ``extra_pairs`` (a name in both is the user's)."""
    pairs = {}
    if config.ground_truth:
        truth = ground_truth_of(description)
        if truth is not None:
            pairs.update(truth.pairs)
        pairs.update(digits_pairs(description) or {})
    pairs.update(config.extra_pairs or {})
    return pairs


def make_evaluator(config: RunConfig, dataset: Dataset, *, say: bool = False):
    """The function the trainer calls every K epochs: every measure for every modality and
    the latent diagnostics, for all models at once. A bad extra pair fails here, before
    anything is written."""
    rows = evaluation_rows_of(config, dataset, say=say)
    description = dataset.description
    pairs = measured_pairs(config, description) or None
    measure_specs(description, pairs)

    def evaluate(model, epoch: int) -> dict[str, pd.DataFrame]:
        parts = config.shares if shares_due(config, epoch) else None
        results = with_decoding(_measures(model, rows, description, config, pairs, epoch, parts), model, rows, config)
        diagnostics = latent_diagnostics(model, rows, description=description)
        return {"results": results, "diagnostics": diagnostics}

    return evaluate


def shares_due(config: RunConfig, epoch: int) -> bool:
    """Whether the evaluation after ``epoch`` epochs adds the lattice measures: with
    ``shares`` on, at the last epoch and every ``shares_every`` epochs."""
    if config.shares is None:
        return False
    return epoch == config.epochs or bool(config.shares_every and epoch % config.shares_every == 0)


def _measures(model, rows, description, config: RunConfig, pairs, epoch: int, parts: str | None) -> pd.DataFrame:
    """The measures after ``epoch`` epochs, and with ``parts`` (``"modalities"`` or
    ``"steps"``) the lattice's shares and interactions, in the same calls so that the muted
    copies they share decode once."""
    options = dict(
        description=description,
        z_samples=config.z_samples,
        divergence=config.divergence,
        generator=evaluation_generator(config.eval_seed, epoch),
        extra_pairs=pairs,
    )
    if parts is None:
        return integration_measures(model, rows, **options)
    return modality_shares(model, rows, parts=parts, measures=True, **options)


def with_decoding(table: pd.DataFrame, model, rows, config: RunConfig) -> pd.DataFrame:
    """``table`` (a column ``model``, a position) with what each model's measures decoded
    from, as the run records it in its results: ``z_samples`` (0: the posterior's mean) and
    ``divergence`` (how the samples became a divergence: ``"per-sample"`` or
    ``"predictive"``; ``""`` for the mean), the config's None resolved per fusion as the
    measures resolve it (:func:`~intermodal.evaluation.divergences.resolved_decoding`)."""
    samples, kinds = [], []
    for _, group in groups_of(model):
        view = view_of(group)
        dtype, device = view.dtype_device(rows)
        x = as_rows(rows, group.description, dtype=dtype, device=device)
        n, kind = resolved_decoding(view, x, config.z_samples, config.divergence)
        samples += [n] * view.n_models
        kinds += [kind or ""] * view.n_models
    positions = table["model"].to_numpy()
    table = table.copy()
    table["z_samples"] = np.asarray(samples, dtype=np.int64)[positions]
    table["divergence"] = np.asarray(kinds, dtype=object)[positions]
    return table


def measure_run(
    path: str | Path,
    *,
    data_dir: str | None = None,
    eval_rows: str | None = None,
    n_eval_rows: int | None = None,
    z_samples: int | None = None,
    divergence: str | None = None,
    fusion: str | None = None,
    schedule: str | None = None,
    seed: int | None = None,
    shares: str | None = None,
) -> pd.DataFrame:
    """The measures of the models in a run folder or checkpoint (all, or those of one
    ``fusion``, ``schedule`` and/or ``seed``), on the evaluation rows of the data set they
    were trained on; the options override the run's. ``shares`` (``"modalities"`` or
    ``"steps"``) adds the lattice measures (:func:`~intermodal.evaluation.lattice.modality_shares`)
    whatever the run's config says. Columns: the model key columns (``fusion``,
    ``schedule``, ``seed``), ``quantity, modality, scope, value, likelihood``."""
    changes = dict(
        data_dir=data_dir, eval_rows=eval_rows, n_eval_rows=n_eval_rows, z_samples=z_samples, divergence=divergence
    )
    changes = {k: v for k, v in changes.items() if v is not None}
    loaded = runfolder.load_models(path, schedule, seed, changes, fusion=fusion)
    config = loaded.config
    rows = evaluation_rows_of(config, loaded.dataset)
    if shares is not None and shares not in ("modalities", "steps"):
        raise ConfigError(f"--shares {shares!r}: expected 'modalities' or 'steps'")
    description = loaded.dataset.description
    pairs = measured_pairs(config, description) or None
    table = _measures(loaded.model, rows, description, config, pairs, loaded.epochs_done, shares)
    return table.drop(columns="model")
