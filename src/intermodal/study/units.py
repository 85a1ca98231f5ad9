"""How a study is split into *units* for a cluster: one fusion and schedule × a contiguous
block of its seeds each, as few as keep the cluster's CPUs busy, and the plan of units that
``RUN/units/plan.json`` keeps (docs/cluster.md, "Units")."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.reading import read_mapping_file
from ..errors import RunFolderError
from ..files import write_json
from ..training import runfolder
from ..training.config import ModelKey, RunConfig

__all__ = ["Unit", "plan_units", "describe_plan", "write_plan", "read_plan", "MAX_CPUS_PER_UNIT", "MAKESPAN_SLACK"]

# CPUs (worker threads) one unit may use. A unit of p CPUs trains its models in p threads
# of one process, and they share Python's GIL, while separate processes do not; a model is
# too small to spread over cores, so one CPU per unit loses nothing, for one process (about
# 0.4 GB) per CPU. The measurements behind this are in docs/cluster.md ("Units"); raise it
# only with a measurement from a many-core node.
MAX_CPUS_PER_UNIT = 1
# A unit's plan is the fewest units whose expected finishing time is within this fraction
# of the best one's: fewer units mean fewer processes, folders and files, for a few percent.
MAKESPAN_SLACK = 0.05


@dataclass(frozen=True)
class Unit:
    """One fusion and schedule × a contiguous block of its seeds: the models one task trains."""

    name: str
    fusion: str
    schedule: str
    seeds: tuple[int, ...]

    def model_keys(self) -> list[ModelKey]:
        return [ModelKey(self.fusion, self.schedule, seed) for seed in self.seeds]

    def config(self, whole: RunConfig, cpus: int | None) -> RunConfig:
        """The unit's run config: the study's, for its models only, on ``cpus`` worker
        threads (None = the trainer's default, one per core of this machine). Ray does not
        pin a task to cores, and the trainer's default takes every core of the node, so a
        task sets its workers from the CPUs it asked for and one torch thread each."""
        return whole.updated(
            {
                "fusions": [self.fusion],
                "schedules": [self.schedule],
                "seeds": list(self.seeds),
                "workers": cpus,
                "threads": 1,
            },
            origin=f"unit {self.name}",
        )


def _blocks(seeds: list[int], n: int) -> list[list[int]]:
    """``seeds`` in ``n`` contiguous blocks whose sizes differ by at most one (the larger first)."""
    return [list(b) for b in np.array_split(np.asarray(seeds, dtype=np.int64), n)]


def _safe(text: str) -> str:
    """A schedule spec as a short, filesystem-safe part of a folder name ('table:/a/b.csv' -> 'table-b')."""
    if text.startswith("table:"):
        text = "table-" + Path(text[len("table:") :]).stem
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.")[:40] or "schedule"


def _unit_name(index: int, width: int, fusion: str, schedule: str, seeds: list[int]) -> str:
    block = f"seed-{seeds[0]}" if len(seeds) == 1 else f"seeds-{seeds[0]}-{seeds[-1]}"
    fusion = "" if fusion == "concat" else f"{fusion}-"
    return f"{index:0{width}d}-{fusion}{_safe(schedule)}-{block}"


def _makespan(n_units: int, largest_block: int, cpus: int, node_cpus: list[int]) -> float:
    """Expected time to train every unit, in the time one CPU takes per model: units run in
    waves of as many as the nodes hold, and a unit of b models on p CPUs takes ceil(b/p)."""
    slots = sum(c // cpus for c in node_cpus)
    if slots < 1:
        return math.inf  # no node has that many CPUs
    return math.ceil(n_units / slots) * math.ceil(largest_block / cpus)


def _best_cpus(n_units: int, smallest_block: int, largest_block: int, total: int, node_cpus: list[int]) -> int:
    """CPUs per unit for a given number of units: up to MAX_CPUS_PER_UNIT, no more than the
    smallest unit has models (a worker thread trains whole models), the fastest by
    :func:`_makespan` (the larger on a tie)."""
    top = max(1, min(MAX_CPUS_PER_UNIT, smallest_block, total // max(n_units, 1)))
    return min(range(top, 0, -1), key=lambda p: _makespan(n_units, largest_block, p, node_cpus))


def plan_units(config: RunConfig, cpus: int, node_cpus: list[int] | None = None) -> tuple[list[Unit], int]:
    """Split a study into units for a cluster of ``cpus`` CPUs (``node_cpus``: per node;
    default one node), and choose the CPUs each unit asks for. Returns (units in model
    order, CPUs per unit).

    The rule: at least one unit per fusion and schedule, each one's seeds in the same number of
    contiguous, near-equal blocks; the fewest units that keep the CPUs busy, that is whose
    expected finishing time (waves of units × models per unit per CPU) is within
    MAKESPAN_SLACK of the best split's; CPUs per unit up to MAX_CPUS_PER_UNIT (why: there).
    A model trains on one core at most, so CPUs beyond the number of models stay idle.
    """
    total = max(1, int(cpus))
    nodes = [int(c) for c in (node_cpus or [total]) if int(c) >= 1] or [total]
    n_seeds = len(config.seeds)
    n_schedules = len(config.schedules) * len(config.fusions)
    options = []  # (makespan, units, blocks per schedule, cpus per unit)
    for k in range(1, n_seeds + 1):
        n_units = n_schedules * k
        smallest, largest = n_seeds // k, -(-n_seeds // k)
        p = _best_cpus(n_units, smallest, largest, total, nodes)
        options.append((_makespan(n_units, largest, p, nodes), n_units, k, p))
    best = min(m for m, *_ in options)
    # options are in rising number of units: the first near enough to the best
    _, n_units, k, p = next(o for o in options if o[0] <= best * (1 + MAKESPAN_SLACK))
    width = max(2, len(str(n_units)))
    units: list[Unit] = []
    for fusion in config.fusions:
        for schedule in config.schedules:
            for block in _blocks(config.seeds, k):
                seeds = [int(s) for s in block]
                name = _unit_name(len(units) + 1, width, fusion, schedule, seeds)
                units.append(Unit(name, fusion, schedule, tuple(seeds)))
    return units, p


def describe_plan(cpus: int, units: list[Unit], per_unit: int, left: bool = False) -> str:
    sizes = sorted({len(u.seeds) for u in units})
    models = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    line = (
        f"ray: {cpus} CPUs; {len(units)} units of {models} model{'s' * (sizes[-1] != 1)}"
        f"{' to finish' * left}, {per_unit} CPU{'s' * (per_unit != 1)} each"
    )
    used = len(units) * per_unit
    if used < cpus:
        line += f" ({used} CPUs at most: a model trains on one core)"
    return line


def write_plan(units_dir: Path, units: list[Unit], per_unit: int) -> None:
    write_json(
        runfolder.unit_plan_path(units_dir.parent),
        {
            "cpus_per_unit": per_unit,
            "units": [
                {"name": u.name, "fusion": u.fusion, "schedule": u.schedule, "seeds": list(u.seeds)} for u in units
            ],
        },
    )


def read_plan(units_dir: Path, config: RunConfig) -> tuple[list[Unit], int] | None:
    """The units a study was started with and the CPUs each had (None if the driver stopped
    before it wrote them); checked to hold the run's models, each once."""
    path = runfolder.unit_plan_path(units_dir.parent)
    if not path.is_file():
        return None
    try:
        plan = read_mapping_file(path, "plan of units")
        units = [
            Unit(str(u["name"]), str(u.get("fusion", "concat")), str(u["schedule"]), tuple(int(s) for s in u["seeds"]))
            for u in plan["units"]
        ]
        per_unit = int(plan["cpus_per_unit"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunFolderError(f"{path}: not a plan of units ({e})") from None
    held = sorted(k for u in units for k in u.model_keys())
    if held != sorted(config.model_keys()):
        raise RunFolderError(f"{path}: its units do not hold the models of {runfolder.CONFIG} in {units_dir.parent}")
    return units, max(1, per_unit)
