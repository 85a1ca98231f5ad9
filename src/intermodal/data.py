"""Data sets: their description, reading and validation, and training augmentation.

A data set is a table of complete rows; each row holds every modality at every time step
(by default two steps, ``t`` and ``t-1``; docs/method.md §1). Its *description* names the
modalities, their sizes per time step, the column order, the value range, the muted value
and the muting patterns used to augment the training rows (Zambelli et al. 2020, Table 1).
Nothing in this module knows how many modalities there are: the iCub set is one
description (``datasets/icub-zambelli2020.json``) among any a user writes. This module
imports nothing else of the package: it is where the data flow starts.

Description files are JSON (or TOML) with these keys; every value's type is checked and
unknown keys are rejected at every level (docs/data.md)::

    name            str
    modalities      [{"name": "joints", "size": 4}, ...]   size = values per time step
    time_steps      ["t", "t-1"]                          (default)
    columns         optional explicit column order (names as ``column_names()``);
                    default: modality-major, then time step, then index
    value_range     [-1.0, 1.0]                           (default)
    muted_value     -2.0                                  (default; outside value_range)
    muting_patterns {"complete": [], "vision-only": ["joints", ...], ...}
                    each a list of selectors: "modality" (every step) or "modality@step"
    train, test     {"file": "train.csv", "layout": "complete"|"input-target",
                     "variable": "<.mat variable or .npz key>", "extra_columns": "error"|"ignore"}
                    file relative to the description; test is optional (then evaluation
                    uses the train rows)
    motor_modalities optional list of the modalities that are motor commands (default:
                    "motor" where the data set has it); the prediction baselines need them
    prediction_tests optional {"name": {"given": [selectors], "chained": false,
                    "about": "..."}}: the prediction tests of ``intermodal predict --tests``
    architectures   optional {"1": {...}, ...} presets given per modality name
    source          optional {"url": "...{file}", "sha256": {"file": "hex", ...}}
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import tomllib
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass

__all__ = [
    "Modality",
    "TableFile",
    "PredictionTest",
    "DatasetDescription",
    "Dataset",
    "DataError",
    "load_description",
    "read_mapping_file",
    "read_table",
    "augment",
    "builtin_description_path",
    "validation_message",
]

_DATASETS_DIR = Path(__file__).with_name("datasets")

# Values read from files are checked strictly: a whole number where a size is expected (not
# 2.7, not true), a list where a list is expected (a string is never split into characters),
# finite numbers. Strings typed on a command line are turned into values before this (see
# intermodal.options), so the same rules hold for every source.
PositiveInt = Annotated[int, Strict(), Field(gt=0)]
FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Name = Annotated[str, Strict(), Field(min_length=1)]
_STRICT = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class DataError(ValueError):
    """A data file or description does not hold what was expected."""


def validation_message(error: ValidationError, origin: str) -> str:
    """One line per problem of a pydantic error, each naming ``origin`` and the key path."""
    lines = []
    for problem in error.errors():
        where = ".".join(str(p) for p in problem["loc"]) or "(top level)"
        kind = problem["type"]
        if kind in ("unexpected_keyword_argument", "extra_forbidden"):
            text = "unknown key"
        elif kind == "missing" or kind == "missing_argument":
            text = "missing key"
        elif kind == "value_error" and "error" in problem.get("ctx", {}):
            text = str(problem["ctx"]["error"])
        else:
            shown = problem.get("input")
            msg = problem["msg"].replace("valid tuple", "list").replace("valid dictionary", "mapping")
            text = f"{msg[0].lower()}{msg[1:]} (got {shown!r})"
        lines.append(f"{origin}: {text}" if not problem["loc"] else f"{origin}: {where}: {text}")
    return "\n".join(lines)


@validated_dataclass(frozen=True, config=_STRICT)
class Modality:
    """One sensory or motor modality: ``size`` values per time step."""

    name: Name
    size: PositiveInt


@validated_dataclass(frozen=True, config=_STRICT)
class TableFile:
    """Where one part (train or test) of a data set lies, and how its columns are laid out.

    ``layout="complete"``: every row is a complete row of ``n_columns`` values.
    ``layout="input-target"``: ``2 * n_columns`` values, an (already muted) input then its
    complete target, as in the iCub training file; the complete rows are taken back out.
    ``extra_columns``: what to do with CSV header columns the description does not name:
    ``"error"`` (default) or ``"ignore"`` (the description's columns are selected by name).
    """

    file: Name
    layout: Literal["complete", "input-target"] = "complete"
    variable: Name | None = None
    extra_columns: Literal["error", "ignore"] = "error"


@validated_dataclass(frozen=True, config=_STRICT)
class PredictionTest:
    """One prediction test (docs/prediction.md): the selectors given to the model, and
    whether the prediction is chained along time (a rollout)."""

    given: tuple[Name, ...]
    chained: Annotated[bool, Strict()] = False
    about: Annotated[str, Strict()] = ""


@validated_dataclass(frozen=True, config=_STRICT)
class DatasetDescription:
    """What the columns of a data set mean. See the module docstring for the file format."""

    name: Name
    modalities: tuple[Modality, ...]
    muting_patterns: dict[Name, tuple[Name, ...]]
    time_steps: tuple[Name, ...] = ("t", "t-1")
    columns: tuple[Name, ...] | None = None
    value_range: tuple[FiniteFloat, FiniteFloat] = (-1.0, 1.0)
    muted_value: FiniteFloat = -2.0
    train: TableFile | None = None
    test: TableFile | None = None
    motor_modalities: tuple[Name, ...] | None = None
    prediction_tests: dict[Name, PredictionTest] | None = None
    architectures: dict[Name, dict[str, Any]] = field(default_factory=dict)
    source: dict[str, Any] | None = None
    root: Path | None = None  # folder the file paths are relative to (not serialised)

    def __post_init__(self):
        names = [m.name for m in self.modalities]
        if not names:
            raise DataError(f"description {self.name!r}: 'modalities' is empty")
        if len(set(names)) != len(names):
            raise DataError(f"description {self.name!r}: modality names repeat: {names}")
        for m in self.modalities:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", m.name):
                raise DataError(
                    f"description {self.name!r}: modality name {m.name!r} must start with a "
                    "letter and hold only letters, digits, '_' and '-'"
                )
        if len(set(self.time_steps)) != len(self.time_steps) or not self.time_steps:
            raise DataError(f"description {self.name!r}: time_steps must be distinct and non-empty")
        low, high = self.value_range
        if not low < high:
            raise DataError(
                f"description {self.name!r}: value_range {list(self.value_range)} must be [low, high] with low < high"
            )
        if low <= self.muted_value <= high:
            raise DataError(
                f"description {self.name!r}: muted_value {self.muted_value} lies inside value_range "
                f"[{low}, {high}]; it must lie outside so a muted entry cannot be mistaken for data"
            )
        if self.columns is not None and sorted(self.columns) != sorted(self.default_columns()):
            missing = sorted(set(self.default_columns()) - set(self.columns))
            extra = sorted(set(self.columns) - set(self.default_columns()))
            raise DataError(
                f"description {self.name!r}: 'columns' must list each column once; missing {missing}, unknown {extra}"
            )
        if not self.muting_patterns:
            raise DataError(
                f"description {self.name!r}: 'muting_patterns' is empty; give at least {{\"complete\": []}}"
            )
        for pattern, selectors in self.muting_patterns.items():
            self._check_selectors(selectors, f"muting pattern {pattern!r}")
        for name in self.motor_modalities or ():
            self.modality(name)
        for name, test in (self.prediction_tests or {}).items():
            self._check_selectors(test.given, f"prediction test {name!r}")

    def _check_selectors(self, selectors, what: str) -> None:
        try:
            self.mask(list(selectors))
        except DataError as e:
            raise DataError(f"{what}: {e}") from None

    # ------------------------------------------------------------------ columns
    @property
    def n_columns(self) -> int:
        return len(self.time_steps) * sum(m.size for m in self.modalities)

    @property
    def modality_names(self) -> list[str]:
        return [m.name for m in self.modalities]

    def modality(self, name: str) -> Modality:
        for m in self.modalities:
            if m.name == name:
                return m
        raise DataError(f"data set {self.name!r} has no modality {name!r}; it has {self.modality_names}")

    def default_columns(self) -> list[str]:
        return [f"{m.name}_{step}_{i}" for m in self.modalities for step in self.time_steps for i in range(m.size)]

    def column_names(self) -> list[str]:
        """Names of the columns in file order, e.g. ``joints_t_0`` or ``touch_t-1_0``."""
        return list(self.columns) if self.columns is not None else self.default_columns()

    def mask(self, selector: str | list[str] | tuple[str, ...]) -> np.ndarray:
        """Boolean mask over the columns, shape ``[n_columns]``, for ``"modality"``
        (every time step), ``"modality@step"``, ``"*"`` (every modality) or ``"*@step"``
        (every modality at one step), or a list of those (their union)."""
        if not isinstance(selector, str):
            out = np.zeros(self.n_columns, dtype=bool)
            for s in selector:
                out |= self.mask(s)
            return out
        name, at, step = selector.partition("@")
        if name == "*":
            return self.mask([f"{m}{at}{step}" for m in self.modality_names])
        modality = self.modality(name)
        if step and step not in self.time_steps:
            raise DataError(
                f"data set {self.name!r}: selector {selector!r} names time step {step!r}; "
                f"the steps are {list(self.time_steps)}"
            )
        steps = [step] if step else list(self.time_steps)
        wanted = {f"{modality.name}_{s}_{i}" for s in steps for i in range(modality.size)}
        return np.array([c in wanted for c in self.column_names()], dtype=bool)

    def columns_of(self, selector: str | list[str]) -> np.ndarray:
        """Column indices (ascending) of a selector; see :meth:`mask`."""
        return np.flatnonzero(self.mask(selector))

    def modality_of_column(self) -> np.ndarray:
        """For each column the index of its modality, shape ``[n_columns]``."""
        out = np.empty(self.n_columns, dtype=np.int64)
        for k, m in enumerate(self.modalities):
            out[self.mask(m.name)] = k
        return out

    def pattern_masks(self, patterns: list[str] | None = None) -> np.ndarray:
        """Muting masks, shape ``[n_patterns, n_columns]``, True where muted."""
        names = list(self.muting_patterns) if patterns is None else patterns
        for n in names:
            if n not in self.muting_patterns:
                raise DataError(
                    f"data set {self.name!r} has no muting pattern {n!r}; it has {list(self.muting_patterns)}"
                )
        return np.stack([self.mask(list(self.muting_patterns[n])) for n in names])

    # ------------------------------------------------------------ serialising
    @property
    def motor(self) -> list[str]:
        """The motor-command modalities: ``motor_modalities``, else ``["motor"]`` where the
        data set has a modality of that name, else none."""
        if self.motor_modalities is not None:
            return list(self.motor_modalities)
        return ["motor"] if "motor" in self.modality_names else []

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "modalities": [{"name": m.name, "size": m.size} for m in self.modalities],
            "time_steps": list(self.time_steps),
            "value_range": list(self.value_range),
            "muted_value": self.muted_value,
            "muting_patterns": {k: list(v) for k, v in self.muting_patterns.items()},
        }
        if self.columns is not None:
            d["columns"] = list(self.columns)
        for part in ("train", "test"):
            spec = getattr(self, part)
            if spec is not None:
                default = TableFile(spec.file)
                d[part] = {
                    k: v
                    for k, v in dataclasses.asdict(spec).items()
                    if k == "file" or (v is not None and v != getattr(default, k))
                }
        if self.motor_modalities is not None:
            d["motor_modalities"] = list(self.motor_modalities)
        if self.prediction_tests is not None:
            d["prediction_tests"] = {
                k: {"given": list(t.given), "chained": t.chained, "about": t.about}
                for k, t in self.prediction_tests.items()
            }
        if self.architectures:
            d["architectures"] = self.architectures
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, d: dict, *, origin: str = "description", root: Path | None = None) -> DatasetDescription:
        """Validate a mapping (as read from a description file); errors name ``origin`` and
        the key."""
        if not isinstance(d, dict):
            raise DataError(f"{origin}: expected a mapping of keys, got {type(d).__name__}")
        if "root" in d:
            raise DataError(f"{origin}: root: unknown key")
        try:
            return _DESCRIPTION.validate_python({**d, "root": root})
        except ValidationError as e:
            raise DataError(validation_message(e, origin)) from None
        except DataError as e:
            raise DataError(f"{origin}: {e}") from None

    def replace(self, **changes) -> DatasetDescription:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _errors_as_data_errors(cls):
    """Constructing ``cls`` directly (or through dataclasses.replace) raises DataError, as
    reading it from a file does, rather than pydantic's ValidationError."""
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except ValidationError as e:
            raise DataError(validation_message(e, cls.__name__)) from None

    cls.__init__ = __init__
    return cls


for _cls in (Modality, TableFile, PredictionTest, DatasetDescription):
    _errors_as_data_errors(_cls)
_DESCRIPTION = TypeAdapter(DatasetDescription)


def read_mapping_file(path: str | Path, what: str) -> dict:
    """Read a ``.json`` or ``.toml`` file into a dict; ``what`` names it in errors."""
    path = Path(path)
    if path.suffix not in (".json", ".toml"):
        raise DataError(f"{what} {path}: expected a .json or .toml file")
    try:
        text = path.read_text()
    except OSError as e:
        raise DataError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise DataError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a {what} as a JSON object / TOML table")
    return d


def load_description(path: str | Path) -> DatasetDescription:
    """Read a description from a ``.json`` or ``.toml`` file."""
    d = read_mapping_file(path, "data set description")
    return DatasetDescription.from_dict(d, origin=str(path), root=Path(path).parent)


def builtin_description_path(name: str) -> Path:
    """The description file of a data set shipped with intermodal (e.g. ``icub-zambelli2020``)."""
    return _DATASETS_DIR / f"{name}.json"


# ---------------------------------------------------------------------- reading
def _read_csv(path: Path, header_names: list[str] | None, extra_columns: str) -> np.ndarray:
    import pandas as pd

    with open(path, newline="") as f:
        first = f.readline().strip()
    if not first:
        raise DataError(f"{path}: the file is empty; expected a header line of column names or rows of numbers")
    try:
        [float(c) for c in first.split(",")]
        has_header = False  # the first row is data
    except ValueError:
        has_header = True
    try:
        frame = pd.read_csv(path, header=0 if has_header else None)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV table ({str(e).strip()})") from None
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
        except Exception as e:  # scipy raises several types for a damaged file
            raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
        keys = [k for k in mat if not k.startswith("__")]
        key = variable or (keys[0] if len(keys) == 1 else None)
        if key is None or key not in keys:
            raise DataError(f"{path}: name the MATLAB variable with 'variable' (one of {keys})")
        return np.asarray(mat[key], dtype=np.float64)
    raise DataError(f"{path}: unsupported file type {suffix!r}; expected .csv, .npz, .npy or .mat")


def _check_values(rows: np.ndarray, desc: DatasetDescription, path: Path, *, allow_muted: bool = False) -> None:
    names = desc.column_names()
    bad = ~np.isfinite(rows)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: row {r}, column {c} ({names[c % len(names)]}) is {rows[r, c]}; expected a finite number"
        )
    low, high = desc.value_range
    outside = (rows < low) | (rows > high)
    if allow_muted:
        outside &= rows != desc.muted_value
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise DataError(
            f"{path}: row {r}, column {c} ({names[c % len(names)]}) is {rows[r, c]:g}; "
            f"expected values in the description's value_range [{low:g}, {high:g}]"
            + (f" or the muted value {desc.muted_value:g}" if allow_muted else "")
        )


def read_table(spec: TableFile, desc: DatasetDescription, root: Path | None = None) -> np.ndarray:
    """Read one part of a data set as complete rows, shape ``[rows, n_columns]``, float64.

    Checks the column count, finiteness and the value range, and names the file, row and
    column of the first offence.
    """
    path = Path(spec.file)
    if not path.is_absolute():
        path = (root or desc.root or Path.cwd()) / path
    names = desc.column_names()
    header = names if spec.layout == "complete" else [f"input_{c}" for c in names] + names
    matrix = _read_matrix(path, spec.variable, header, spec.extra_columns)
    if matrix.ndim != 2:
        raise DataError(f"{path}: expected a 2-D table, got shape {matrix.shape}")
    n = desc.n_columns
    expected = n if spec.layout == "complete" else 2 * n
    if matrix.shape[1] != expected:
        raise DataError(
            f"{path}: has {matrix.shape[1]} columns; the description {desc.name!r} expects {expected} "
            f"({'complete rows' if spec.layout == 'complete' else 'input then target'} of "
            f"{', '.join(f'{m.name}×{m.size}' for m in desc.modalities)} at steps {list(desc.time_steps)})"
        )
    if matrix.shape[0] == 0:
        raise DataError(f"{path}: has no rows")
    if spec.layout == "complete":
        _check_values(matrix, desc, path)
        return matrix
    inputs, targets = matrix[:, :n], matrix[:, n:]
    _check_values(targets, desc, path)
    _check_values(inputs, desc, path, allow_muted=True)
    # The complete rows are those whose input mutes nothing; each sample appears once there.
    complete = ~(inputs == desc.muted_value).any(axis=1)
    if not complete.any():
        raise DataError(f"{path}: no row has a complete (unmuted) input, so the complete rows cannot be recovered")
    return targets[complete]


def augment(
    complete: np.ndarray, desc: DatasetDescription, patterns: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training rows from complete rows: each row once per muting pattern (Zambelli Table 1).

    Parameters
    ----------
    complete : array ``[n, n_columns]``
    patterns : pattern names, default all of the description's, in its order.

    Returns
    -------
    inputs, targets : arrays ``[n_patterns * n, n_columns]``, pattern-major (block ``k`` is
        every row with pattern ``k`` applied); muted entries of ``inputs`` hold ``muted_value``.
    """
    masks = desc.pattern_masks(patterns)
    targets = np.tile(complete, (len(masks), 1))
    inputs = targets.copy()
    block = np.repeat(masks, len(complete), axis=0)
    inputs[block] = desc.muted_value
    return inputs, targets


# ---------------------------------------------------------------------- data sets
@dataclasses.dataclass
class Dataset:
    """Complete rows of a data set with its description.

    ``train``: ``[n_train, n_columns]``; ``test``: ``[n_test, n_columns]`` (time-ordered
    where the source is), float64 in the description's value range.
    """

    description: DatasetDescription
    train: np.ndarray
    test: np.ndarray
    origin: str = ""

    def training_rows(self, patterns: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return augment(self.train, self.description, patterns)
