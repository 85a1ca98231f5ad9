"""Tables derived from a run folder's tables, computed here and only here: the epoch
windows and their means per seed and over seeds, seed summaries for the curves, the order
schedules and modalities are shown in, and active-unit counts. Functions of DataFrames
(the columns of :mod:`intermodal.training.runfolder`); nothing here reads a file. The
report, the figures and the findings share them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from ..errors import ConfigError
from .catalogue import ACTIVE_UNITS, names
from .statistics import CONFIDENCE

__all__ = [
    "MEASURE_QUANTITIES",
    "fusions_of",
    "by_condition",
    "BAND_DESCRIPTIONS",
    "normalised_results",
    "default_windows",
    "resolve_windows",
    "window_label",
    "in_window",
    "schedule_order",
    "modality_order",
    "modality_likelihoods",
    "seed_summary",
    "window_means",
    "active_unit_counts",
]

# The integration measures of a modality (SME and LoP), from the catalogue.
MEASURE_QUANTITIES = names(family="integration")
BAND_DESCRIPTIONS = {
    "ci": "band: 95% interval of the mean over seeds (Student's t)",
    "sd": "band: ±1 sd over seeds",
    "minmax": "band: min–max over seeds",
}


def fusions_of(*tables: pd.DataFrame | None, config: dict | None = None) -> list[str]:
    """The fusions of a run: the config's order, then any others found in the tables."""
    names = [str(f) for f in (config or {}).get("fusions") or []]
    for table in tables:
        if table is not None and "fusion" in table:
            names += [str(f) for f in pd.unique(table["fusion"].astype(str)) if str(f) not in names and str(f)]
    return names


def by_condition(config: dict, *tables: pd.DataFrame | None) -> tuple[dict, list[pd.DataFrame | None]]:
    """A run of several fusions seen as conditions: each table's ``schedule`` becomes
    ``"schedule [fusion]"`` and the config's schedules those conditions, fusion by fusion,
    so that every figure and table compares the fusions side by side. A run of one
    fusion is returned as it is."""
    fusions = fusions_of(*tables, config=config)
    if len(fusions) < 2:
        return config, list(tables)
    out = []
    for table in tables:
        if table is None or "fusion" not in table or table.empty:
            out.append(table)
            continue
        labelled = table.copy()
        labelled["schedule"] = labelled["schedule"].astype(str) + " [" + labelled["fusion"].astype(str) + "]"
        out.append(labelled)
    schedules = [f"{s} [{f}]" for f in fusions for s in (config.get("schedules") or [])]
    return {**config, "schedules": schedules}, out


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


def modality_likelihoods(results: pd.DataFrame) -> dict[str, str]:
    """Each modality's output family as a results table labels it (``gaussian``,
    ``bernoulli``, ``gaussian(scale=0.75)``); empty for a table from before the labels
    (whose models were all Gaussian)."""
    if "likelihood" not in results:
        return {}
    own = results[(results["scope"] == "modality") & (results["likelihood"] != "") & (results["modality"] != "")]
    return {str(m): str(f) for m, f in own.drop_duplicates("modality").set_index("modality")["likelihood"].items()}


def modality_order(results: pd.DataFrame) -> list[str]:
    """Modality names in order of first appearance among the measure rows."""
    rows = results[results["quantity"].isin(MEASURE_QUANTITIES)]
    rows = rows[rows["modality"].notna() & (rows["modality"] != "")]
    return [str(m) for m in pd.unique(rows["modality"])]


def t_half_width(sd, n) -> np.ndarray:
    """Half the width of the CONFIDENCE t interval of a mean of ``n`` values with sample sd
    ``sd`` (arrays; NaN for ``n < 2``), the interval of :func:`~intermodal.evaluation.statistics.interval`."""
    sd, n = np.asarray(sd, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / np.sqrt(n)
    return np.where(n >= 2, half, np.nan)


def seed_summary(frame: pd.DataFrame, keys: list[str], value: str, band: str = "ci") -> pd.DataFrame:
    """Mean over seeds per ``keys`` + epoch, with the band's ``low``/``high`` and ``n_seeds``:
    ``"ci"`` the 95% t interval of the mean (default), ``"sd"`` ±1 sd, ``"minmax"`` the range."""
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
    if band == "ci":
        spread = np.nan_to_num(t_half_width(stats["std"].fillna(0.0), stats["count"]))
        stats["low"], stats["high"] = stats["mean"] - spread, stats["mean"] + spread
    elif band == "sd":
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

    Returns one row per (window, fusion, schedule, quantity, modality, scope) with columns
    ``window`` (index into ``windows``), ``start``, ``end``, ``mean``, ``sd`` (sample sd,
    NaN for one seed), ``low``, ``high`` (the 95% t interval of the mean; NaN for one seed),
    ``min``, ``max``, ``n_seeds``, ``n_epochs``.
    """
    keys = [k for k in ("fusion", "schedule") if k in results] + ["quantity", "modality", "scope"]
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
        half = t_half_width(stats["sd"], stats["n_seeds"])
        stats.insert(stats.columns.get_loc("min"), "low", stats["mean"] - half)
        stats.insert(stats.columns.get_loc("min"), "high", stats["mean"] + half)
        stats.insert(0, "end", window[1])
        stats.insert(0, "start", window[0])
        stats.insert(0, "window", index)
        parts.append(stats)
    columns = ["window", "start", "end"] + keys + ["mean", "sd", "low", "high", "min", "max", "n_seeds", "n_epochs"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def active_unit_counts(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """Number of active latent units per (fusion, schedule, seed, model, epoch), the keys
    the table has."""
    keys = [k for k in ("fusion", "schedule", "seed", "model", "epoch") if k in diagnostics]
    counts = diagnostics.assign(active=diagnostics["active"].astype(float)).groupby(keys, sort=True)["active"].sum()
    return counts.reset_index(name=ACTIVE_UNITS)
