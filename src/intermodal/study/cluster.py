"""A study on a Ray cluster: its models trained as independent *units*, one Ray task each.

The models of a study never interact (each has its own weights, Adam state, shuffle and ε,
docs/method.md §3), so a study splits without changing a number: a *unit* is one fusion and schedule
× a contiguous block of its seeds, trained by the ordinary trainer into an ordinary run
folder ``RUN/units/<name>/`` with its own checkpoints. When every unit is done,
:func:`intermodal.study.merge.merge_runs` writes ``RUN`` as one local run of the whole study
writes it (same tables, same row order, one checkpoint of the whole ensemble), and the
report is drawn from it. docs/cluster.md says how to run it.

Why units and the trainer's checkpoints, and not Ray's own machinery:

- Nothing but the data set (put once into Ray's object store by the driver, so that no
  node downloads it) and a few numbers per unit goes through Ray. Weights and tables stay
  in the run folder, which every node must see (shared storage; checked by each task).
- A task that loses its worker or node is retried by Ray (``max_retries``) and continues
  its unit from the unit's last checkpoint: a node's death costs at most one checkpoint
  interval of its units. A failure inside a unit (bad data, a user error) is not retried:
  it would fail again; it is reported with the unit's name.
- An interrupted study (the driver killed, the retries spent) continues with
  :func:`resume_study`, on Ray or in this process (``backend="local"``): a unit is a run
  folder that either can continue.

Ray is an optional dependency (``pip install 'intermodal[ray]'``), imported only inside
the functions that need it. Files of ``RUN/units/``::

    plan.json          the units (name, fusion, schedule, seeds), fixed when the study starts
    .driver-<id>       the marker by which a task knows that it sees the driver's folder
    <name>/            one run folder per unit (config.json, tables, checkpoint/)
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.catalog import dataset_of
from ..data.dataset import Dataset, check_muting
from ..errors import ClusterError, ConfigError, IntermodalError, RunFolderError, Terminated
from ..evaluation.evaluator import make_evaluator
from ..files import write_json
from ..outputs.report import write_report
from ..training import runfolder
from ..training.config import ModelKey, RunConfig
from ..training.runfolder import Run
from ..training.shards import Divergence
from ..training.trainer import Progress, progress_interval
from . import local
from .local import human_duration
from .merge import merge_runs
from .units import MAX_CPUS_PER_UNIT, Unit, describe_plan, plan_units, read_plan, write_plan

logger = logging.getLogger("intermodal")

__all__ = [
    "Unit",
    "plan_units",
    "run_study",
    "resume_study",
    "train_unit",
    "MAX_CPUS_PER_UNIT",
    "UNIT_RETRIES",
]


# Retries of a unit whose worker process or node died (Ray's max_retries). Each retry
# continues from the unit's last checkpoint; when they are spent, the study stops and
# continues with --resume.
UNIT_RETRIES = 3
# How long a task waits for a unit folder that another process still writes: the worker of
# a killed driver, or of a dead node whose file lock the shared file system has not yet
# released (an NFSv4 lease lasts 90 s by default).
LOCK_WAIT_S = 180.0


# --------------------------------------------------------------------------- a unit's state
def _divergences(unit_dir: Path) -> dict[ModelKey, Divergence]:
    """The unit's diverged models from its checkpoint, by key."""
    state = runfolder.checkpoint_state(unit_dir) or {}
    keys = state.get("model_keys", [])
    return {keys[int(k)]: Divergence(**v) for k, v in state.get("diverged", {}).items()}


# --------------------------------------------------------------------------- one unit (a task)
def _wait_for_lock(unit_dir: Path, name: str) -> None:
    """Wait until no other process writes the unit's folder (see LOCK_WAIT_S)."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while unit_dir.is_dir():
        try:
            runfolder.RunLock(unit_dir).acquire().release()
            return
        except RunFolderError as e:
            if time.monotonic() > deadline:
                raise RunFolderError(f"unit {name}: {e}") from None
            time.sleep(1.0)


def train_unit(
    spec: dict[str, Any],
    dataset: Dataset,
    marker: str | None = None,
    progress: bool | Progress = False,
) -> dict[str, Any]:
    """Train one unit to its last epoch, or continue it from its checkpoint: the body of a
    Ray task, and of a local resume. ``spec``: name, folder and run config of the unit.
    ``marker``: a file the driver wrote into RUN/units; a task that cannot see it runs on a
    node that does not share the run folder, and stops before it writes anything.

    Returns the unit's name, the epoch it started from and the epoch it reached."""
    name = spec["name"]
    unit_dir = Path(spec["dir"])
    if marker is not None and not Path(marker).is_file():
        raise ClusterError(
            f"unit {name}: node {socket.gethostname()} does not see the run folder {unit_dir.parent.parent} "
            "(no driver marker there); the run folder must be on storage shared by every node of the Ray "
            "cluster (docs/cluster.md)"
        )
    config = RunConfig.from_dict(spec["config"], origin=f"unit {name}")
    # Arrays from Ray's object store are read-only views; the trainer wants its own.
    dataset = replace(dataset, train=np.array(dataset.train), test=np.array(dataset.test))
    try:
        _wait_for_lock(unit_dir, name)
        start = runfolder.epochs_done(unit_dir)
        tracking = local.Tracking(**spec["track"]) if spec.get("track") else None
        options: dict[str, Any] = dict(dataset=dataset, announce=False, report=False, progress=progress, track=tracking)
        if runfolder.has_checkpoint(unit_dir):
            with runfolder.writing(unit_dir, new=False):
                # The CPUs the unit has now (resume_study keeps those it was planned with).
                runfolder.start_run(unit_dir, config, dataset.description)
                result = local.resume_study(unit_dir, **options)
        else:
            # Stopped before its first checkpoint (or never started): nothing to continue.
            if unit_dir.exists():
                shutil.rmtree(unit_dir)
            with runfolder.writing(unit_dir, new=True):
                result = local.run_study(config, unit_dir, **options)
    except (IntermodalError, OSError) as e:
        raise ClusterError(f"unit {name}: {e}") from None
    return {"name": name, "start": start, "epoch": result.epochs_done, "host": socket.gethostname()}


# --------------------------------------------------------------------------- Ray
def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "--backend ray needs Ray: pip install 'intermodal[ray]' (or pip install -e \".[ray]\" from a clone)"
        ) from None
    return ray


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address`` (else $RAY_ADDRESS, else the one `ray start` started on
    this machine, else start a local Ray); returns whether this process started Ray."""
    if ray.is_initialized():
        return False  # a caller's Ray (a test, a notebook): use it, leave it running
    try:
        ray.init(
            address=address or None,
            # Ray's own lines (and the workers' output) would bury intermodal's; its
            # warnings still show.
            logging_level=logging.WARNING,
            log_to_driver=False,
            include_dashboard=False,
        )
    except ConnectionError as e:
        where = f"--address {address}" if address else f"$RAY_ADDRESS {os.environ.get('RAY_ADDRESS', '')}"
        raise ClusterError(f"{where}: cannot join the Ray cluster ({e})") from None
    return True


def _cluster_cpus(ray) -> tuple[int, list[int]]:
    total = int(ray.cluster_resources().get("CPU", 0))
    nodes = [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    if total < 1:
        raise ClusterError("the Ray cluster has no CPUs (start its nodes with --num-cpus N)")
    return total, [c for c in nodes if c >= 1] or [total]


def _place_marker(units_dir: Path) -> Path:
    """Write this driver's marker (see :func:`train_unit`), removing those of earlier drivers."""
    for old in runfolder.driver_markers(units_dir.parent):
        old.unlink(missing_ok=True)
    marker = runfolder.driver_marker_path(units_dir.parent, uuid.uuid4().hex[:12])
    write_json(marker, {"host": socket.gethostname(), "pid": os.getpid()})
    return marker


class _Progress:
    """A progress line a minute (a bar on a terminal): units done, model-epochs per second
    over the cluster and the expected time left, from the units' checkpoints."""

    def __init__(self, units: list[Unit], units_dir: Path, epochs: int, enabled: bool):
        self.units, self.units_dir, self.epochs, self.enabled = units, units_dir, epochs, enabled
        self.total = sum(len(u.seeds) for u in units) * epochs
        self.done_units: set[str] = set()
        self.start_time = time.monotonic()
        self.start_work = self.work()
        self.interval = progress_interval(sys.stderr)
        self.last_shown = self.start_time
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.start_work, unit="model-epoch", dynamic_ncols=True)

    def work(self) -> int:
        """Model-epochs done so far over every unit (finished units count in full)."""
        return sum(
            len(u.seeds)
            * (self.epochs if u.name in self.done_units else runfolder.epochs_done(self.units_dir / u.name))
            for u in self.units
        )

    def say(self, text: str) -> None:
        """A line worth keeping in the log (printed with or without progress)."""
        if self.bar is not None:
            self.bar.write(text)
        else:
            logger.info("%s", text)

    def poll_every(self) -> float:
        # On a terminal the bar moves every few seconds; more often would only read files.
        return max(self.interval, 2.0)

    def update(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.bar is None and not force and now - self.last_shown < self.interval:
            return
        self.last_shown = now
        work = self.work()
        rate = (work - self.start_work) / max(now - self.start_time, 1e-9)
        left = f"about {human_duration((self.total - work) / rate)} left" if rate > 0 else "time left not known yet"
        units = f"{len(self.done_units)}/{len(self.units)} units done"
        if self.bar is not None:
            self.bar.update(work - self.bar.n)
            self.bar.set_postfix_str(f"{units}, {rate:.0f} model-epochs/s")
        else:
            logger.info(
                "ray: %s; %.0f %% of %d model-epochs; %.1f model-epochs/s; %s",
                units,
                100 * work / self.total,
                self.total,
                rate,
                left,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _failure(ray, error: Exception, name: str) -> Exception:
    """A unit's failure: a user's error as one line (a ClusterError naming the unit), a bug
    in a unit as the worker's traceback (a RuntimeError), a worker that died too often as a
    ClusterError saying how to continue."""
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause if error.cause is not None else error
        if isinstance(cause, IntermodalError):
            return ClusterError(str(cause))  # train_unit's message names the unit
        # A bug: keep its traceback (from the worker) in front of the user.
        return RuntimeError(f"unit {name} failed with a bug; the traceback from its worker:\n{error}")
    return ClusterError(
        f"unit {name}: its worker died {UNIT_RETRIES + 1} times ({type(error).__name__}: {error}); every unit "
        "keeps its last checkpoint: continue with intermodal study --resume RUN --backend ray"
    )


def _train_on_ray(
    ray,
    units: list[Unit],
    per_unit: int,
    config: RunConfig,
    dataset: Dataset,
    units_dir: Path,
    progress: bool | Progress,
    study_tracker=None,
    track: str | None = None,
) -> None:
    """Submit the units as tasks and wait for them, reporting progress; raise on a failure."""
    task = ray.remote(train_unit)
    options = dict(
        num_cpus=per_unit,
        max_retries=UNIT_RETRIES,
        retry_exceptions=False,  # a user error inside a unit would only fail again
    )
    marker = _place_marker(units_dir)
    tracker = _Progress(units, units_dir, config.epochs, bool(progress))  # a callable: the bar
    try:
        data = ray.put(dataset)  # once; every task reads it from the object store
        pending = {}
        for unit in units:
            spec = _unit_spec(unit, units_dir, config, per_unit, study_tracker, track)
            ref = task.options(name=f"intermodal-{unit.name}", **options).remote(spec, data, str(marker))
            pending[ref] = unit
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=tracker.poll_every())
                for ref in ready:
                    unit = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except (ray.exceptions.RayError, IntermodalError) as e:
                        raise _failure(ray, e, unit.name) from None
                    tracker.done_units.add(unit.name)
                    if result["start"] > 0:
                        tracker.say(f"ray: unit {unit.name} continued from its checkpoint at epoch {result['start']}")
                tracker.update(force=not pending)
        except BaseException:
            for other in pending:
                ray.cancel(other, force=True)  # each keeps its checkpoints for --resume
            raise
    finally:
        tracker.close()
        marker.unlink(missing_ok=True)


def _unit_spec(unit: Unit, units_dir: Path, config: RunConfig, per_unit: int, tracker, track: str | None) -> dict:
    """What a unit's task needs: its name, folder and config, and where it tracks (a child
    of the driver's tracker: its own TensorBoard folder, or a nested MLflow run)."""
    spec = {"name": unit.name, "dir": str(units_dir / unit.name), "config": unit.config(config, per_unit).to_dict()}
    if track is not None:
        folder = runfolder.tracking_path(units_dir.parent)
        spec["track"] = {"spec": track, "folder": str(folder), "name": unit.name, "parent": tracker.run_id or "study"}
    return spec


def _open_tracker(run: Path, config: RunConfig, track: str | None):
    if track is None:
        return None
    tracker = local.Tracking(track, runfolder.tracking_path(run), run.resolve().name).open()
    tracker.start(config.to_dict(), config.model_keys())
    return tracker


# --------------------------------------------------------------------------- the study
def _finish(run: Path, config: RunConfig, units: list[Unit], tracker=None) -> Run:
    """Merge the finished units into ``run``, write the report and hand the tracker the figures."""
    dirs = [runfolder.units_path(run) / u.name for u in units]
    merge_runs(dirs, run, config)
    write_report(run, redraw=True)
    if tracker is not None:
        local.log_figures(tracker, run)
        tracker.close()
    by_key = {key: d for unit_dir in dirs for key, d in _divergences(unit_dir).items()}
    model_keys = config.model_keys()
    diverged = {k: by_key[key] for k, key in enumerate(model_keys) if key in by_key}
    return Run(config, run, model_keys=model_keys, epochs_done=config.epochs, diverged=diverged)


def _stop_on_sigterm():
    """While the driver waits for its units, SIGTERM (a scheduler's notice) stops it: the
    units keep their last checkpoints. Returns the handler it replaced (None off the main
    thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise Terminated("stopped by SIGTERM; every unit keeps its last checkpoint")

    return signal.signal(signal.SIGTERM, stop)


@contextmanager
def _driving(ray, address: str | None, tracker):
    """The driver's time with the cluster: connected to Ray (``ray`` None: no Ray, units
    train in this process) with SIGTERM stopping it cleanly; on any error the tracker is
    closed with it; Ray is shut down and the SIGTERM handler restored however it ends."""
    started = _connect(ray, address) if ray is not None else False
    previous = _stop_on_sigterm() if ray is not None else None
    try:
        yield
    except BaseException:
        if tracker is not None:
            tracker.__exit__(*sys.exc_info())
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if started:
            ray.shutdown()


def run_study(
    config: RunConfig,
    out: str | Path,
    *,
    address: str | None = None,
    progress: bool | Progress = False,
    track: str | None = None,
) -> Run:
    """Train a study (:func:`intermodal.study.local.run_study`) on a Ray cluster: its models
    as units (:func:`plan_units`), one Ray task each, then the merged run folder and report
    in ``out``, as a local run writes them. ``address``: the cluster (default:
    $RAY_ADDRESS, else the one `ray start` started on this machine, else a local Ray on this
    machine). ``out`` must lie on storage that every node of the cluster sees
    (docs/cluster.md). ``track``: watch it live; each unit logs as a child of the study's
    tracker."""
    out = Path(out)
    if not config.eval_every:
        raise ConfigError("a study needs --eval-every > 0 (how often to take the measures)")
    if config.device != "cpu":
        # Units ask Ray for CPUs only; GPUs would need a unit per GPU (docs/cluster.md, "GPUs").
        raise ConfigError(f"--backend ray trains on CPUs; --device {config.device} is for the local backend")
    ray = _import_ray()
    dataset = dataset_of(config)
    make_evaluator(config, dataset, say=True)  # a bad measure option fails here, before any task
    check_muting(dataset.description, config.muting, config.patterns)  # and a muting the data cannot have
    runfolder.start_run(out, config, dataset.description)
    tracker = _open_tracker(out, config, track)
    with _driving(ray, address, tracker):
        cpus, nodes = _cluster_cpus(ray)
        units, per_unit = plan_units(config, cpus, nodes)
        units_dir = runfolder.units_path(out)
        units_dir.mkdir(exist_ok=True)
        write_plan(units_dir, units, per_unit)
        logger.info("%s", describe_plan(cpus, units, per_unit))
        _train_on_ray(ray, units, per_unit, config, dataset, units_dir, progress, tracker, track)
    return _finish(out, config, units, tracker)


def resume_study(
    run: str | Path,
    *,
    backend: str = "ray",
    address: str | None = None,
    progress: bool | Progress = False,
    track: str | None = None,
) -> Run:
    """Continue a study started with :func:`run_study`: its unfinished units (a unit is
    finished when its checkpoint has all the config's epochs) on Ray (``backend="ray"``) or
    in this process one after another (``"local"``, no Ray needed), then merge and report.
    A run folder without units (started locally) continues as
    :func:`intermodal.study.local.resume_study` does."""
    run = Path(run)
    if backend not in ("ray", "local"):
        raise ConfigError(f"--backend {backend!r}: expected 'local' or 'ray'")
    if not runfolder.is_cluster_run(run):
        if backend == "ray":
            logger.info("%s was started without --backend ray; continuing it in this process", run)
        return local.resume_study(run, progress=progress, track=track)
    units_dir = runfolder.units_path(run)
    config = runfolder.read_config(run)
    plan = read_plan(units_dir, config)
    ray = _import_ray() if backend == "ray" else None
    tracker = _open_tracker(run, config, track)
    with _driving(ray, address, tracker):
        if plan is None:  # the driver stopped before it planned: no unit has started
            cpus, nodes = _cluster_cpus(ray) if ray is not None else (os.cpu_count() or 1, None)
            plan = plan_units(config, cpus, nodes)
            write_plan(units_dir, *plan)
        units, per_unit = plan
        todo = [u for u in units if runfolder.epochs_done(units_dir / u.name) < config.epochs]
        if todo:
            dataset = dataset_of(config)
            # Each unit keeps the CPUs (worker threads) it was planned with, wherever it
            # continues: they decide how its models are grouped into batched products, and
            # another grouping rounds differently, which training then amplifies
            # (docs/cluster.md, "Same numbers").
            if ray is not None:
                cpus, nodes = _cluster_cpus(ray)
                if per_unit > max(nodes):
                    logger.info(
                        "ray: no node has the %d CPUs a unit was planned with; %d each "
                        "(its numbers then differ from the planned ones at float rounding)",
                        per_unit,
                        max(nodes),
                    )
                    per_unit = max(nodes)
                logger.info("%s", describe_plan(cpus, todo, per_unit, left=True))
                _train_on_ray(ray, todo, per_unit, config, dataset, units_dir, progress, tracker, track)
            else:
                for i, unit in enumerate(todo, 1):
                    logger.info("local: unit %s (%d/%d to finish)", unit.name, i, len(todo))
                    train_unit(
                        _unit_spec(unit, units_dir, config, per_unit, tracker, track), dataset, progress=progress
                    )
    return _finish(run, config, units, tracker)
