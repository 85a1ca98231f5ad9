"""A run folder's tables: their columns, writing and reading them (the one module that
reads and writes parquet), each column checked for its type when read, and the migration
of tables written by older versions (no ``fusion``, ``diverged`` or ``likelihood`` column).

A model is named in every table by the columns of
:class:`~intermodal.training.config.ModelKey`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
from pandas.api import types

from ...errors import RunFolderError
from ...files import atomic_write
from ..config import MODEL_KEY_COLUMNS, ModelKey
from .folder import DIAGNOSTICS, HISTORY, PREDICTION_ERRORS, RESULTS, table_path

__all__ = [
    "HISTORY_VALUES",
    "HISTORY_COLUMNS",
    "RESULTS_COLUMNS",
    "DIAGNOSTICS_COLUMNS",
    "EVALUATION_TABLES",
    "save_tables",
    "write_table_file",
    "read_table",
    "read_history",
    "read_evaluation_table",
    "read_prediction_errors",
    "row_model_keys",
]

# What the history records of each model and epoch, in the order the trainer keeps them.
HISTORY_VALUES = ("beta", "reconstruction_loss", "latent_loss", "loss")
HISTORY_COLUMNS = [*MODEL_KEY_COLUMNS, "epoch", *HISTORY_VALUES, "diverged"]
RESULTS_COLUMNS = [*MODEL_KEY_COLUMNS, "epoch", "quantity", "modality", "scope", "value"]
DIAGNOSTICS_COLUMNS = [*MODEL_KEY_COLUMNS, "epoch", "latent_dim", "kl", "posterior_mean_variance", "active"]
# "diverged" (True from the epoch a model's loss became non-finite) may be absent from
# tables written by other tools; it is then all False.
_REQUIRED_COLUMNS = {HISTORY: HISTORY_COLUMNS[:-1], RESULTS: RESULTS_COLUMNS, DIAGNOSTICS: DIAGNOSTICS_COLUMNS}
# Tables written before fusions were an option have no "fusion" column: they are concat's.
_OLD_REQUIRED = {name: [c for c in columns if c != "fusion"] for name, columns in _REQUIRED_COLUMNS.items()}
# The evaluation tables a run writes, by stem (the file is STEM.parquet).
EVALUATION_TABLES = (RESULTS.removesuffix(".parquet"), DIAGNOSTICS.removesuffix(".parquet"))

# The type each column of a run's tables holds, wherever it appears; a column of another
# type (text among the values, a count written as a word) is refused when the table is read.
_KINDS = {
    **dict.fromkeys(("fusion", "schedule", "quantity", "modality", "scope", "likelihood"), "text"),
    **dict.fromkeys(("seed", "epoch", "latent_dim"), "integer"),
    **dict.fromkeys((*HISTORY_VALUES, "value", "standard_error", "kl", "posterior_mean_variance"), "number"),
    **dict.fromkeys(("diverged", "active"), "true/false"),
}
_IS_KIND = {
    "text": lambda s: types.is_object_dtype(s) or types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype),
    "integer": lambda s: types.is_integer_dtype(s) and not types.is_bool_dtype(s),
    "number": lambda s: types.is_numeric_dtype(s) and not types.is_bool_dtype(s),
    "true/false": types.is_bool_dtype,
}


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


def read_table(path: str | Path, *, required: Iterable[str] | None = None) -> pd.DataFrame:
    """One parquet table, with an error naming the file (and the column) if it is missing,
    unreadable, lacks a required column or holds a column of the wrong type."""
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
    for column, kind in _KINDS.items():
        if column in frame.columns and not _IS_KIND[kind](frame[column]):
            raise RunFolderError(f"{path}: column {column!r} holds {frame[column].dtype}; expected {kind}")
    return frame


def read_history(folder: str | Path) -> pd.DataFrame:
    return _clean_history(read_table(Path(folder) / HISTORY, required=_OLD_REQUIRED[HISTORY]))


def read_evaluation_table(folder: str | Path, stem: str) -> pd.DataFrame:
    """An evaluation table (``results``, ``diagnostics``, ...) of the run by its stem."""
    path = table_path(folder, stem)
    table = _with_fusion(read_table(path, required=_OLD_REQUIRED.get(path.name)))
    return _clean_results(table) if stem == RESULTS.removesuffix(".parquet") else table


def read_prediction_errors(folder: str | Path) -> pd.DataFrame | None:
    """The prediction tests' errors (None before ``intermodal predict RUN --tests``)."""
    path = Path(folder) / PREDICTION_ERRORS
    return _with_fusion(read_table(path)) if path.is_file() else None


def row_model_keys(frame: pd.DataFrame) -> list[ModelKey]:
    """The :class:`ModelKey` of each row of a run's table."""
    columns = [frame[c].astype(str) if c != "seed" else frame[c].astype(int) for c in MODEL_KEY_COLUMNS]
    return [ModelKey(*k) for k in zip(*columns)]


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
