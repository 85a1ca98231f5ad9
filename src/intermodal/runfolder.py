"""A run folder: the one module that knows its files, their columns and the tables derived
from them. Training writes through it, and measuring, figures, the report and the cluster
backend read through it; nothing else opens these files.

Files of ``RUN/``::

    config.json          the resolved :class:`~intermodal.config.RunConfig`
    description.json     the data set's description
    history.parquet      one row per schedule, seed, epoch: HISTORY_COLUMNS
    results.parquet      one row per schedule, seed, epoch, quantity, modality, scope: RESULTS_COLUMNS
    diagnostics.parquet  one row per schedule, seed, epoch, latent dimension: DIAGNOSTICS_COLUMNS
    prediction_tests.parquet  the prediction tests' errors (intermodal predict RUN --tests)
    baselines/           the prediction baselines (intermodal.baselines)
    checkpoint/          weights, optimiser and generator states (intermodal.checkpoint)
    figures/             PNG and SVG of each figure
    report.html          the report
    .lock                held by the one process writing the folder

Every file is written atomically and durably (:mod:`intermodal.files`). Derived tables
(seed summaries, window means, active-unit counts, the epoch windows) are computed here
and only here.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow

from .config import RunConfig
from .data import DataError, DatasetDescription, read_mapping_file
from .files import atomic_write, write_json
from .options import OptionError

__all__ = [
    "CONFIG",
    "DESCRIPTION",
    "HISTORY",
    "RESULTS",
    "DIAGNOSTICS",
    "CHECKPOINT",
    "FIGURES",
    "REPORT",
    "HISTORY_COLUMNS",
    "RESULTS_COLUMNS",
    "MEASURE_QUANTITIES",
    "BAND_DESCRIPTIONS",
    "RunFolderError",
    "Run",
    "RunLock",
    "writing",
    "start_run",
    "save_tables",
    "read_config",
    "read_history",
    "read_table",
    "read_run",
    "list_models",
    "merge_tables",
    "merge_runs",
    "normalised_results",
    "default_windows",
    "resolve_windows",
    "window_label",
    "in_window",
    "schedule_order",
    "modality_order",
    "seed_summary",
    "window_means",
    "window_schedule_means",
    "active_unit_counts",
]

CONFIG = "config.json"
DESCRIPTION = "description.json"
HISTORY = "history.parquet"
RESULTS = "results.parquet"
DIAGNOSTICS = "diagnostics.parquet"
CHECKPOINT = "checkpoint"
FIGURES = "figures"
REPORT = "report.html"
LOCK = ".lock"

HISTORY_COLUMNS = ["schedule", "seed", "epoch", "beta", "reconstruction_loss", "latent_loss", "loss", "diverged"]
RESULTS_COLUMNS = ["schedule", "seed", "epoch", "quantity", "modality", "scope", "value"]
DIAGNOSTICS_COLUMNS = ["schedule", "seed", "epoch", "latent_dim", "kl", "posterior_mean_variance", "active"]
# "diverged" (True from the epoch a model's loss became non-finite) may be absent from
# tables written by other tools; it is then all False.
_REQUIRED_COLUMNS = {HISTORY: HISTORY_COLUMNS[:7], RESULTS: RESULTS_COLUMNS, DIAGNOSTICS: DIAGNOSTICS_COLUMNS}
MEASURE_QUANTITIES = ("single_modality_error", "loss_of_precision")
BAND_DESCRIPTIONS = {"sd": "band: ±1 sd over seeds", "minmax": "band: min–max over seeds"}


class RunFolderError(ValueError):
    """A run folder lacks a file, holds a malformed one, or is in use by another process."""


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
    units' (a cluster study, intermodal.cluster)."""
    return (folder / CHECKPOINT / "state.json").is_file() or any((folder / "units").glob(f"*/{CHECKPOINT}/state.json"))


def _remove_partial_run(folder: Path, made: bool) -> None:
    """Remove what a run that failed before its first checkpoint wrote (nothing resumable)."""
    if made:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in (CONFIG, DESCRIPTION, HISTORY, RESULTS, DIAGNOSTICS, LOCK):
        (folder / name).unlink(missing_ok=True)
    for name in (CHECKPOINT + ".new", FIGURES):
        shutil.rmtree(folder / name, ignore_errors=True)


# --------------------------------------------------------------------------- writing
def start_run(folder: str | Path, config: RunConfig, description: DatasetDescription) -> None:
    """Write ``config.json`` and ``description.json`` (the folder must exist)."""
    folder = Path(folder)
    write_json(folder / CONFIG, config.to_dict())
    write_json(folder / DESCRIPTION, description.to_dict())


def save_tables(
    folder: str | Path, history: pd.DataFrame | None = None, tables: dict[str, pd.DataFrame] | None = None
) -> None:
    """Write the history and evaluation tables (``results``, ``diagnostics``, ...), each
    atomically; a table's stem names its file."""
    folder = Path(folder)
    if history is not None:
        _write_parquet(folder / HISTORY, history)
    for stem, table in (tables or {}).items():
        _write_parquet(folder / f"{stem}.parquet", table)


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
    except (DataError, OptionError) as e:
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
    return _clean_history(read_table(Path(folder) / HISTORY))


@dataclass
class Run:
    """The contents of one run folder, as read from disk."""

    path: Path
    config: RunConfig
    description: DatasetDescription | None
    history: pd.DataFrame
    results: pd.DataFrame
    diagnostics: pd.DataFrame | None
    checkpoint: Path | None

    def models(self) -> list[tuple[str, int]]:
        """(schedule, seed) of each model position, in the run's order."""
        return self.config.model_keys()


def read_run(folder: str | Path, *, need_results: bool = True) -> Run:
    """Read a run folder's config, description and tables (see the module docstring).
    ``need_results``: a missing ``results.parquet`` is an error (else an empty table)."""
    folder = Path(folder)
    config = read_config(folder)
    description = None
    if (folder / DESCRIPTION).is_file():
        try:
            description = DatasetDescription.from_dict(
                _read_json(folder / DESCRIPTION), origin=str(folder / DESCRIPTION)
            )
        except DataError as e:
            raise RunFolderError(str(e)) from None
    history = read_history(folder)
    if (folder / RESULTS).is_file() or need_results:
        results = _clean_results(read_table(folder / RESULTS))
    else:
        results = pd.DataFrame(columns=RESULTS_COLUMNS)
    diagnostics = read_table(folder / DIAGNOSTICS) if (folder / DIAGNOSTICS).is_file() else None
    checkpoint = folder / CHECKPOINT if (folder / CHECKPOINT / "state.json").is_file() else None
    return Run(folder, config, description, history, results, diagnostics, checkpoint)


def _read_json(path: Path) -> dict:
    try:
        return read_mapping_file(path, "JSON file")
    except DataError as e:
        raise RunFolderError(str(e)) from None


def list_models(folder: str | Path) -> list[tuple[str, int]]:
    """(schedule, seed) of each model a run folder holds, in position order."""
    return read_config(folder).model_keys()


def _clean_history(history: pd.DataFrame) -> pd.DataFrame:
    # Cleans in place: called only on a frame just read from disk (a paper-scale history has
    # millions of rows, so a copy would double the memory).
    history["schedule"] = history["schedule"].astype(str)
    if "diverged" not in history:
        history["diverged"] = False
    return history


def _clean_results(results: pd.DataFrame) -> pd.DataFrame:
    for column in ("schedule", "quantity"):
        results[column] = results[column].astype(str)
    # Missing modality/scope mean "does not apply"; "" is the table's spelling of that.
    for column in ("modality", "scope"):
        results[column] = results[column].fillna("").astype(str)
    results["value"] = results["value"].astype(float)
    return results


# --------------------------------------------------------------------------- merging
def merge_tables(tables: list[pd.DataFrame], keys: list[tuple[str, int]], *, by_epoch_first: bool) -> pd.DataFrame:
    """Tables of disjoint models (parts of one run) as the one table a single run writes:
    rows ordered by model position then epoch (history), or by epoch then model position
    (evaluation tables, as written evaluation by evaluation); rows of one (model, epoch)
    keep their order."""
    tables = [t for t in tables if t is not None and len(t)]
    if not tables:
        return pd.DataFrame()
    frame = pd.concat(tables, ignore_index=True)
    position = {k: i for i, k in enumerate(keys)}
    try:
        model = np.array([position[(s, int(n))] for s, n in zip(frame["schedule"].astype(str), frame["seed"])])
    except KeyError as e:
        raise RunFolderError(f"a table holds model {e.args[0]}, which is not among the run's models {keys}") from None
    epoch = frame["epoch"].to_numpy()
    primary, secondary = (epoch, model) if by_epoch_first else (model, epoch)
    # lexsort sorts by its last key first; the row number keeps each (model, epoch)'s order.
    order = np.lexsort([np.arange(len(frame)), secondary, primary])
    return frame.iloc[order].reset_index(drop=True)


def merge_runs(sources: list[str | Path], out: str | Path, config: RunConfig) -> Path:
    """Merge run folders that each hold some of the models of one run (``config``, whose
    schedules and seeds cover them all, each model exactly once) into ``out``: the same
    files, columns and row order as one run of ``config`` writes, and one checkpoint of
    the whole ensemble. The sources are read, never changed; their order does not matter."""
    from .checkpoint import merge_checkpoints

    out = Path(out)
    keys = config.model_keys()
    runs = [read_run(s, need_results=False) for s in sources]
    held: dict[tuple[str, int], Path] = {}
    for run in runs:
        mine = run.config.to_dict()
        whole = config.to_dict()
        # Which models, and how many cores trained them, may differ between the parts: the
        # number of workers and threads changes no result.
        for key in ("schedules", "seeds", "workers", "threads"):
            mine.pop(key)
            whole.pop(key)
        if mine != whole:
            differing = sorted(k for k in mine if mine[k] != whole.get(k))
            raise RunFolderError(
                f"{run.path}: its config differs from the run's in {differing}; only schedules, seeds, "
                "workers and threads may differ between the parts of one run"
            )
        for key in run.models():
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
    for stem, table_of in ((RESULTS[:-8], lambda r: r.results), (DIAGNOSTICS[:-8], lambda r: r.diagnostics)):
        parts = [table_of(r) for r in runs]
        if any(p is not None and len(p) for p in parts):
            tables[stem] = merge_tables(parts, keys, by_epoch_first=True)
    save_tables(out, merge_tables([r.history for r in runs], keys, by_epoch_first=False), tables)
    checkpoints = [r.checkpoint for r in runs]
    if all(c is not None for c in checkpoints):
        merge_checkpoints(checkpoints, out / CHECKPOINT, keys, config.to_dict(), sorted(tables))
    return out


# --------------------------------------------------------------------------- derived tables
def normalised_results(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with missing modality/scope spelled "" (a copy only if any is missing), so
    the public functions accept a table built in memory as well as one read by load_run."""
    if results["modality"].isna().any() or results["scope"].isna().any():
        results = results.assign(modality=results["modality"].fillna(""), scope=results["scope"].fillna(""))
    return results


def default_windows(epochs: int) -> list[tuple[float, float]]:
    """The paper's two windows (60–70 k and 70–80 k of 80 k epochs) scaled to ``epochs``.

    Windows are half-open ``[start, end)``; the last one ends at ``epochs + 1`` so that an
    evaluation written at epoch ``epochs`` (after the last training epoch) still counts.
    """
    epochs = int(epochs)
    return [(int(0.75 * epochs), int(0.875 * epochs)), (int(0.875 * epochs), epochs + 1)]


def resolve_windows(
    config: dict | None, history: pd.DataFrame | None = None, results: pd.DataFrame | None = None
) -> list[tuple[float, float]]:
    """``config["windows"]`` if given, else :func:`default_windows` for the run's length
    (``config["epochs"]``, else one past the last epoch found in the tables)."""
    config = config or {}
    if config.get("windows"):
        try:
            windows = [(float(a), float(b)) for a, b in config["windows"]]
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"config 'windows' must be a list of [start, end] epoch pairs, got {config['windows']!r}"
            ) from error
        backwards = [w for w in windows if not w[0] < w[1]]
        if backwards:
            raise ValueError(f"config 'windows': each window needs start < end; not so for {backwards}")
        return [(_int_if_whole(a), _int_if_whole(b)) for a, b in windows]
    epochs = config.get("epochs")
    if epochs is None:
        last = [int(t["epoch"].max()) for t in (history, results) if t is not None and len(t)]
        epochs = max(last) + 1 if last else 1
    return default_windows(int(epochs))


def _int_if_whole(x: float):
    return int(x) if float(x).is_integer() else x


def window_label(window: tuple[float, float]) -> str:
    """Human-readable range of a half-open window; integer epochs are shown inclusively."""
    start, end = window
    if float(start).is_integer() and float(end).is_integer():
        last = int(end) - 1
        return f"epochs {int(start)}–{last}" if last > int(start) else f"epoch {int(start)}"
    return f"epochs [{start:g}, {end:g})"


def in_window(epochs: pd.Series, window: tuple[float, float]) -> pd.Series:
    """Which epochs fall in a half-open window ``[start, end)``."""
    start, end = window
    return (epochs >= start) & (epochs < end)


def schedule_order(*tables: pd.DataFrame | None, config: dict | None = None) -> list[str]:
    """Schedules in the config's order, then any others in order of first appearance."""
    names: list[str] = []
    for name in (config or {}).get("schedules") or []:
        if str(name) not in names:
            names.append(str(name))
    present: set[str] = set()
    for table in tables:
        if table is not None and "schedule" in table:
            for name in pd.unique(table["schedule"].astype(str)):
                present.add(name)
                if name not in names:
                    names.append(name)
    # A configured schedule with no rows (e.g. a crashed run) would only draw empty panels.
    return [n for n in names if n in present] if present else names


def modality_order(results: pd.DataFrame) -> list[str]:
    """Modality names in order of first appearance among the measure rows."""
    rows = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    rows = rows[rows["modality"].notna() & (rows["modality"] != "")]
    return [str(m) for m in pd.unique(rows["modality"])]


def seed_summary(frame: pd.DataFrame, keys: list[str], value: str, band: str = "sd") -> pd.DataFrame:
    """Mean over seeds per ``keys`` + epoch, with the band's ``low``/``high`` and ``n_seeds``."""
    if band not in BAND_DESCRIPTIONS:
        raise ValueError(f"band must be one of {sorted(BAND_DESCRIPTIONS)}, not {band!r}")
    columns = keys + ["epoch", "mean", "low", "high", "n_seeds"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    stats = (
        frame.groupby(keys + ["epoch"], sort=True, observed=True)[value]
        .agg(["mean", "std", "min", "max", "count"])
        .reset_index()
    )
    if band == "sd":
        spread = stats["std"].fillna(0.0)
        stats["low"], stats["high"] = stats["mean"] - spread, stats["mean"] + spread
    else:
        stats["low"], stats["high"] = stats["min"], stats["max"]
    stats["n_seeds"] = stats["count"]
    return stats[columns]


def window_means(
    results: pd.DataFrame, windows: list[tuple[float, float]], quantities: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Per window: each seed's mean over the window's evaluations, then mean and sd over seeds.

    Returns one row per (window, schedule, quantity, modality, scope) with columns
    ``window`` (index into ``windows``), ``start``, ``end``, ``mean``, ``sd`` (sample sd,
    NaN for one seed), ``min``, ``max``, ``n_seeds``, ``n_epochs``.
    """
    keys = ["schedule", "quantity", "modality", "scope"]
    results = normalised_results(results)
    if quantities is not None:
        results = results[results["quantity"].isin(quantities)]
    parts = []
    for index, window in enumerate(windows):
        inside = results[in_window(results["epoch"], window)]
        if inside.empty:
            continue
        per_seed = (
            inside.groupby(keys + ["seed"], sort=False)
            .agg(value=("value", "mean"), n_epochs=("epoch", "nunique"))
            .reset_index()
        )
        stats = (
            per_seed.groupby(keys, sort=False)
            .agg(
                mean=("value", "mean"),
                sd=("value", "std"),
                min=("value", "min"),
                max=("value", "max"),
                n_seeds=("seed", "nunique"),
                n_epochs=("n_epochs", "max"),
            )
            .reset_index()
        )
        stats.insert(0, "end", window[1])
        stats.insert(0, "start", window[0])
        stats.insert(0, "window", index)
        parts.append(stats)
    columns = ["window", "start", "end"] + keys + ["mean", "sd", "min", "max", "n_seeds", "n_epochs"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def active_unit_counts(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """Number of active latent units per (schedule, seed, model, epoch)."""
    keys = [k for k in ("schedule", "seed", "model", "epoch") if k in diagnostics]
    counts = diagnostics.assign(active=diagnostics["active"].astype(float)).groupby(keys, sort=True)["active"].sum()
    return counts.reset_index(name="active_units")


def window_schedule_means(frame: pd.DataFrame, value: str, window) -> pd.Series:
    """Per schedule: mean over seeds of each seed's mean over the window's epochs."""
    inside = frame[in_window(frame["epoch"], window)]
    if inside.empty:
        return pd.Series(dtype=float)
    return inside.groupby(["schedule", "seed"])[value].mean().groupby("schedule").mean()
