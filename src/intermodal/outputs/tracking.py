"""Live tracking of a study in TensorBoard or MLflow (``--track``).

A tracker receives what the trainer and the study produce while they run: the training
history after every epoch, the evaluation tables after every evaluation, the run's config at
the start and the figures at the end. :class:`TensorBoardTracker` writes them as TensorBoard
event files, :class:`MLflowTracker` to an MLflow tracking store; the base :class:`Tracker`
logs nothing and stands in where no ``--track`` was given. :func:`open_tracker` makes the one
a ``--track`` value asks for (:func:`parse_track` reads the value).

Both trackers give every value the same name (:func:`metric_name`), at step = the epoch
(epochs trained; the history's 0-based epoch just trained), in the tables' own units:

* ``<model>/beta``, ``<model>/reconstruction_loss``, ``<model>/latent_loss``, ``<model>/loss``
  for every history row (a value that is not finite, as a diverged model's NaN, is skipped);
* ``<model>/<quantity>/<modality>/<scope>`` for every row of an evaluation's results, empty
  parts left out (``constant-0/seed-3/baseline``), whatever the quantity (the lattice's
  ``share`` rows too: ``constant-0/seed-3/share/vision/all``), but for an ``interaction``,
  whose two parts are two parts of the name (``.../interaction/vision/touch/all``, so that
  ``a_b&c`` and ``a&b_c`` stay apart), and ``<model>/active_units``, the number of active
  latent dimensions in its diagnostics.

``<model>`` is the model's key values (the columns
:data:`~intermodal.training.config.MODEL_KEY_COLUMNS`, in that order) joined by ``/``, an
integer value written ``<column>-<value>``: ``constant-0/seed-3`` for the key (schedule,
seed). In every part, a character other than an ASCII letter or digit, ``_``, ``-``, ``.`` or
a space (what MLflow allows in a name besides the ``/`` that joins the parts; a ``/`` inside a
value too) becomes ``_``, so ``cyclical:cycles=2:ratio=0.5`` is written
``cyclical_cycles_2_ratio_0.5`` and ``table:/path/b.csv`` ``table__path_b.csv``. A part longer
than 64 characters keeps its head and tail around a hash of it; a name, at most 250.

TensorBoard and MLflow themselves are imported only when a tracker for them is opened; neither
is a dependency of intermodal (``pip install 'intermodal[tensorboard]'`` or
``'intermodal[mlflow]'``). The trackers print nothing; where they write is their
:attr:`Tracker.location`, for the caller to tell its user.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError, Terminated
from ..evaluation import catalogue
from ..training.config import MODEL_KEY_COLUMNS

__all__ = [
    "Tracker",
    "TensorBoardTracker",
    "MLflowTracker",
    "parse_track",
    "open_tracker",
    "metric_name",
    "model_name",
    "HISTORY_METRICS",
    "EXPERIMENT_NAME",
]

# The history columns logged per model and epoch, under these names.
HISTORY_METRICS = ("beta", *catalogue.names("loss"))

# The MLflow experiment every study logs into.
EXPERIMENT_NAME = "intermodal"

# MLflow's limits (mlflow.utils.validation): name length, param value length, entities per
# log_batch call. Repeated here so that naming does not need MLflow installed.
_MAX_NAME_LENGTH = 250
_MAX_PARAM_VALUE_LENGTH = 6000
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAMS_PER_BATCH = 100

# A part of a name longer than this is shortened (its head, a hash of it, its tail), so that
# a long table path as a schedule name leaves room for the rest of the name.
_MAX_PART_LENGTH = 64

# Seconds between two sends of the buffered metrics to MLflow, at most (checked at each call).
_FLUSH_SECONDS = 2.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. ]")
_TRACK_FORMS = "'tensorboard[:DIR]' or 'mlflow[:URI]'"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _clean(part: object) -> str:
    """One part of a name, safe for MLflow and TensorBoard alike: unsafe characters (``/``
    included) as ``_``, never empty nor ``.``/``..``, at most ``_MAX_PART_LENGTH`` characters."""
    text = _UNSAFE.sub("_", str(part))
    if text in ("", ".", ".."):
        text = "_" * max(len(text), 1)
    if len(text) > _MAX_PART_LENGTH:
        text = f"{text[:20]}-{_digest(text)}-{text[-(_MAX_PART_LENGTH - 30) :]}"
    return text


@lru_cache(maxsize=65536)
def _model_name(values: tuple) -> str:
    parts = []
    for column, value in zip(MODEL_KEY_COLUMNS, values):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            parts.append(f"{column}-{int(value)}")
        else:
            parts.append(str(value))
    return "/".join(_clean(p) for p in parts)


def model_name(key) -> str:
    """The name of a model in every metric or tag: its key values joined by ``/``, an integer
    written ``<column>-<value>``, each part cleaned as the module docstring says (the key
    (schedule ``"constant-0"``, seed 3) -> ``"constant-0/seed-3"``).

    ``key`` is a NamedTuple with the fields :data:`MODEL_KEY_COLUMNS` (read by name), or a
    plain tuple or row of values in that order."""
    if hasattr(key, "_fields"):
        values = tuple(getattr(key, column) for column in MODEL_KEY_COLUMNS)
    else:
        values = tuple(key)
    if len(values) != len(MODEL_KEY_COLUMNS):
        raise TypeError(f"model key {key!r}: expected values for {MODEL_KEY_COLUMNS}")
    return _model_name(values)


def _missing(part: Any) -> bool:
    """Whether a part of a name is empty: ``""``, None, NaN or pandas' NA."""
    if isinstance(part, str):
        return part == ""
    return part is None or (np.ndim(part) == 0 and bool(pd.isna(part)))


def _bounded(name: str) -> str:
    """``name`` cut to MLflow's name length, a hash of the whole keeping cut names apart."""
    if len(name) <= _MAX_NAME_LENGTH:
        return name
    return f"{name[: _MAX_NAME_LENGTH - 9]}-{_digest(name)}"


def metric_name(key, *parts) -> str:
    """The metric (MLflow) or tag (TensorBoard) name of a model's value: :func:`model_name`
    then ``parts`` joined by ``/``, empty parts (``""``, None, NaN) left out and every part
    cleaned (``metric_name(key, "baseline", "", "")`` -> ``"constant-0/seed-3/baseline"`` for
    the key above). At most 250 characters, MLflow's limit."""
    names = [model_name(key)] + [_clean(p) for p in parts if not _missing(p)]
    return _bounded("/".join(names))


def _modality_parts(quantity: str, modality) -> tuple:
    """A row's ``modality`` as parts of its name: an interaction's two parts ("a&b") apart,
    since cleaning ``&`` to ``_`` would make ``a_b&c`` and ``a&b_c`` one name."""
    if quantity == catalogue.INTERACTION and isinstance(modality, str):
        try:
            return catalogue.pair_parts(modality)
        except ConfigError:  # not two parts: logged as one, as any other quantity's
            pass
    return (modality,)


def _key_tuples(frame: pd.DataFrame) -> list[tuple]:
    """The model key of each row of ``frame``, as tuples of plain Python values."""
    missing = [c for c in MODEL_KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise KeyError(f"tracking: the table lacks the model key columns {missing}; it has {list(frame.columns)}")
    return list(zip(*(frame[c].tolist() for c in MODEL_KEY_COLUMNS)))


def _steps(frame: pd.DataFrame, default: int | None = None) -> list[int]:
    if "epoch" in frame.columns:
        return [int(e) for e in frame["epoch"].tolist()]
    if default is None:
        raise KeyError(f"tracking: the table lacks the column 'epoch'; it has {list(frame.columns)}")
    return [int(default)] * len(frame)


def _flatten(config: dict, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``config``'s leaves as ("a.b", value as JSON text) pairs; an empty mapping is one leaf."""
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, str):
            yield name, value
        else:
            yield name, json.dumps(value, default=str)


def _param_key(key: str) -> str:
    return _bounded(_UNSAFE.sub("_", key) or "_")


class Tracker:
    """Receives a study's progress as it runs; this base class logs nothing (the stand-in
    where no ``--track`` was given). Subclasses write each value named by :func:`metric_name`
    through ``_write_scalars``, ``_write_config`` and ``_write_figure``.

    A tracker is a context manager: leaving the ``with`` block closes it. After
    :meth:`close`, logging raises RuntimeError (a bug of the caller, not of its user)."""

    #: The run id others may name as ``parent`` (MLflow), else None.
    run_id: str | None = None
    #: Where the tracker writes (a folder, a tracking URI), for the caller to tell its user.
    location: str | None = None

    def __init__(self) -> None:
        self._closed = False
        self._last_step = 0
        self._outcome = "FINISHED"

    # --- what the trainer and the study call -----------------------------------------
    def start(self, config: dict, model_keys: list) -> None:
        """At the start of a study: ``config`` is the run's config as a JSON-able dict,
        ``model_keys`` the ensemble's keys (NamedTuples with the fields MODEL_KEY_COLUMNS)."""
        self._check_open()
        for key in model_keys:
            model_name(key)  # checks each key and caches its name
        self._write_config(config)

    def log_history(self, rows: pd.DataFrame) -> None:
        """The history rows of one or more epochs just trained (columns: the model keys,
        ``epoch`` (0-based), ``beta``, ``reconstruction_loss``, ``latent_loss``, ``loss``,
        ``diverged``): each finite value at step = its epoch."""
        self._check_open()
        if rows is None or len(rows) == 0:
            return
        self._write_scalars(list(self._history_scalars(rows)))

    def log_evaluation(self, epoch: int, tables: dict[str, pd.DataFrame]) -> None:
        """An evaluation after ``epoch`` epochs: ``tables["results"]`` (one metric per row)
        and ``tables["diagnostics"]`` (the count of active latent units per model); either
        may be absent. Steps are the tables' ``epoch`` column, else ``epoch``."""
        self._check_open()
        scalars = list(self._evaluation_scalars(int(epoch), tables or {}))
        if scalars:
            self._write_scalars(scalars)

    def log_figures(self, paths: dict[str, Path]) -> None:
        """At the end of a study: figure stem -> PNG file, each logged as an image
        (TensorBoard, tag ``figures/<stem>``) or an artifact (MLflow, folder ``figures``)."""
        self._check_open()
        for stem, path in paths.items():
            self._write_figure(_clean(stem), Path(path))

    def close(self) -> None:
        """Send what is buffered and close; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            killed = issubclass(exc_type, Terminated) or not issubclass(exc_type, Exception)
            self._outcome = "KILLED" if killed else "FAILED"
        self.close()

    # --- the values ------------------------------------------------------------------
    def _history_scalars(self, rows: pd.DataFrame) -> Iterator[tuple[str, float, int]]:
        prefixes = [model_name(k) for k in _key_tuples(rows)]
        steps = _steps(rows)
        self._last_step = max(self._last_step, max(steps))
        for column in HISTORY_METRICS:
            if column not in rows.columns:
                continue
            values = rows[column].to_numpy(dtype=float, na_value=np.nan)
            for prefix, step, value in zip(prefixes, steps, values.tolist()):
                if math.isfinite(value):
                    yield _bounded(f"{prefix}/{column}"), value, step

    def _evaluation_scalars(self, epoch: int, tables: dict) -> Iterator[tuple[str, float, int]]:
        self._last_step = max(self._last_step, epoch)
        results = tables.get("results")
        if results is not None and len(results):
            columns = [
                results[c].tolist() if c in results.columns else [""] * len(results) for c in ("modality", "scope")
            ]
            values = results["value"].to_numpy(dtype=float, na_value=np.nan).tolist()
            rows = zip(_key_tuples(results), _steps(results, epoch), results["quantity"].tolist(), *columns, values)
            for key, step, quantity, modality, scope, value in rows:
                if math.isfinite(value):
                    yield metric_name(key, quantity, *_modality_parts(quantity, modality), scope), value, step
        diagnostics = tables.get("diagnostics")
        if diagnostics is not None and len(diagnostics) and "active" in diagnostics.columns:
            frame = pd.DataFrame(
                {
                    **{c: diagnostics[c] for c in MODEL_KEY_COLUMNS if c in diagnostics.columns},
                    "epoch": _steps(diagnostics, epoch),
                    "active": diagnostics["active"].astype(bool).to_numpy(),
                }
            )
            _key_tuples(frame)  # names a missing key column
            counts = frame.groupby([*MODEL_KEY_COLUMNS, "epoch"], sort=False)["active"].sum().reset_index()
            for key, step, count in zip(_key_tuples(counts), counts["epoch"].tolist(), counts["active"].tolist()):
                yield metric_name(key, catalogue.ACTIVE_UNITS), float(count), int(step)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    # --- what a subclass writes ------------------------------------------------------
    def _write_scalars(self, scalars: list[tuple[str, float, int]]) -> None:
        """(name, value, step) triples."""

    def _write_config(self, config: dict) -> None:
        pass

    def _write_figure(self, stem: str, path: Path) -> None:
        pass

    def _close(self) -> None:
        pass


def _missing_package(spec: str, package: str, extra: str) -> ConfigError:
    return ConfigError(f"--track {spec} needs {package}: pip install 'intermodal[{extra}]'")


class TensorBoardTracker(Tracker):
    """Writes TensorBoard event files into ``log_dir`` (:class:`torch.utils.tensorboard.SummaryWriter`,
    flushed every 2 s): scalars per :func:`metric_name`, the config as the text ``config``
    (JSON), figures as images ``figures/<stem>``. ``tensorboard --logdir`` shows them live."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise _missing_package("tensorboard", "TensorBoard", "tensorboard") from e
        super().__init__()
        self.log_dir = Path(log_dir)
        self.location = str(self.log_dir)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--track tensorboard:{log_dir}: cannot create the folder ({e.strerror})") from e
        self._writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=2, max_queue=1000)

    def _write_scalars(self, scalars):
        # One event per step holding all of its values, each as add_scalar writes it (a
        # simple_value): TensorBoard's pure-Python writer pays for every event
        # (docs/performance.md, "Costs behind the code").
        from tensorboard.compat.proto.summary_pb2 import Summary

        by_step: dict[int, list] = {}
        for name, value, step in scalars:
            by_step.setdefault(step, []).append(Summary.Value(tag=name, simple_value=value))
        writer = self._writer._get_file_writer()
        for step, values in by_step.items():
            writer.add_summary(Summary(value=values), step)

    def _write_config(self, config):
        text = json.dumps(config, indent=2, default=str)
        self._writer.add_text("config", f"```json\n{text}\n```", 0)

    def _write_figure(self, stem, path):
        from matplotlib.image import imread

        image = np.asarray(imread(path))
        if image.ndim == 3 and image.shape[2] in (2, 4):  # drop the alpha channel
            image = image[..., :-1]
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        self._writer.add_image(
            f"figures/{stem}", image, self._last_step, dataformats="HW" if image.ndim == 2 else "HWC"
        )

    def _close(self):
        self._writer.flush()
        self._writer.close()


class MLflowTracker(Tracker):
    """Logs into an MLflow run of the experiment ``intermodal`` at ``tracking_uri``, through
    :class:`mlflow.MlflowClient` alone (MLflow's global active run and tracking URI are left as
    they were). The run is created when the tracker is; with ``parent`` (an MLflow run id) it
    is a child of that run (tag ``mlflow.parentRunId``), in the parent's experiment.

    Metrics are buffered and sent with ``log_batch``, at most 1000 a call: all of them when a
    call comes more than 2 s after the previous send, whole calls' worth when 1000 or more are
    waiting, and the rest on :meth:`close`, which ends the run (FINISHED; FAILED or KILLED when
    a ``with`` block is left by an exception). A local SQLite store pays MLflow's own insert
    for every value in the training process; a server takes that time off it.
    The config goes in as params (``a.b`` keys, values as JSON text) and as the artifact
    ``config.json``; figures as artifacts under ``figures/``.

    For a local SQLite store (``sqlite:///PATH``) the folder of PATH is created, and a new
    experiment keeps its artifacts beside the database in ``mlflow-artifacts/`` (not in the
    current folder, MLflow's default)."""

    run_id: str  # set when the run is created, in __init__

    def __init__(self, tracking_uri: str, run_name: str, parent: str | None = None) -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.exceptions import MlflowException
        except ImportError as e:
            raise _missing_package("mlflow", "MLflow", "mlflow") from e
        super().__init__()
        self.tracking_uri = tracking_uri
        self.location = tracking_uri
        self._buffer: list = []
        self._last_flush = time.monotonic()
        where = f"--track mlflow:{tracking_uri}"
        database = _sqlite_path(tracking_uri)
        if database is not None:
            try:
                database.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"{where}: cannot create the folder {database.parent} ({e.strerror})") from e
        try:
            self._client = MlflowClient(tracking_uri=tracking_uri)
            tags = {"mlflow.runName": run_name}
            if parent is not None:
                try:
                    experiment_id = self._client.get_run(parent).info.experiment_id
                except MlflowException as e:
                    raise ConfigError(f"{where}: no parent run {parent!r} in the store ({e.message})") from e
                tags["mlflow.parentRunId"] = parent
            else:
                experiment_id = self._experiment(database)
            run = self._client.create_run(experiment_id, tags=tags, run_name=run_name)
        except MlflowException as e:
            raise ConfigError(f"{where}: MLflow cannot log there: {e.message}") from e
        self.run_id = run.info.run_id
        self.experiment_id = experiment_id
        self._last_flush = time.monotonic()

    def _experiment(self, database: Path | None) -> str:
        """The id of the experiment ``intermodal``, created (or restored) where needed."""
        from mlflow.exceptions import MlflowException

        client = self._client
        experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
        if experiment is None:
            artifacts = None if database is None else (database.parent / "mlflow-artifacts").resolve().as_uri()
            try:
                return client.create_experiment(EXPERIMENT_NAME, artifact_location=artifacts)
            except MlflowException:  # another process (a Ray unit) created it meanwhile
                experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def _write_scalars(self, scalars):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._buffer.extend(Metric(name, value, now, step) for name, value, step in scalars)
        if time.monotonic() - self._last_flush > _FLUSH_SECONDS:
            self._flush()
        elif len(self._buffer) >= _MAX_METRICS_PER_BATCH:
            self._flush(whole_batches=True)

    def _flush(self, whole_batches: bool = False) -> None:
        """Send the buffered metrics, 1000 a call; with ``whole_batches``, only full calls'
        worth (the rest waits for the next)."""
        size = _MAX_METRICS_PER_BATCH
        end = len(self._buffer) - len(self._buffer) % size if whole_batches else len(self._buffer)
        buffer, self._buffer = self._buffer[:end], self._buffer[end:]
        for start in range(0, len(buffer), size):
            self._client.log_batch(self.run_id, metrics=buffer[start : start + size], synchronous=True)
        self._last_flush = time.monotonic()

    def _write_config(self, config):
        from mlflow.entities import Param

        params = {}
        for key, value in _flatten(config):
            params[_param_key(key)] = value[:_MAX_PARAM_VALUE_LENGTH]
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[start : start + _MAX_PARAMS_PER_BATCH], synchronous=True)
        self._client.log_dict(self.run_id, json.loads(json.dumps(config, default=str)), "config.json")

    def _write_figure(self, stem, path):
        self._client.log_artifact(self.run_id, str(path), artifact_path="figures")

    def _close(self):
        try:
            self._flush()
        finally:
            self._client.set_terminated(self.run_id, self._outcome)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI, else None (in memory, another store)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def parse_track(spec: str) -> tuple[str, str | None]:
    """A ``--track`` value as (backend, where): ``"tensorboard"`` -> ("tensorboard", None),
    ``"tensorboard:DIR"`` -> ("tensorboard", "DIR"), ``"mlflow"`` -> ("mlflow", None),
    ``"mlflow:URI"`` -> ("mlflow", "URI") (split at the first ``:`` only, as URIs hold ``:``).
    Anything else raises ConfigError."""
    if not isinstance(spec, str):
        raise ConfigError(f"--track: expected {_TRACK_FORMS}; got {spec!r}")
    backend, colon, where = spec.partition(":")
    if backend not in ("tensorboard", "mlflow") or (colon and not where.strip()):
        raise ConfigError(f"--track: expected {_TRACK_FORMS}; got {spec!r}")
    return backend, (where if colon else None)


def open_tracker(spec: str, *, default_dir: Path, run_name: str, parent: str | None = None) -> Tracker:
    """The tracker a ``--track`` value asks for, with its run created.

    TensorBoard writes into DIR (default ``default_dir / "tensorboard"``), or DIR/``run_name``
    with ``parent`` (each unit of a Ray study has its own tracker; the value of ``parent`` is
    not used). MLflow logs to URI (default ``sqlite:///<default_dir>/mlflow.db``, a local
    SQLite store), experiment ``intermodal``, a run named ``run_name``; with ``parent`` a
    nested child run of the MLflow run with that id.

    Raises ConfigError for a malformed value, a missing package (with the pip line to install
    it) or a store MLflow cannot log to."""
    backend, where = parse_track(spec)
    default_dir = Path(default_dir)
    if backend == "tensorboard":
        log_dir = Path(where).expanduser() if where is not None else default_dir / "tensorboard"
        if parent is not None:
            log_dir = log_dir / run_name
        return TensorBoardTracker(log_dir)
    uri = where if where is not None else f"sqlite:///{default_dir.resolve() / 'mlflow.db'}"
    return MLflowTracker(uri, run_name, parent=parent)
