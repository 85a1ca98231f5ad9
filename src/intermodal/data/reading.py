"""Reading a data set's files: description and config files (JSON or TOML), and the tables
of complete rows (CSV, NPZ/NPY or MATLAB .mat), each checked against its description.

Every problem is a :class:`~intermodal.errors.DataError` naming the file, and where it
applies the row and column, and what was expected. :func:`read_csv_frame` is the one CSV
reader of the package (data tables, schedule tables, the rows a user gives to predict).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomllib is in the standard library from 3.11; tomli is the same parser
    import tomli as tomllib

from ..errors import DataError, IntermodalError, Terminated
from .description import DatasetDescription, TableFile

__all__ = ["read_mapping_file", "load_description", "read_csv_frame", "read_table"]


def read_mapping_file(path: str | Path, what: str) -> dict:
    """Read a ``.json`` or ``.toml`` file (UTF-8 text) into a dict; ``what`` names it in errors."""
    path = Path(path)
    if path.suffix not in (".json", ".toml"):
        raise DataError(f"{what} {path}: expected a .json or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"{what} {path}: not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x}); "
            f"expected a {path.suffix[1:].upper()} file saved as UTF-8"
        ) from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise DataError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a {what} as a JSON object / TOML table")
    return d


def load_description(path: str | Path) -> DatasetDescription:
    """Read a description from a ``.json`` or ``.toml`` file."""
    if not isinstance(path, (str, os.PathLike)):
        raise DataError(f"description {path!r}: expected the path of a .json or .toml file")
    d = read_mapping_file(path, "data set description")
    return DatasetDescription.from_dict(d, origin=str(path), root=Path(path).parent)


def read_csv_frame(path: str | Path, *, header: bool = True, error: type[IntermodalError] = DataError) -> pd.DataFrame:
    """A CSV file as a DataFrame (first line the header, unless ``header=False``); a file
    that is missing, not UTF-8 text or not a CSV table raises ``error`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        return pd.read_csv(path, header=0 if header else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise error(f"{path}: not a readable CSV table ({str(e).strip()})") from None


def _read_csv(path: Path, header_names: list[str] | None, extra_columns: str) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            first = f.readline().strip()
    except UnicodeDecodeError:
        first = "?"  # not text: read_csv_frame names the file
    if not first:
        raise DataError(f"{path}: the file is empty; expected a header line of column names or rows of numbers")
    try:
        [float(c) for c in first.split(",")]
        has_header = False  # the first row is data
    except ValueError:
        has_header = True
    frame = read_csv_frame(path, header=has_header)
    if has_header and header_names is not None:
        missing = [c for c in header_names if c not in frame.columns]
        unknown = [str(c) for c in frame.columns if c not in header_names]
        if missing or (unknown and extra_columns == "error"):
            problems = []
            if missing:
                problems.append(f"lacks column(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
            if unknown:
                problems.append(
                    f"has column(s) the description does not name {unknown[:5]}"
                    + (
                        ' (set "extra_columns": "ignore" in the description\'s part to skip them)'
                        if not missing
                        else ""
                    )
                )
            raise DataError(
                f"{path}: the header {' and '.join(problems)}; expected the {len(header_names)} "
                f"column names of the description, like {header_names[:3]}"
            )
        frame = frame[header_names]  # the description's order, whatever the file's
    if len(frame) == 0:
        raise DataError(f"{path}: has no rows")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            values = pd.to_numeric(frame[column], errors="coerce")
            row = int(np.flatnonzero(values.isna() & frame[column].notna())[0]) if values.isna().any() else 0
            raise DataError(f"{path}: column {column!r}, data row {row}: {frame[column].iloc[row]!r} is not a number")
    return frame.to_numpy(dtype=np.float64)


def _read_matrix(
    path: Path, variable: str | None, header_names: list[str] | None, extra_columns: str = "error"
) -> np.ndarray:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    if suffix == ".csv":
        return _read_csv(path, header_names, extra_columns)
    if suffix in (".npz", ".npy"):
        import zipfile

        try:
            if suffix == ".npy":
                return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = variable or (keys[0] if len(keys) == 1 else None)
                if key is None or key not in keys:
                    raise DataError(f"{path}: name the array with 'variable' (one of {keys})")
                return np.asarray(z[key], dtype=np.float64)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"{path}: not a readable numeric {suffix} array ({e})") from None
    if suffix == ".mat":
        import scipy.io

        try:
            mat = scipy.io.loadmat(path)
        except Terminated:  # SIGTERM while reading (the command line's handler): not the file's fault
            raise
        except Exception as e:  # scipy raises several types for a damaged file
            raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
        keys = [k for k in mat if not k.startswith("__")]
        key = variable or (keys[0] if len(keys) == 1 else None)
        if key is None or key not in keys:
            raise DataError(f"{path}: name the MATLAB variable with 'variable' (one of {keys})")
        return np.asarray(mat[key], dtype=np.float64)
    raise DataError(f"{path}: unsupported file type {suffix!r}; expected .csv, .npz, .npy or .mat")


def _check_values(rows: np.ndarray, description: DatasetDescription, path: Path, *, allow_muted: bool = False) -> None:
    names = description.column_names()
    bad = ~np.isfinite(rows)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: row {r}, column {c} ({names[c % len(names)]}) is {rows[r, c]}; expected a finite number"
        )
    low, high = description.value_range
    outside = (rows < low) | (rows > high)
    if allow_muted:
        outside &= rows != description.muted_value
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise DataError(
            f"{path}: row {r}, column {c} ({names[c % len(names)]}) is {rows[r, c]:g}; "
            f"expected values in the description's value_range [{low:g}, {high:g}]"
            + (f" or the muted value {description.muted_value:g}" if allow_muted else "")
        )


def read_table(spec: TableFile, description: DatasetDescription, root: Path | None = None) -> np.ndarray:
    """Read one part of a data set as complete rows, shape ``[rows, n_columns]``, float64.

    Checks the column count, finiteness and the value range, and names the file, row and
    column of the first offence.
    """
    path = Path(spec.file)
    if not path.is_absolute():
        path = (root or description.root or Path.cwd()) / path
    names = description.column_names()
    header = names if spec.layout == "complete" else [f"input_{c}" for c in names] + names
    matrix = _read_matrix(path, spec.variable, header, spec.extra_columns)
    if matrix.ndim != 2:
        raise DataError(f"{path}: expected a 2-D table, got shape {matrix.shape}")
    n = description.n_columns
    expected = n if spec.layout == "complete" else 2 * n
    if matrix.shape[1] != expected:
        raise DataError(
            f"{path}: has {matrix.shape[1]} columns; the description {description.name!r} expects {expected} "
            f"({'complete rows' if spec.layout == 'complete' else 'input then target'} of "
            f"{', '.join(f'{m.name}×{m.size}' for m in description.modalities)} "
            f"at steps {list(description.time_steps)})"
        )
    if matrix.shape[0] == 0:
        raise DataError(f"{path}: has no rows")
    if spec.layout == "complete":
        _check_values(matrix, description, path)
        return matrix
    inputs, targets = matrix[:, :n], matrix[:, n:]
    _check_values(targets, description, path)
    _check_values(inputs, description, path, allow_muted=True)
    # The complete rows are those whose input mutes nothing; each sample appears once there.
    complete = ~(inputs == description.muted_value).any(axis=1)
    if not complete.any():
        raise DataError(f"{path}: no row has a complete (unmuted) input, so the complete rows cannot be recovered")
    return targets[complete]
