"""A run folder: the one module that knows its files and folders and their columns.
Training writes through it; measuring, figures, the report, the cluster backend and the
prediction baselines find their files through it. Nothing else spells these names.

Files of ``RUN/``::

    config.json               the resolved :class:`~intermodal.training.config.RunConfig`
    description.json          the data set's description
    environment.json          where each stretch of training ran: device, torch, precision
                              (intermodal.training.device.environment), one entry per start
    history.parquet           one row per model and epoch: HISTORY_COLUMNS
    results.parquet           one row per model, epoch, quantity, modality, scope: RESULTS_COLUMNS
    diagnostics.parquet       one row per model, epoch, latent dimension: DIAGNOSTICS_COLUMNS
    prediction_errors.parquet the prediction tests' errors (intermodal predict RUN --tests)
    baselines/                the prediction baselines (intermodal.evaluation.baselines)
    checkpoint/               weights, optimiser and generator states (intermodal.training.checkpoint)
    units/                    a study trained on a Ray cluster: plan.json, the driver's marker
                              (.driver-<token>) and one run folder per unit
    figures/                  PNG and SVG of each figure
    report.html               the report
    tracking/                 --track's local stores: tensorboard/ event files, mlflow.db
    .lock                     held by the one process writing the folder

Every file is written atomically and durably (:mod:`intermodal.files`). A model is named in
every table by the columns of :class:`~intermodal.training.config.ModelKey`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow

from ..data.catalog import DESCRIPTION_FILE, dataset_of
from ..data.dataset import Dataset
from ..data.description import DatasetDescription
from ..data.reading import read_mapping_file
from ..errors import ConfigError, DataError, RunFolderError
from ..files import atomic_write, write_json
from ..model.base import EnsembleVAE
from ..model.group import ModelGroups
from . import checkpoint
from .config import MODEL_KEY_COLUMNS, ModelKey, RunConfig

__all__ = [
    "CONFIG",
    "DESCRIPTION",
    "ENVIRONMENT",
    "HISTORY",
    "RESULTS",
    "DIAGNOSTICS",
    "PREDICTION_ERRORS",
    "CHECKPOINT",
    "BASELINES",
    "FIGURES",
    "REPORT",
    "UNITS",
    "HISTORY_COLUMNS",
    "RESULTS_COLUMNS",
    "DIAGNOSTICS_COLUMNS",
    "Run",
    "RunLock",
    "Ensemble",
    "writing",
    "start_run",
    "record_environment",
    "read_environment",
    "save_tables",
    "write_table_file",
    "read_config",
    "read_history",
    "read_table",
    "read_run",
    "load_ensemble",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "has_checkpoint",
    "checkpoint_state",
    "epochs_done",
    "baselines_path",
    "figures_path",
    "report_path",
    "tracking_path",
    "units_path",
    "unit_plan_path",
    "driver_marker_path",
    "driver_markers",
    "is_cluster_run",
    "row_model_keys",
    "merge_tables",
    "merge_runs",
]

CONFIG = "config.json"
DESCRIPTION = DESCRIPTION_FILE
ENVIRONMENT = "environment.json"
HISTORY = "history.parquet"
RESULTS = "results.parquet"
DIAGNOSTICS = "diagnostics.parquet"
PREDICTION_ERRORS = "prediction_errors.parquet"
CHECKPOINT = "checkpoint"
BASELINES = "baselines"
FIGURES = "figures"
REPORT = "report.html"
TRACKING = "tracking"
UNITS = "units"
UNIT_PLAN = "plan.json"
DRIVER_MARKER = ".driver-"  # units/.driver-<token>: which driver's units these are (intermodal.study.cluster)
LOCK = ".lock"

HISTORY_COLUMNS = [*MODEL_KEY_COLUMNS, "epoch", "beta", "reconstruction_loss", "latent_loss", "loss", "diverged"]
RESULTS_COLUMNS = [*MODEL_KEY_COLUMNS, "epoch", "quantity", "modality", "scope", "value"]
DIAGNOSTICS_COLUMNS = [*MODEL_KEY_COLUMNS, "epoch", "latent_dim", "kl", "posterior_mean_variance", "active"]
# "diverged" (True from the epoch a model's loss became non-finite) may be absent from
# tables written by other tools; it is then all False.
_REQUIRED_COLUMNS = {HISTORY: HISTORY_COLUMNS[:-1], RESULTS: RESULTS_COLUMNS, DIAGNOSTICS: DIAGNOSTICS_COLUMNS}
# Tables written before fusions were an option have no "fusion" column: they are concat's.
_OLD_REQUIRED = {name: [c for c in columns if c != "fusion"] for name, columns in _REQUIRED_COLUMNS.items()}
# The evaluation tables a run writes, by stem (the file is STEM.parquet).
EVALUATION_TABLES = (RESULTS.removesuffix(".parquet"), DIAGNOSTICS.removesuffix(".parquet"))


# --------------------------------------------------------------------------- where things are
def checkpoint_path(run: str | Path) -> Path:
    """The run's checkpoint folder (whether or not it exists yet)."""
    return Path(run) / CHECKPOINT


def has_checkpoint(run: str | Path) -> bool:
    """Whether the run has a checkpoint to continue from (the latest, or the one before it)."""
    return checkpoint.exists(checkpoint_path(run))


def checkpoint_state(run: str | Path) -> dict | None:
    """The JSON state of the run's latest checkpoint (None before the first); JSON only,
    unchecked: for polling progress."""
    return checkpoint.read_state(checkpoint_path(run))


def epochs_done(run: str | Path) -> int:
    """Epochs the run's latest checkpoint holds (0 before the first checkpoint)."""
    state = checkpoint_state(run)
    return int(state["epochs_done"]) if state else 0


def baselines_path(run: str | Path) -> Path:
    return Path(run) / BASELINES


def figures_path(run: str | Path) -> Path:
    return Path(run) / FIGURES


def report_path(run: str | Path) -> Path:
    return Path(run) / REPORT


def table_path(run: str | Path, stem: str) -> Path:
    return Path(run) / f"{stem}.parquet"


def tracking_path(run: str | Path) -> Path:
    """Where ``--track`` keeps its local stores unless told otherwise (``RUN/tracking``)."""
    return Path(run) / TRACKING


def units_path(run: str | Path) -> Path:
    """The folder of a cluster study's units (``RUN/units``)."""
    return Path(run) / UNITS


def unit_plan_path(run: str | Path) -> Path:
    return units_path(run) / UNIT_PLAN


def driver_marker_path(run: str | Path, token: str) -> Path:
    return units_path(run) / f"{DRIVER_MARKER}{token}"


def driver_markers(run: str | Path) -> list[Path]:
    return sorted(units_path(run).glob(DRIVER_MARKER + "*"))


def is_cluster_run(run: str | Path) -> bool:
    """Whether the run was started on a Ray cluster (it has ``units/``)."""
    return units_path(run).is_dir()


# --------------------------------------------------------------------------- one writer
class RunLock:
    """An exclusive lock on a run folder for the life of a command (``RUN/.lock``, with the
    holder's pid inside). The operating system releases it when the process ends, however
    it ends, so a killed run never leaves a stale lock. A second writer fails at once."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        path = self.folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunFolderError(
                f"{self.folder}: another intermodal process (pid {holder}) is writing this run "
                "folder; wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def writing(folder: str | Path, *, new: bool):
    """Hold ``folder``'s lock for the life of a command that writes it.

    ``new``: the command starts a run there, so the folder must be absent or empty (it is
    created); if the command then fails before its first checkpoint, what it wrote is
    removed (the folder too, if it made it), so that a rerun is not refused. ``new=False``:
    the folder must be a run folder (resume)."""
    folder = Path(folder)
    if new:
        if folder.exists() and not folder.is_dir():
            raise RunFolderError(f"--out {folder}: is a file; expected a folder to write the run into")
        made = not folder.exists()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"--out {folder}: cannot create the folder ({e.strerror})") from None
        if not os.access(folder, os.W_OK):
            raise RunFolderError(f"--out {folder}: the folder is not writable")
    elif not (folder / CONFIG).is_file():
        raise RunFolderError(f"{folder}: not a run folder (it has no {CONFIG})")
    lock = RunLock(folder).acquire()
    try:
        if new and any(p.name != LOCK for p in folder.iterdir()):
            raise RunFolderError(
                f"--out {folder}: the folder exists and is not empty; choose another, or continue "
                f"it with --resume {folder}"
            )
    except BaseException:
        lock.release()
        raise
    try:
        yield folder
    except BaseException:
        if new and not _resumable(folder):
            _remove_partial_run(folder, made)
        raise
    finally:
        lock.release()


def _resumable(folder: Path) -> bool:
    """Whether a run folder holds a checkpoint to resume from: its own, or one of its
    units' (a cluster study)."""
    return has_checkpoint(folder) or any(has_checkpoint(unit) for unit in units_path(folder).glob("*/"))


def _remove_partial_run(folder: Path, made: bool) -> None:
    """Remove what a run that failed before its first checkpoint wrote (nothing resumable)."""
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in (CONFIG, DESCRIPTION, HISTORY, RESULTS, DIAGNOSTICS, LOCK):
        (folder / name).unlink(missing_ok=True)
    for name in (CHECKPOINT + ".new", FIGURES, UNITS):
        shutil.rmtree(folder / name, ignore_errors=True)


# --------------------------------------------------------------------------- writing
def start_run(folder: str | Path, config: RunConfig, description: DatasetDescription) -> None:
    """Write ``config.json`` and ``description.json`` (the folder must exist)."""
    folder = Path(folder)
    write_json(folder / CONFIG, config.to_dict())
    write_json(folder / DESCRIPTION, description.to_dict())


def record_environment(folder: str | Path, record: dict) -> None:
    """Add one stretch of training's record to ``environment.json`` (a run resumed on
    another device has one entry per stretch)."""
    records = read_environment(folder)
    write_json(Path(folder) / ENVIRONMENT, {"training": [*records, record]})


def read_environment(folder: str | Path) -> list[dict]:
    """Each stretch of training's record, oldest first (none for a run folder written
    before intermodal kept them)."""
    path = Path(folder) / ENVIRONMENT
    if not path.is_file():
        return []
    records = read_mapping_file(path, "the run's environment record").get("training", [])
    if not isinstance(records, list):
        raise RunFolderError(f"{path}: 'training' should be a list of records")
    return records


def save_tables(
    folder: str | Path, history: pd.DataFrame | None = None, tables: dict[str, pd.DataFrame] | None = None
) -> None:
    """Write the history and other tables (``results``, ``diagnostics``,
    ``prediction_errors``), each atomically; a table's stem names its file."""
    if history is not None:
        _write_parquet(Path(folder) / HISTORY, history)
    for stem, table in (tables or {}).items():
        _write_parquet(table_path(folder, stem), table)


def _write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda p: frame.to_parquet(p, index=False))


def write_table_file(path: str | Path, frame: pd.DataFrame) -> Path:
    """A table a user asked for (``--out``), as CSV or parquet by the file's suffix,
    written atomically."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise RunFolderError(f"--out {path}: expected a .csv or .parquet file")
    if not path.parent.is_dir():
        raise RunFolderError(f"--out {path}: the folder {path.parent} does not exist")
    if path.suffix == ".parquet":
        _write_parquet(path, frame)
    else:
        atomic_write(path, lambda p: frame.to_csv(p, index=False))
    return path


def save_checkpoint(run: str | Path, model, optimizer_state, rng_states, state: dict) -> Path:
    """Write the run's checkpoint (:func:`intermodal.training.checkpoint.save_checkpoint`)."""
    return checkpoint.save_checkpoint(checkpoint_path(run), model, optimizer_state, rng_states, state)


def load_checkpoint(run: str | Path, *, device: str = "cpu", fallback: bool = False) -> checkpoint.Checkpoint:
    """The run's checkpoint (:func:`intermodal.training.checkpoint.load_checkpoint`);
    ``run`` may also be a checkpoint folder itself."""
    path = Path(run)
    if not ((path / checkpoint.STATE_FILE).is_file() or path.name.startswith(CHECKPOINT)):
        path = checkpoint_path(path)
    return checkpoint.load_checkpoint(path, device=device, fallback=fallback)


# --------------------------------------------------------------------------- reading
def read_config(folder: str | Path) -> RunConfig:
    """The config a run folder was started with (its ``config.json``)."""
    path = Path(folder) / CONFIG
    if not Path(folder).is_dir():
        raise RunFolderError(f"{folder}: no such run folder")
    if not path.is_file():
        raise RunFolderError(f"{folder}: not a run folder (it has no {CONFIG})")
    try:
        return RunConfig.from_mapping(read_mapping_file(path, "run config"), origin=str(path))
    except (DataError, ConfigError) as e:
        raise RunFolderError(str(e)) from None


def read_table(path: str | Path, *, required: Iterable[str] | None = None) -> pd.DataFrame:
    """One parquet table, with an error naming the file if it is missing, unreadable or
    lacks a required column."""
    path = Path(path)
    if not path.is_file():
        raise RunFolderError(f"{path}: missing")
    try:
        frame = pd.read_parquet(path)
    except (OSError, pyarrow.ArrowException, ValueError) as e:
        raise RunFolderError(f"{path}: not a readable parquet table ({e})") from None
    required = list(required if required is not None else _REQUIRED_COLUMNS.get(path.name, []))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise RunFolderError(f"{path}: lacks column(s) {missing}; expected {required}")
    return frame


def read_history(folder: str | Path) -> pd.DataFrame:
    return _clean_history(read_table(Path(folder) / HISTORY, required=_OLD_REQUIRED[HISTORY]))


def read_evaluation_table(folder: str | Path, stem: str) -> pd.DataFrame:
    """An evaluation table (``results``, ``diagnostics``, ...) of the run by its stem."""
    path = table_path(folder, stem)
    table = _with_fusion(read_table(path, required=_OLD_REQUIRED.get(path.name)))
    return _clean_results(table) if stem == RESULTS.removesuffix(".parquet") else table


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
    errors = _with_fusion(read_table(folder / PREDICTION_ERRORS)) if (folder / PREDICTION_ERRORS).is_file() else None
    return Run(folder, config, description, history, results, diagnostics, errors)


def _with_fusion(frame: pd.DataFrame) -> pd.DataFrame:
    """A table of a run from before fusions were an option: its models are concat's."""
    if "fusion" not in frame.columns and "schedule" in frame.columns:
        frame.insert(0, "fusion", "concat")
    return frame


def _clean_history(history: pd.DataFrame) -> pd.DataFrame:
    # Cleans in place: called only on a frame just read from disk (a paper-scale history has
    # millions of rows, so a copy would double the memory).
    _with_fusion(history)
    history["fusion"] = history["fusion"].astype(str)
    history["schedule"] = history["schedule"].astype(str)
    if "diverged" not in history:
        history["diverged"] = False
    return history


def _clean_results(results: pd.DataFrame) -> pd.DataFrame:
    _with_fusion(results)
    for column in ("fusion", "schedule", "quantity"):
        results[column] = results[column].astype(str)
    # Missing modality/scope mean "does not apply"; "" is the table's spelling of that.
    for column in ("modality", "scope"):
        results[column] = results[column].fillna("").astype(str)
    results["value"] = results["value"].astype(float)
    # The output family of the compared columns (model.likelihoods); runs written before
    # families were recorded had Gaussian outputs only.
    if "likelihood" not in results:
        results["likelihood"] = np.where(results["quantity"] == "prediction_error", "", "gaussian")
    results["likelihood"] = results["likelihood"].fillna("").astype(str)
    return results


# --------------------------------------------------------------------------- trained models
class Ensemble(NamedTuple):
    """Trained models read back from a run folder or checkpoint, with what they need:
    ``model`` (its ``model_keys`` set; several fusions as
    :class:`~intermodal.model.group.ModelGroups`), the :class:`ModelKey` of each position,
    the run's config, the data set it was trained on and the epochs trained."""

    model: EnsembleVAE | ModelGroups
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
    assert model.model_keys is not None  # load_checkpoint labels the models
    return Ensemble(model, list(model.model_keys), config, dataset, int(state["epochs_done"]))


# --------------------------------------------------------------------------- merging
def merge_tables(tables: list[pd.DataFrame], model_keys: list[ModelKey], *, by_epoch_first: bool) -> pd.DataFrame:
    """Tables of disjoint models (parts of one run) as the one table a single run writes:
    rows ordered by model position then epoch (history), or by epoch then model position
    (evaluation tables, as written evaluation by evaluation); rows of one (model, epoch)
    keep their order."""
    tables = [t for t in tables if t is not None and len(t)]
    if not tables:
        return pd.DataFrame()
    frame = pd.concat(tables, ignore_index=True)
    position = {k: i for i, k in enumerate(model_keys)}
    try:
        model = np.array([position[k] for k in row_model_keys(frame)])
    except KeyError as e:
        raise RunFolderError(
            f"a table holds model {e.args[0]}, which is not among the run's models {model_keys}"
        ) from None
    epoch = frame["epoch"].to_numpy()
    primary, secondary = (epoch, model) if by_epoch_first else (model, epoch)
    # lexsort sorts by its last key first; the row number keeps each (model, epoch)'s order.
    order = np.lexsort([np.arange(len(frame)), secondary, primary])
    return frame.iloc[order].reset_index(drop=True)


def row_model_keys(frame: pd.DataFrame) -> list[ModelKey]:
    """The :class:`ModelKey` of each row of a run's table."""
    columns = [frame[c].astype(str) if c != "seed" else frame[c].astype(int) for c in MODEL_KEY_COLUMNS]
    return [ModelKey(*k) for k in zip(*columns)]


def merge_runs(sources: Sequence[str | Path], out: str | Path, config: RunConfig) -> Path:
    """Merge run folders that each hold some of the models of one run (``config``, whose
    schedules and seeds cover them all, each model exactly once) into ``out``: the same
    files, columns and row order as one run of ``config`` writes, and one checkpoint of
    the whole ensemble. The sources are read, never changed; their order does not matter."""
    out = Path(out)
    keys = config.model_keys()
    runs = [read_run(s, need_results=False) for s in sources]
    held: dict[ModelKey, Path] = {}
    for run in runs:
        mine = run.config.to_dict()
        whole = config.to_dict()
        # Which models, and how many cores trained them, may differ between the parts: the
        # number of workers and threads changes no result.
        for name in ("fusions", "schedules", "seeds", "workers", "threads"):
            mine.pop(name)
            whole.pop(name)
        if mine != whole:
            differing = sorted(k for k in mine if mine[k] != whole.get(k))
            raise RunFolderError(
                f"{run.path}: its config differs from the run's in {differing}; only fusions, schedules, seeds, "
                "workers and threads may differ between the parts of one run"
            )
        for key in run.model_keys:
            if key in held:
                raise RunFolderError(f"model {key} is in both {held[key]} and {run.path}")
            held[key] = run.path
    missing = [k for k in keys if k not in held]
    if missing or len(held) != len(keys):
        raise RunFolderError(f"the parts hold {len(held)} models; the run has {len(keys)}; missing {missing[:8]}")
    out.mkdir(parents=True, exist_ok=True)
    description = next((r.description for r in runs if r.description is not None), None)
    write_json(out / CONFIG, config.to_dict())
    if description is not None:
        write_json(out / DESCRIPTION, description.to_dict())
    tables = {}
    for stem, table_of in zip(EVALUATION_TABLES, (lambda r: r.results, lambda r: r.diagnostics)):
        parts = [table_of(r) for r in runs]
        if any(p is not None and len(p) for p in parts):
            tables[stem] = merge_tables(parts, keys, by_epoch_first=True)
    save_tables(out, merge_tables([r.history for r in runs], keys, by_epoch_first=False), tables)
    if all(has_checkpoint(r.path) for r in runs):
        state = {"config": config.to_dict(), "tables": sorted(tables)}
        checkpoint.merge_checkpoints([checkpoint_path(r.path) for r in runs], checkpoint_path(out), keys, state)
    return out
