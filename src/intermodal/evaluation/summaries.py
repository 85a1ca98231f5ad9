"""Tables derived from a run folder's tables, computed here and only here: the epoch
windows and their means per seed and over seeds, seed summaries for the curves, the order
schedules and modalities are shown in, and active-unit counts. Functions of DataFrames
(the columns of :mod:`intermodal.training.runfolder`); nothing here reads a file. The
report, the figures and the findings share them.
"""

from __future__ import annotations

import pandas as pd

from ..errors import ConfigError

__all__ = [
    "MEASURE_QUANTITIES",
    "BAND_DESCRIPTIONS",
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

MEASURE_QUANTITIES = ("single_modality_error", "loss_of_precision")
BAND_DESCRIPTIONS = {"sd": "band: ±1 sd over seeds", "minmax": "band: min–max over seeds"}


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
            raise ConfigError(
                f"config 'windows' must be a list of [start, end] epoch pairs, got {config['windows']!r}"
            ) from error
        backwards = [w for w in windows if not w[0] < w[1]]
        if backwards:
            raise ConfigError(f"config 'windows': each window needs start < end; not so for {backwards}")
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
        raise ConfigError(f"band must be one of {sorted(BAND_DESCRIPTIONS)}, not {band!r}")
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
