"""KL-weight schedules β(epoch).

A schedule is named by a string, so it can go on the command line and into result tables:

=====================================  ==================================================
``constant-1``                         β = 1 (the plain ELBO)
``constant-0``                         β = 1 − min(e/1000, 1) (Zambelli's)
``dynamic-plateau-0``                  cycles of 80 epochs in which β falls from 1 to 0
``dynamic-plateau-1``                  over d_k epochs, d_k falling 80 → 1; from 70 000 on
                                       β = 0 (plateau-0) or β = 1 (plateau-1)
``constant:beta=0.5``                  β = 0.5 throughout
``linear:warmup=1000``                 β rises linearly 0 → 1 over ``warmup`` epochs, then 1
                                       (Bowman et al. 2015)
``cyclical:cycles=4:ratio=0.5``        Fu et al. (2019): ``cycles`` cycles over the run; in
                                       each, β rises linearly 0 → 1 over the first ``ratio``
                                       of the cycle, then stays 1
``table:PATH``                         a CSV with columns ``epoch,beta`` (run epochs),
                                       linearly interpolated, the last β held
=====================================  ==================================================

Epoch constants are stated for the paper's length T = 80 000 epochs. A run laid out over
a horizon T′ (by default its number of epochs) scales every one of them by T′/T: the
1000-epoch decay of ``constant-0`` takes 25 epochs of a 2000-epoch run, the dynamic cycles
keep their number (875) and shrink with it. ``cyclical`` is defined by its number of
cycles over the horizon, so it needs no scaling; ``table`` is in run epochs and is never
scaled. Pass ``horizon=80_000`` to run a schedule's first epochs unscaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.reading import read_csv_frame
from ..errors import ScheduleError

__all__ = ["PAPER_EPOCHS", "PAPER_SCHEDULES", "Schedule", "parse_schedule", "betas"]

PAPER_EPOCHS = 80_000
PAPER_SCHEDULES = ("constant-1", "constant-0", "dynamic-plateau-0", "dynamic-plateau-1")

_PARAMETERS: dict[str, dict[str, float | None]] = {
    "constant": {"beta": None},
    "linear": {"warmup": 1000.0},
    "cyclical": {"cycles": 4.0, "ratio": 0.5},
}


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule; call :meth:`betas` for its values."""

    spec: str
    kind: str
    params: tuple[tuple[str, float], ...] = ()
    table: tuple[np.ndarray, np.ndarray] | None = None

    def betas(self, n_epochs: int, horizon: int | None = None) -> np.ndarray:
        """β for epochs ``0 .. n_epochs-1``, float64 ``[n_epochs]``. ``horizon``: the
        length the schedule is laid out over (default ``n_epochs``)."""
        horizon = n_epochs if horizon is None else int(horizon)
        if horizon < 1:
            raise ScheduleError(f"schedule horizon must be >= 1 epoch, got {horizon}")
        e = np.arange(n_epochs, dtype=np.float64)
        scale = horizon / PAPER_EPOCHS
        p = dict(self.params)
        if self.kind == "constant-1":
            return np.ones_like(e)
        if self.kind == "constant-0":
            return 1.0 - np.minimum(e / (1000.0 * scale), 1.0)
        if self.kind in ("dynamic-plateau-0", "dynamic-plateau-1"):
            return _dynamic_plateau(e, scale, final=0.0 if self.kind.endswith("0") else 1.0)
        if self.kind == "constant":
            return np.full_like(e, p["beta"])
        if self.kind == "linear":
            return np.minimum(e / (p["warmup"] * scale), 1.0)
        if self.kind == "cyclical":
            period = horizon / p["cycles"]
            tau = np.mod(e, period) / period
            return np.minimum(tau / p["ratio"], 1.0)
        if self.kind == "table":
            assert self.table is not None  # parse_schedule reads a table schedule's file
            epochs, values = self.table
            return np.interp(e, epochs, values)  # holds the end values outside the table
        raise AssertionError(self.kind)


def _dynamic_plateau(e: np.ndarray, scale: float, final: float) -> np.ndarray:
    cycle, end = 80.0 * scale, 70_000.0 * scale
    n_cycles = round(70_000 / 80)  # 875, whatever the scale
    k = np.floor(e / cycle)
    # d_k falls linearly from one whole cycle (k = 0) to 1 paper epoch (the last cycle).
    fall = (80.0 - 79.0 * np.minimum(k, n_cycles - 1) / (n_cycles - 1)) * scale
    position = e - k * cycle
    beta = np.clip(1.0 - position / fall, 0.0, 1.0)
    return np.where(e < end, beta, final)


def parse_schedule(spec: str) -> Schedule:
    """Parse a schedule name (see the module docstring). Raises
    :class:`~intermodal.errors.ScheduleError` naming the schedule and what was expected."""
    spec = spec.strip()
    if spec in PAPER_SCHEDULES:
        return Schedule(spec, spec)
    kind, _, rest = spec.partition(":")
    if kind == "table":
        return Schedule(spec, "table", table=_read_table(rest, spec))
    if kind not in _PARAMETERS:
        raise ScheduleError(
            f"unknown schedule {spec!r}; expected one of {', '.join(PAPER_SCHEDULES)}, "
            "constant:beta=B, linear:warmup=EPOCHS, cyclical:cycles=M:ratio=R, table:PATH.csv"
        )
    values = dict(_PARAMETERS[kind])
    for item in filter(None, rest.split(":")):
        key, eq, value = item.partition("=")
        if key not in values or not eq:
            raise ScheduleError(
                f"schedule {spec!r}: unknown parameter {item!r}; {kind} takes {sorted(values)} as key=value"
            )
        try:
            values[key] = float(value)
        except ValueError:
            raise ScheduleError(f"schedule {spec!r}: {key}={value!r} is not a number") from None
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ScheduleError(f"schedule {spec!r}: give {', '.join(f'{k}=…' for k in missing)}")
    given = {k: v for k, v in values.items() if v is not None}  # every one, after the check above
    checks = {
        "beta": lambda v: v >= 0,
        "warmup": lambda v: v > 0,
        "cycles": lambda v: v >= 1,
        "ratio": lambda v: 0 < v <= 1,
    }
    for key, v in given.items():
        if not (math.isfinite(v) and checks[key](v)):
            raise ScheduleError(f"schedule {spec!r}: {key}={v:g} is out of range")
    return Schedule(spec, kind, tuple(sorted(given.items())))


def _read_table(path: str, spec: str) -> tuple[np.ndarray, np.ndarray]:
    if not path or not Path(path).exists():
        raise ScheduleError(
            f"schedule {spec!r}: table file {path!r} does not exist (expected a CSV with columns epoch,beta)"
        )
    frame = read_csv_frame(path, error=ScheduleError)
    if list(frame.columns) != ["epoch", "beta"] or len(frame) == 0:
        raise ScheduleError(
            f"{path}: expected a CSV with exactly the columns epoch,beta and at least one row; "
            f"got columns {list(frame.columns)} and {len(frame)} rows"
        )
    try:
        epochs, values = frame["epoch"].to_numpy(float), frame["beta"].to_numpy(float)
    except ValueError:
        raise ScheduleError(f"{path}: columns epoch and beta must hold numbers") from None
    if not np.all(np.isfinite(epochs)):
        raise ScheduleError(f"{path}: column epoch must hold finite numbers")
    if not (np.all(np.isfinite(values)) and np.all(values >= 0)):
        raise ScheduleError(f"{path}: column beta must hold finite values >= 0")
    if np.any(np.diff(epochs) <= 0):
        raise ScheduleError(f"{path}: column epoch must be strictly increasing")
    return epochs, values


def betas(spec: str, n_epochs: int, horizon: int | None = None) -> np.ndarray:
    """β for epochs ``0 .. n_epochs-1`` of the schedule named ``spec``."""
    return parse_schedule(spec).betas(n_epochs, horizon)
