"""A cluster study's units merged into one run folder: the same files, columns and row
order as one local run of the whole study writes, and one checkpoint of the whole ensemble
(:mod:`intermodal.study.cluster` trains the units)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import RunFolderError
from ..files import write_json
from ..training import checkpoint, runfolder
from ..training.config import ModelKey, RunConfig

__all__ = ["merge_tables", "merge_runs"]


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
        model = np.array([position[k] for k in runfolder.row_model_keys(frame)])
    except KeyError as e:
        raise RunFolderError(
            f"a table holds model {e.args[0]}, which is not among the run's models {model_keys}"
        ) from None
    epoch = frame["epoch"].to_numpy()
    primary, secondary = (epoch, model) if by_epoch_first else (model, epoch)
    # lexsort sorts by its last key first; the row number keeps each (model, epoch)'s order.
    order = np.lexsort([np.arange(len(frame)), secondary, primary])
    return frame.iloc[order].reset_index(drop=True)


def merge_runs(sources: Sequence[str | Path], out: str | Path, config: RunConfig) -> Path:
    """Merge run folders that each hold some of the models of one run (``config``, whose
    schedules and seeds cover them all, each model exactly once) into ``out``: the same
    files, columns and row order as one run of ``config`` writes, and one checkpoint of
    the whole ensemble. The sources are read, never changed; their order does not matter."""
    out = Path(out)
    keys = config.model_keys()
    folders = [Path(s) for s in sources]  # each run's path (Run.path is None only in memory)
    runs = [runfolder.read_run(f, need_results=False) for f in folders]
    held: dict[ModelKey, Path] = {}
    for folder, run in zip(folders, runs):
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
                f"{folder}: its config differs from the run's in {differing}; only fusions, schedules, seeds, "
                "workers and threads may differ between the parts of one run"
            )
        for key in run.model_keys:
            if key in held:
                raise RunFolderError(f"model {key} is in both {held[key]} and {folder}")
            held[key] = folder
    missing = [k for k in keys if k not in held]
    if missing or len(held) != len(keys):
        raise RunFolderError(f"the parts hold {len(held)} models; the run has {len(keys)}; missing {missing[:8]}")
    out.mkdir(parents=True, exist_ok=True)
    description = next((r.description for r in runs if r.description is not None), None)
    write_json(out / runfolder.CONFIG, config.to_dict())
    if description is not None:
        write_json(out / runfolder.DESCRIPTION, description.to_dict())
    tables = {}
    for stem, table_of in zip(runfolder.EVALUATION_TABLES, (lambda r: r.results, lambda r: r.diagnostics)):
        parts = [table_of(r) for r in runs]
        if any(p is not None and len(p) for p in parts):
            tables[stem] = merge_tables(parts, keys, by_epoch_first=True)
    runfolder.save_tables(out, merge_tables([r.history for r in runs], keys, by_epoch_first=False), tables)
    if all(runfolder.has_checkpoint(f) for f in folders):
        state = {"config": config.to_dict(), "tables": sorted(tables)}
        checkpoint.merge_checkpoints(
            [runfolder.checkpoint_path(f) for f in folders], runfolder.checkpoint_path(out), keys, state
        )
    return out
