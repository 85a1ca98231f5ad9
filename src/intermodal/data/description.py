"""A data set's description: what its columns mean, and the selectors that name parts of
a row.

A data set is a table of complete rows; each row holds every modality at every time step
(by default two steps, ``t`` and ``t-1``; docs/method.md §1). Its *description* names the
modalities, their sizes per time step, the column order, the value range, the muted value
and the muting patterns used to augment the training rows (Zambelli et al. 2020, Table 1).
Nothing in this module knows how many modalities there are: the iCub set is one
description (``datasets/icub-zambelli2020.json``) among any a user writes. The data
package imports nothing of intermodal's beyond its errors and options: it is where the
data flow starts. Reading the files is :mod:`intermodal.data.reading`'s job.

Description files are JSON (or TOML) with these keys; every value's type is checked and
unknown keys are rejected at every level (docs/data.md)::

    name            str
    modalities      [{"name": "joints", "size": 4}, ...]   size = values per time step;
                    optional "likelihood": the decoder's output family for it, one of
                    LIKELIHOODS (default "gaussian", Zambelli's): "bernoulli" reads each
                    value as the probability of the value range's upper end, "categorical"
                    each time step's values as one-hot or probabilities (docs/data.md)
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
import re
from collections.abc import Iterable, Sequence
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args

import numpy as np
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass

from ..errors import DataError, errors_as, validation_message

__all__ = [
    "LIKELIHOODS",
    "Modality",
    "TableFile",
    "PredictionTest",
    "DatasetDescription",
    "MAX_COLUMNS",
    "builtin_description_path",
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

# The most columns a data set may have (all modalities at all time steps): checked before
# anything is allocated per column (docs/reliability.md, "Limits").
MAX_COLUMNS = 100_000

# The output families a modality's decoder can have (docs/method.md §5b): the one list,
# which intermodal.model.likelihoods reads.
Family = Literal["gaussian", "laplace", "bernoulli", "categorical"]
LIKELIHOODS: tuple[str, ...] = get_args(Family)


@validated_dataclass(frozen=True, config=_STRICT)
class Modality:
    """One sensory or motor modality: ``size`` values per time step, and the output
    family its decoder has (``likelihood``, one of :data:`LIKELIHOODS`)."""

    name: Name
    size: PositiveInt
    likelihood: Family = "gaussian"


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
    whether the prediction is chained along time (a rollout). ``name``: the test's name;
    in a description, the key it is listed under (filled in from it)."""

    given: tuple[Name, ...]
    chained: Annotated[bool, Strict()] = False
    about: Annotated[str, Strict()] = ""
    name: Annotated[str, Strict()] = ""


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
        if self.n_columns > MAX_COLUMNS:
            sizes = ", ".join(f"{m.name} {m.size}" for m in self.modalities)
            raise DataError(
                f"description {self.name!r}: {self.n_columns} columns ({len(self.time_steps)} time steps x modality "
                f"sizes {sizes}); a data set has at most MAX_COLUMNS = {MAX_COLUMNS}"
            )
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
            if test.name not in ("", name):
                raise DataError(f"prediction test {name!r} is named {test.name!r}; a listed test takes its key's name")
        if self.prediction_tests:
            named = {k: dataclasses.replace(t, name=k) if t.name != k else t for k, t in self.prediction_tests.items()}
            object.__setattr__(self, "prediction_tests", named)

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

    def expand(self, selectors: str | Sequence[str]) -> list[str]:
        """Selectors with ``"*"`` (every modality, every step) and ``"*@STEP"`` (every
        modality at one step) written out, each checked: an unknown modality or time step
        raises a :class:`~intermodal.errors.DataError` naming it."""
        if not isinstance(selectors, str) and not isinstance(selectors, Iterable):
            raise DataError(
                f"selectors must be a string like 'vision' or 'joints@t-1', or a list of them; got {selectors!r}"
            )
        items = [selectors] if isinstance(selectors, str) else list(selectors)
        out: list[str] = []
        for s in items:
            if not isinstance(s, str):
                raise DataError(f"selectors must be strings like 'vision' or 'joints@t-1'; got {s!r}")
            name, at, step = s.partition("@")
            out += [f"{m}{at}{step}" for m in self.modality_names] if name == "*" else [s]
        for s in out:
            name, _, step = s.partition("@")
            self.modality(name)
            if step and step not in self.time_steps:
                raise DataError(
                    f"data set {self.name!r}: selector {s!r} names time step {step!r}; the steps are "
                    f"{list(self.time_steps)}"
                )
        return out

    def mask(self, selector: str | Sequence[str]) -> np.ndarray:
        """Boolean mask over the columns, shape ``[n_columns]``, for ``"modality"``
        (every time step), ``"modality@step"``, ``"*"`` (every modality) or ``"*@step"``
        (every modality at one step), or a list of those (their union; empty: no column)."""
        wanted = set()
        for s in self.expand(selector):
            name, _, step = s.partition("@")
            size = self.modality(name).size
            wanted |= {f"{name}_{t}_{i}" for t in ([step] if step else self.time_steps) for i in range(size)}
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
            "modalities": [
                {"name": m.name, "size": m.size, **({"likelihood": m.likelihood} if m.likelihood != "gaussian" else {})}
                for m in self.modalities
            ],
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

    @property
    def likelihoods(self) -> dict[str, str]:
        """Each modality's output family, in modality order."""
        return {m.name: m.likelihood for m in self.modalities}

    def with_likelihoods(self, likelihoods: dict[str, str], *, origin: str = "likelihoods") -> DatasetDescription:
        """A copy whose named modalities have these output families (the others keep
        theirs); an unknown modality or family is a :class:`~intermodal.errors.DataError`
        naming ``origin``."""
        for name, family in likelihoods.items():
            if name not in self.modality_names:
                raise DataError(
                    f"{origin}: data set {self.name!r} has no modality {name!r}; it has {self.modality_names}"
                )
            if family not in LIKELIHOODS:
                raise DataError(f"{origin}: {name}={family!r}; expected one of {', '.join(LIKELIHOODS)}")
        if not likelihoods:
            return self
        modalities = tuple(
            dataclasses.replace(m, likelihood=cast(Family, likelihoods.get(m.name, m.likelihood)))  # checked above
            for m in self.modalities
        )
        return self.replace(modalities=modalities)


for _cls in (Modality, TableFile, PredictionTest, DatasetDescription):
    errors_as(DataError)(_cls)
_DESCRIPTION = TypeAdapter(DatasetDescription)


def builtin_description_path(name: str) -> Path:
    """The description file of a data set shipped with intermodal (e.g. ``icub-zambelli2020``)."""
    return _DATASETS_DIR / f"{name}.json"
