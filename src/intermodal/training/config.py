"""The one configuration of a run: typed fields with defaults (a pydantic model).

Values come, in rising priority, from the defaults below, a study preset, a config file
(``--config run.toml`` or ``.json``) and command-line options. Unknown keys are rejected
with the list of known ones; every value's type and range is checked, and values that can
only make training diverge (an infinite learning rate, say) are refused before anything
starts. A run folder keeps the resolved config as ``config.json``, from which the run can
be resumed and its figures rebuilt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BeforeValidator, Field, Strict, field_validator, model_validator

from ..data.catalog import BUILTIN_DATA
from ..data.description import Family
from ..data.reading import read_mapping_file
from ..errors import ConfigError, DataError, ScheduleError, errors_as
from ..model.posterior import MAX_Z_SAMPLES
from ..options import RAW_STRING, Options
from ..streams import MAX_SEED
from .schedules import PAPER_EPOCHS, PAPER_SCHEDULES, parse_schedule

__all__ = [
    "RunConfig",
    "MAX_SEEDS",
    "MAX_EPOCHS",
    "MAX_THREADS",
    "ModelKey",
    "MODEL_KEY_COLUMNS",
    "label_models",
    "load_config_file",
    "parse_seeds",
    "STUDY_PRESETS",
    "PRESET_SUMMARIES",
    "preset_config",
]


class ModelKey(NamedTuple):
    """Which model a position of a run's ensemble holds: its fusion, schedule and seed."""

    fusion: str
    schedule: str
    seed: int


# The columns that name a model in every table of a run.
MODEL_KEY_COLUMNS = list(ModelKey._fields)

# Limits checked before anything is allocated or trained (docs/reliability.md, "Limits"):
# seeds per run (each a model per fusion and schedule), epochs (and every count of epochs:
# the schedule horizon, eval_every, ...; the paper trains 80 000), and torch threads or
# parallel workers.
MAX_SEEDS = 10_000
MAX_EPOCHS = 1_000_000
MAX_THREADS = 1024


def parse_seeds(value) -> list[int]:
    """``5`` → seeds 0..4; ``"0,3,7"`` → those; ``"10-19"`` → 10..19; a list as given."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number of seeds or a list")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{value} must be >= 1 (the number of seeds, from 0)")
        if value > MAX_SEEDS:
            raise ValueError(f"{value} seeds; a run has at most MAX_SEEDS = {MAX_SEEDS}")
        return list(range(value))
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_SEEDS:
            raise ValueError(f"{len(value)} seeds; a run has at most MAX_SEEDS = {MAX_SEEDS}")
        return list(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r}; expected a count (5), a list (0,3,7) or a range (10-19)")
    text = value.strip()
    try:
        if "," in text:
            return parse_seeds([int(v) for v in text.split(",") if v.strip()])
        if "-" in text[1:]:
            a, b = (int(v) for v in text.split("-", 1))
        else:
            a, b = None, int(text)
    except ValueError:
        raise ValueError(f"{value!r}; expected a count (5), a list (0,3,7) or a range (10-19)") from None
    if a is None:
        return parse_seeds(b)
    if b - a + 1 > MAX_SEEDS:
        raise ValueError(f"{value!r} is {b - a + 1} seeds; a run has at most MAX_SEEDS = {MAX_SEEDS}")
    return list(range(a, b + 1))


def parse_likelihoods(value) -> dict[str, str]:
    """``"touch=bernoulli,sound=bernoulli"`` → ``{"touch": "bernoulli", "sound": "bernoulli"}``;
    a mapping as given."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r}; expected MODALITY=FAMILY pairs, e.g. touch=bernoulli,sound=bernoulli")
    out = {}
    for item in (v.strip() for v in value.split(",") if v.strip()):
        name, eq, family = item.partition("=")
        if not eq or not name.strip() or not family.strip():
            raise ValueError(f"{item!r}; expected MODALITY=FAMILY, e.g. touch=bernoulli")
        if name.strip() in out:
            raise ValueError(f"modality {name.strip()!r} is named twice")
        out[name.strip()] = family.strip()
    return out


Whole = Annotated[int, Strict()]
Positive = Annotated[int, Strict(), Field(ge=1)]
Epochs = Annotated[int, Strict(), Field(ge=1, le=MAX_EPOCHS)]
EpochsOrNever = Annotated[int, Strict(), Field(ge=0, le=MAX_EPOCHS)]
Threads = Annotated[int, Strict(), Field(ge=1, le=MAX_THREADS)]
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]


@errors_as(ConfigError, known_keys=True)
class RunConfig(Options):
    """Everything a run is made of: the data, the models (one per schedule × seed), the
    optimisation, the evaluation during training and the checkpoints. Every field has a
    default (below) and is also a command-line flag (``--batch-size``) and a key of a
    ``--config`` file; values are checked strictly and unknown keys are refused, each with
    a :class:`~intermodal.errors.ConfigError` naming it."""

    # --- data -----------------------------------------------------------------------
    data: str = "sim"  # "sim", "icub", "digits", or a data set description file (.json/.toml)
    data_dir: str | None = None  # read the data files from here instead of fetching
    sim: dict[str, Any] = Field(default_factory=dict)  # simulator options for --data sim
    patterns: list[str] | None = None  # muting patterns to train on; None = all
    # how training rows are muted (docs/method.md §1): "patterns", the data set's muting
    # patterns (Zambelli's, the paper's study); "subsets", each row once complete and once per
    # other pattern with a random non-empty proper subset of its modalities given
    muting: Literal["patterns", "subsets"] = "patterns"
    # --- models: one per (fusion, schedule, seed) -----------------------------------
    # names in the fusion registry (intermodal.model.fusions.FUSIONS), each once
    fusions: list[str] = Field(default_factory=lambda: ["concat"], min_length=1)
    schedules: list[str] = Field(default_factory=lambda: ["constant-0"], min_length=1)
    seeds: Annotated[list[Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]], BeforeValidator(parse_seeds)] = Field(
        default_factory=lambda: [0], min_length=1, json_schema_extra=RAW_STRING
    )
    architecture: str = "1"  # preset 1..7 of the original code, or an architecture .json
    # each named modality's output family for this run (others keep their description's;
    # docs/method.md §5b): MODALITY=FAMILY pairs, FAMILY one of LIKELIHOODS
    likelihoods: Annotated[dict[str, Family], BeforeValidator(parse_likelihoods)] = Field(
        default_factory=dict, json_schema_extra=RAW_STRING
    )
    # --- optimisation (docs/method.md §3) -------------------------------------------
    epochs: Epochs = 200
    schedule_horizon: Epochs | None = None  # epochs a schedule is laid over; None = epochs
    lr: Annotated[Finite, Field(gt=0)] = 5e-5
    batch_size: Positive = 1000
    dtype: Literal["float32", "float64"] = "float32"  # the original trains in float64; float32 agrees (docs)
    device: str = "cpu"
    # torch threads per worker: these layers are too small to split across threads, and on
    # a busy machine extra threads spin-wait (docs/performance.md).
    threads: Threads | None = 1
    workers: Threads | None = None  # models train in this many parallel shards; None = one per core
    # --- evaluation during training (0 = never) ---------------------------------------
    eval_every: EpochsOrNever = 0
    eval_rows: Literal["first", "random", "all"] = "first"  # rows of the test part
    n_eval_rows: Positive | None = None  # None = 1024 (the paper's), or every test row when fewer
    eval_seed: Annotated[Whole, Field(ge=0, le=MAX_SEED)] = 0
    # latent samples the measures decode from: 0 = the posterior's mean (the original's
    # evaluation); None = each fusion's default (0 for concat and poe, 16 for the mixtures)
    z_samples: Annotated[Whole, Field(ge=0, le=MAX_Z_SAMPLES)] | None = None
    # how latent samples become a divergence (docs/method.md §5c): None = per posterior
    # ("predictive" for a mixture, "per-sample" for a Gaussian)
    divergence: Literal["per-sample", "predictive"] | None = None
    extra_pairs: dict[str, dict[str, list[str]]] = Field(default_factory=dict)  # name -> {"muted", "compared"}
    # The lattice measures (docs/method.md §5d: Shapley shares of the baseline, who informs
    # whom, interactions) at the run's evaluations: None = off; the parts are "modalities" or
    # "steps" (each modality@step). Each costs 2^parts muted copies per evaluation (docs).
    shares: Literal["modalities", "steps"] | None = None
    shares_every: EpochsOrNever = 0  # epochs between evaluations with shares; 0 = the last only
    # For data 'sim': add what the simulator's ground-truth checks need (the distractors
    # noise and copy-vision, unless the sim options name distractors; the pairs the checks
    # measure). No effect on other data. The study presets turn it on.
    ground_truth: Annotated[bool, Strict()] = False
    # For data 'sim' with ground_truth: a study also trains the ground-truth controls (small
    # worlds whose truth the models learn, fixed recipes: intermodal.study.controls) in
    # RUN/controls/NAME, and the report checks the lattice's synergy and redundancy on them.
    # No effect elsewhere. The study presets turn it on.
    ground_truth_controls: Annotated[bool, Strict()] = False
    windows: list[tuple[Finite, Finite]] | None = None  # epoch windows for the window means
    # --- output ---------------------------------------------------------------------
    checkpoint_every: Epochs = 1000  # epochs between checkpoints (and at the end)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds repeat in {seeds}; expected distinct seeds")
        return seeds

    @field_validator("fusions")
    @classmethod
    def _distinct_fusions(cls, fusions: list[str]) -> list[str]:
        from ..model.fusions import FUSIONS  # the registry, read when checked: a fusion registered later counts

        for f in fusions:
            if f not in FUSIONS:
                raise ValueError(f"fusion {f!r}: expected one of {', '.join(FUSIONS)}")
        if len(set(fusions)) != len(fusions):
            raise ValueError(f"fusions repeat in {fusions}; expected distinct names")
        return fusions

    @field_validator("schedules")
    @classmethod
    def _known_schedules(cls, schedules: list[str]) -> list[str]:
        if len(set(schedules)) != len(schedules):
            raise ValueError(f"schedules repeat in {schedules}; expected distinct names")
        for s in schedules:
            try:
                parse_schedule(s)
            except ScheduleError as e:
                raise ValueError(str(e)) from None
        return schedules

    @field_validator("device")
    @classmethod
    def _device(cls, device: str) -> str:
        if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
            raise ValueError(f"{device!r}; expected 'cpu' or 'cuda' (or 'cuda:N')")
        return device

    @field_validator("windows")
    @classmethod
    def _windows(cls, windows):
        if windows is not None and not all(a < b for a, b in windows):
            raise ValueError("each window is [start, end] with start < end")
        return windows

    @field_validator("extra_pairs")
    @classmethod
    def _pairs(cls, pairs: dict) -> dict:
        for name, pair in pairs.items():
            if set(pair) != {"muted", "compared"}:
                raise ValueError(f"pair {name!r} has keys {sorted(pair)}; expected exactly 'muted' and 'compared'")
        return pairs

    @model_validator(mode="after")
    def _shares_at_evaluations(self):
        if self.shares is not None and not self.eval_every:
            raise ValueError(
                "shares are computed at the run's evaluations, and eval_every is 0 (never); set eval_every, or "
                "measure a trained run with `intermodal measure RUN --shares`"
            )
        if self.shares_every and self.shares is None:
            raise ValueError(f"shares_every {self.shares_every} needs shares (modalities or steps)")
        if self.shares_every and self.shares_every % self.eval_every:
            raise ValueError(
                f"shares_every {self.shares_every} is not a multiple of eval_every {self.eval_every}: shares are "
                "computed at evaluations"
            )
        return self

    @model_validator(mode="after")
    def _data_dir_only_for_files(self):
        if self.data == "sim" and self.data_dir is not None:
            raise ValueError("data_dir applies to 'icub' or a description file; the simulator makes its data")
        if self.data != "sim" and self.sim:
            raise ValueError(f"sim options {sorted(self.sim)} apply only to data 'sim'")
        return self

    @model_validator(mode="after")
    def _muting_or_patterns(self):
        if self.muting == "subsets" and self.patterns is not None:
            raise ValueError(
                f"patterns {self.patterns} and muting 'subsets' exclude each other: random subsets replace the "
                "muting patterns; give one of --patterns, --muting subsets"
            )
        return self

    # ------------------------------------------------------------------ helpers
    def model_keys(self) -> list[ModelKey]:
        """The :class:`ModelKey` of each model position: fusion-major, then schedule, then
        seed (the models of one fusion are consecutive, and so are a schedule's seeds)."""
        return [ModelKey(f, s, seed) for f in self.fusions for s in self.schedules for seed in self.seeds]

    def with_absolute_paths(self, base: str | Path | None = None) -> RunConfig:
        """A copy whose data file and folder paths are absolute, so that a run folder can be
        resumed from any working directory."""
        base = Path(base or Path.cwd())
        changes: dict[str, Any] = {}
        if self.data not in BUILTIN_DATA:
            changes["data"] = str((base / self.data).resolve())
        if self.data_dir is not None:
            changes["data_dir"] = str((base / self.data_dir).resolve())
        if self.architecture.endswith(".json"):
            changes["architecture"] = str((base / self.architecture).resolve())
        resolved = [_absolute_table(s, base) for s in self.schedules]
        if resolved != self.schedules:
            changes["schedules"] = resolved
        return self.updated(changes) if changes else self

    @classmethod
    def from_dict(cls, values: dict, origin: str = "config") -> RunConfig:
        return cls.from_mapping(values, origin)


def key_columns(model_keys, repeat: int = 1) -> dict:
    """The :class:`ModelKey` columns of a table holding ``repeat`` consecutive rows per
    model, models in position order: column name -> array (``seed`` as int64). Keys may be
    given as plain tuples in ModelKey's order."""
    import numpy as np

    keys = [ModelKey(*k) for k in model_keys]
    return {
        column: np.repeat(np.array([k[i] for k in keys], dtype=np.int64 if column == "seed" else object), repeat)
        for i, column in enumerate(MODEL_KEY_COLUMNS)
    }


def label_models(table, model_keys: list[ModelKey] | None):
    """``table`` (a DataFrame with a column ``model``, a position in an ensemble) with the
    :class:`ModelKey` columns right after ``model``, in place: the one way a table's models
    are labelled. Unchanged where it has them already, or where ``model_keys`` is None (a
    model that does not know its keys)."""
    if model_keys is None or all(column in table for column in MODEL_KEY_COLUMNS):
        return table
    keys = [ModelKey(*k) for k in model_keys]
    positions = table["model"].to_numpy()
    for index, column in reversed(list(enumerate(MODEL_KEY_COLUMNS))):
        table.insert(table.columns.get_loc("model") + 1, column, [keys[p][index] for p in positions])
    return table


def _absolute_table(spec: str, base: Path) -> str:
    if spec.startswith("table:"):
        return "table:" + str((base / spec[len("table:") :]).resolve())
    return spec


# Study presets: overrides of the defaults above. Why they are as they are: intermodal.study.
STUDY_PRESETS: dict[str, dict] = {
    "paper": dict(
        schedules=list(PAPER_SCHEDULES),
        seeds=list(range(20)),
        epochs=PAPER_EPOCHS,
        lr=5e-5,
        eval_every=200,
        checkpoint_every=1000,
        ground_truth=True,
        ground_truth_controls=True,
    ),
    "quick": dict(
        schedules=list(PAPER_SCHEDULES),
        seeds=[0, 1, 2],
        epochs=1500,
        lr=3e-4,
        eval_every=50,
        checkpoint_every=250,
        ground_truth=True,
        ground_truth_controls=True,
        shares="modalities",
    ),
}
# The front door: the quick preset's gradient steps at half its computation (batches of 500
# over half the epochs), so that a first study ends in minutes with the simulator's
# ground-truth checks still decided (docs/study.md, "Presets").
STUDY_PRESETS["demo"] = dict(STUDY_PRESETS["quick"], epochs=750, batch_size=500, eval_every=25)
# What each preset is for, in a few words (the command line's help reads it).
PRESET_SUMMARIES = {
    "quick": "minutes on 2 CPU cores (default)",
    "demo": "a first study, half the quick preset's computation",
    "paper": "the paper's protocol (80 000 epochs)",
}


def preset_config(name: str) -> RunConfig:
    """The run config of a study preset (see :mod:`intermodal.study` for what they are)."""
    if name not in STUDY_PRESETS:
        raise ConfigError(f"--preset {name!r}: expected one of {sorted(STUDY_PRESETS)}")
    return RunConfig.from_mapping(STUDY_PRESETS[name], origin=f"preset {name}")


def load_config_file(path: str | Path) -> dict:
    """Read a TOML or JSON config file into a plain dict (keys checked when applied)."""
    try:
        return read_mapping_file(path, "config file")
    except DataError as e:
        raise ConfigError(str(e)) from None
