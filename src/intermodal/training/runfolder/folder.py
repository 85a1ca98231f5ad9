"""A run folder's names, where its files are, the lock of its one writer, and its small
JSON records (config, description, environment): the one module that spells its file and
folder names (:mod:`intermodal.training.runfolder` lists them)."""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from ...data.catalog import DESCRIPTION_FILE
from ...data.description import DatasetDescription
from ...data.reading import read_mapping_file
from ...errors import ConfigError, DataError, RunFolderError
from ...files import write_json
from .. import checkpoint
from ..config import RunConfig

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
    "TRACKING",
    "UNITS",
    "CONTROLS",
    "RunLock",
    "writing",
    "start_run",
    "record_environment",
    "read_environment",
    "read_config",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_path",
    "has_checkpoint",
    "checkpoint_state",
    "epochs_done",
    "baselines_path",
    "figures_path",
    "report_path",
    "table_path",
    "tracking_path",
    "units_path",
    "controls_path",
    "unit_plan_path",
    "driver_marker_path",
    "driver_markers",
    "is_cluster_run",
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
CONTROLS = "controls"  # RUN/controls/NAME: the ground-truth controls' run folders (intermodal.study.controls)
UNIT_PLAN = "plan.json"
DRIVER_MARKER = ".driver-"  # units/.driver-<token>: which driver's units these are (intermodal.study.cluster)
LOCK = ".lock"


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


def controls_path(run: str | Path) -> Path:
    """The folder of a study's ground-truth controls (``RUN/controls``), one run folder each."""
    return Path(run) / CONTROLS


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

    @staticmethod
    def holder(folder: str | Path) -> int | None:
        """The pid of the process that holds ``folder``'s lock now (None if none does)."""
        try:
            fd = os.open(Path(folder) / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else None
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

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
