"""A run folder read back: its config, description and tables as a :class:`Run`, and its
trained models with the data set they were trained on (:func:`load_ensemble`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ...data.catalog import dataset_of
from ...data.dataset import Dataset
from ...data.description import DatasetDescription
from ...data.reading import read_mapping_file
from ...errors import DataError, RunFolderError
from ..config import MODEL_KEY_COLUMNS, ModelKey, RunConfig
from .folder import DESCRIPTION, DIAGNOSTICS, RESULTS, has_checkpoint, is_cluster_run, load_checkpoint, read_config
from .tables import RESULTS_COLUMNS, read_evaluation_table, read_history, read_prediction_errors

__all__ = ["Run", "read_run", "Ensemble", "load_ensemble"]


@dataclass
class Run:
    """The contents of one run folder, as read from disk.

    ``history``, ``results``, ``diagnostics`` (None without it) and ``prediction_errors``
    (None until ``intermodal predict RUN --tests``) are the tables of the module docstring;
    ``model_keys`` the :class:`ModelKey` of each model position."""

    path: Path
    config: RunConfig
    description: DatasetDescription | None
    history: pd.DataFrame
    results: pd.DataFrame
    diagnostics: pd.DataFrame | None
    prediction_errors: pd.DataFrame | None = None

    @property
    def model_keys(self) -> list[ModelKey]:
        return self.config.model_keys()

    @property
    def models(self) -> pd.DataFrame:
        """One row per model position: ``position`` and the :class:`ModelKey` columns."""
        frame = pd.DataFrame(self.model_keys, columns=MODEL_KEY_COLUMNS)
        frame.insert(0, "position", np.arange(len(frame)))
        return frame

    @property
    def has_checkpoint(self) -> bool:
        return has_checkpoint(self.path)

    @property
    def is_cluster_run(self) -> bool:
        return is_cluster_run(self.path)

    def load_ensemble(self, **changes) -> Ensemble:
        """The trained models and their data set (:func:`load_ensemble`)."""
        return load_ensemble(self.path, changes=changes or None)


def read_run(folder: str | Path, *, need_results: bool = True) -> Run:
    """Read a run folder's config, description and tables (see the module docstring).
    ``need_results``: a missing ``results.parquet`` is an error (else an empty table)."""
    folder = Path(folder)
    config = read_config(folder)
    description = None
    if (folder / DESCRIPTION).is_file():
        try:
            description = DatasetDescription.from_dict(
                read_mapping_file(folder / DESCRIPTION, "data set description"), origin=str(folder / DESCRIPTION)
            )
        except DataError as e:
            raise RunFolderError(str(e)) from None
    history = read_history(folder)
    if (folder / RESULTS).is_file() or need_results:
        results = read_evaluation_table(folder, RESULTS.removesuffix(".parquet"))
    else:
        results = pd.DataFrame(columns=RESULTS_COLUMNS)
    diagnostics = (
        read_evaluation_table(folder, DIAGNOSTICS.removesuffix(".parquet"))
        if (folder / DIAGNOSTICS).is_file()
        else None
    )
    return Run(folder, config, description, history, results, diagnostics, read_prediction_errors(folder))


class Ensemble(NamedTuple):
    """Trained models read back from a run folder or checkpoint, with what they need:
    ``model`` (its ``model_keys`` set; several fusions as
    :class:`~intermodal.model.group.ModelGroups`), the :class:`ModelKey` of each position,
    the run's config, the data set it was trained on and the epochs trained."""

    model: object
    model_keys: list[ModelKey]
    config: RunConfig
    dataset: Dataset
    epochs_done: int


def load_ensemble(
    path: str | Path,
    schedule: str | None = None,
    seed: int | None = None,
    changes: dict | None = None,
    *,
    fusion: str | None = None,
) -> Ensemble:
    """The trained ensemble of a run folder or checkpoint (all models, or those of one
    ``fusion``, ``schedule`` and/or ``seed``), the run's config (with ``changes`` applied)
    and the data set it was trained on, checked to have the columns the models were built
    for."""
    model, state, _, _ = load_checkpoint(path)
    keys = state["model_keys"]
    chosen = [
        i
        for i, k in enumerate(keys)
        if schedule in (None, k.schedule) and seed in (None, k.seed) and fusion in (None, k.fusion)
    ]
    if not chosen:
        which = f"fusion {fusion!r}, " if fusion is not None else ""
        raise RunFolderError(f"{path}: no model with {which}schedule {schedule!r} and seed {seed!r}; it holds {keys}")
    if len(chosen) < len(keys):
        model = model.select(chosen)
    config = RunConfig.from_dict(state["config"], origin=f"{path} state.json")
    if changes:
        config = config.updated(changes, origin="command line")
    dataset = dataset_of(config)
    if dataset.description.column_names() != model.description.column_names():
        raise RunFolderError(
            f"{path}: the data set {config.data!r} no longer has the columns the models were trained on"
        )
    return Ensemble(model, list(model.model_keys), config, dataset, int(state["epochs_done"]))
