"""A trained run, in memory or read back from its folder: one type, :class:`Run`, that
training returns and :func:`read_run` reads, so that the measures, prediction, figures and
the report take either alike; and a run's trained models with the data set they were
trained on (:func:`load_models`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...data.catalog import dataset_of
from ...data.dataset import Dataset
from ...data.description import DatasetDescription
from ...data.reading import read_mapping_file
from ...errors import DataError, RunFolderError
from ...model.base import EnsembleVAE
from ...model.group import ModelGroups
from ...options import path_argument
from .. import checkpoint
from ..config import MODEL_KEY_COLUMNS, ModelKey, RunConfig
from ..shards import Divergence, divergence_line
from .folder import (
    CHECKPOINT,
    CONFIG,
    DESCRIPTION,
    DIAGNOSTICS,
    RESULTS,
    checkpoint_state,
    controls_path,
    has_checkpoint,
    is_cluster_run,
    load_checkpoint,
    read_config,
)
from .tables import RESULTS_COLUMNS, read_evaluation_table, read_history, read_prediction_errors

__all__ = ["Run", "TrainingResult", "read_run", "load_models"]

_TABLES = ("history", "results", "diagnostics", "prediction_errors")


class Run:
    """A trained run: what ``im.train`` and the studies return (its models and tables in
    memory, and in its folder where it has one) and what ``im.load_run`` reads back from a
    run folder. Everything but ``config`` is read from the folder on first use.

    ``config``: the run's :class:`~intermodal.training.config.RunConfig`; ``path``: its run
    folder (None for a run kept in memory; ``out`` is the same); ``model_keys``: the
    :class:`ModelKey` of each model position, ``models`` the same as a table; ``model``: the
    trained ensemble (``model_keys`` set; several fusions as
    :class:`~intermodal.model.group.ModelGroups`), which the measures, prediction and checks
    also take as the run itself; ``dataset``: the data set it was trained on, checked to
    have the models' columns; ``description``: that data set's description;
    ``epochs_done``; ``diverged``: position ->
    :class:`~intermodal.training.shards.Divergence`; ``history``, ``results``,
    ``diagnostics`` (None without it) and ``prediction_errors`` (None until ``intermodal
    predict RUN --tests``): the tables :mod:`intermodal.training.runfolder` documents."""

    def __init__(
        self,
        config: RunConfig,
        path: str | Path | None = None,
        *,
        model_keys: list[ModelKey] | None = None,
        epochs_done: int | None = None,
        diverged: dict[int, Divergence] | None = None,
        description: DatasetDescription | None = None,
        model: EnsembleVAE | ModelGroups | None = None,
        dataset: Dataset | None = None,
        tables: dict[str, pd.DataFrame | None] | None = None,
    ):
        self.config = config
        self.path = Path(path) if path is not None else None
        self.model_keys = list(model_keys) if model_keys is not None else config.model_keys()
        self._epochs_done = epochs_done
        self._diverged = diverged
        self._description = description
        self._model = model
        self._dataset = dataset
        self._tables = tables

    def __repr__(self) -> str:
        where = f"path={str(self.path)!r}" if self.path is not None else "in memory"
        return f"Run({where}, {len(self.model_keys)} models, data {self.config.data!r})"

    # ------------------------------------------------------------------ what it is
    @property
    def out(self) -> Path | None:
        """The run folder (``path``), by the name the training functions give it."""
        return self.path

    def folder_for(self, purpose: str) -> Path:
        """The run folder, which ``purpose`` needs: a :class:`RunFolderError` naming it for
        a run kept in memory."""
        if self.path is None:
            raise RunFolderError(f"{purpose} needs a run folder; this run was kept in memory")
        return self.path

    @property
    def models(self) -> pd.DataFrame:
        """One row per model position: ``position`` and the :class:`ModelKey` columns."""
        frame = pd.DataFrame(self.model_keys, columns=MODEL_KEY_COLUMNS)
        frame.insert(0, "position", np.arange(len(frame)))
        return frame

    @property
    def controls(self) -> dict[str, Run]:
        """The ground-truth controls a study trained beside this run (``RUN/controls/NAME``,
        :mod:`intermodal.study.controls`), by name; empty for a run without them or kept in
        memory."""
        if self.path is None or not controls_path(self.path).is_dir():
            return {}
        found = sorted(p for p in controls_path(self.path).iterdir() if (p / CONFIG).is_file())
        return {p.name: read_run(p) for p in found}

    @property
    def has_checkpoint(self) -> bool:
        return self.path is not None and has_checkpoint(self.path)

    @property
    def is_cluster_run(self) -> bool:
        return self.path is not None and is_cluster_run(self.path)

    @property
    def description(self) -> DatasetDescription | None:
        if self._description is None and self._model is not None:
            self._description = self._model.description
        return self._description

    @property
    def epochs_done(self) -> int:
        """Epochs trained: the checkpoint's (else the history's) for a run read back."""
        if self._epochs_done is None:
            state = checkpoint_state(self.path) if self.path is not None else None
            if state is not None:
                self._epochs_done = int(state["epochs_done"])
            else:
                history = self.history
                self._epochs_done = int(history["epoch"].max()) + 1 if history is not None and len(history) else 0
        return self._epochs_done

    @property
    def diverged(self) -> dict[int, Divergence]:
        """The models whose training diverged, by position (from the checkpoint for a run read back)."""
        if self._diverged is None:
            state = (checkpoint_state(self.path) if self.path is not None else None) or {}
            position = {k: i for i, k in enumerate(self.model_keys)}
            keys = state.get("model_keys", [])
            self._diverged = {
                position[keys[int(k)]]: Divergence(**v)
                for k, v in state.get("diverged", {}).items()
                if keys[int(k)] in position
            }
        return self._diverged

    def divergence_lines(self) -> list[str]:
        """One line per model that diverged: which, when, and the likely cause."""
        return [divergence_line(self.model_keys[k], d) for k, d in sorted(self.diverged.items())]

    # ------------------------------------------------------------------ its models and data
    @property
    def model(self) -> EnsembleVAE | ModelGroups:
        """The trained ensemble, read from the run folder's checkpoint on first use."""
        if self._model is None:
            if self.path is None:
                raise RunFolderError("this run was kept in memory without its model")
            self._model = load_checkpoint(self.path).model
        return self._model

    @property
    def dataset(self) -> Dataset:
        """The data set the run was trained on, loaded on first use and checked to have the
        columns its models were built for."""
        if self._dataset is None:
            description = self.description if self.description is not None else self.model.description
            self._dataset = _checked_dataset(self.config, description, self.path)
        return self._dataset

    def load_models(self, **changes) -> Run:
        """The run with its models and data set loaded; ``changes``: config options that
        differ where they are used now (e.g. ``data_dir``, ``n_eval_rows``)."""
        if self.path is None:
            if not changes:
                return self
            config = self.config.updated(changes, origin="changes")
            return Run(config, model_keys=self.model_keys, model=self.model, tables=self._tables)
        return load_models(self.path, changes=changes or None)

    # ------------------------------------------------------------------ its tables
    def _table(self, name: str) -> pd.DataFrame | None:
        if self._tables is None:
            if self.path is None:
                return None
            self._tables = _read_tables(self.path, need_results=False)
        return self._tables.get(name)

    @property
    def history(self) -> pd.DataFrame:
        return self._table("history")

    @property
    def results(self) -> pd.DataFrame:
        table = self._table("results")
        return table if table is not None else pd.DataFrame(columns=RESULTS_COLUMNS)

    @property
    def diagnostics(self) -> pd.DataFrame | None:
        return self._table("diagnostics")

    @property
    def prediction_errors(self) -> pd.DataFrame | None:
        return self._table("prediction_errors")


# The name im.train's result had before it and a run read back were one type.
TrainingResult = Run


def read_run(folder: str | Path, *, need_results: bool = True) -> Run:
    """Read a run folder's config, description and tables (see the package docstring).
    ``need_results``: a missing ``results.parquet`` is an error (else an empty table)."""
    folder = path_argument(folder, "folder")
    config = read_config(folder)
    description = None
    if (folder / DESCRIPTION).is_file():
        try:
            description = DatasetDescription.from_dict(
                read_mapping_file(folder / DESCRIPTION, "data set description"), origin=str(folder / DESCRIPTION)
            )
        except DataError as e:
            raise RunFolderError(str(e)) from None
    return Run(config, folder, description=description, tables=_read_tables(folder, need_results=need_results))


def _read_tables(folder: Path, *, need_results: bool) -> dict[str, pd.DataFrame | None]:
    history = read_history(folder)
    if (folder / RESULTS).is_file() or need_results:
        results = read_evaluation_table(folder, RESULTS.removesuffix(".parquet"))
    else:
        results = None
    diagnostics = (
        read_evaluation_table(folder, DIAGNOSTICS.removesuffix(".parquet"))
        if (folder / DIAGNOSTICS).is_file()
        else None
    )
    return dict(zip(_TABLES, (history, results, diagnostics, read_prediction_errors(folder))))


def _checked_dataset(config: RunConfig, description: DatasetDescription, path: Path | None) -> Dataset:
    dataset = dataset_of(config)
    if dataset.description.column_names() != description.column_names():
        raise RunFolderError(
            f"{path}: the data set {config.data!r} no longer has the columns the models were trained on"
        )
    return dataset


def load_models(
    path: str | Path,
    schedule: str | None = None,
    seed: int | None = None,
    changes: dict | None = None,
    *,
    fusion: str | None = None,
) -> Run:
    """A run folder's (or checkpoint's) trained models, all or those of one ``fusion``,
    ``schedule`` and/or ``seed``, as a :class:`Run` holding them, the run's config from the
    checkpoint (with ``changes`` applied) and the data set it was trained on, checked to
    have the columns the models were built for. Its tables are the whole run's."""
    path = Path(path)
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
    assert model.model_keys is not None  # load_checkpoint labels the models (select keeps theirs)
    config = RunConfig.from_dict(state["config"], origin=f"{path} state.json")
    if changes:
        config = config.updated(changes, origin="command line")
    dataset = _checked_dataset(config, model.description, path)
    diverged = {
        new: Divergence(**state["diverged"][str(old)])
        for new, old in enumerate(chosen)
        if str(old) in state.get("diverged", {})
    }
    folder = path.parent if (path / checkpoint.STATE_FILE).is_file() or path.name.startswith(CHECKPOINT) else path
    return Run(
        config,
        folder,
        model_keys=list(model.model_keys),
        epochs_done=int(state["epochs_done"]),
        diverged=diverged,
        description=model.description,
        model=model,
        dataset=dataset,
    )
