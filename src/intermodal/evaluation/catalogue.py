"""The catalogue of quantities: every quantity a results table, a history or the diagnostics
give (docs/method.md §5), spelled once, with the scopes it takes, its label, unit, family and
how the figures draw it. The measures, summaries, findings, figures, report, comparison and
trackers read their names and labels here, so a new quantity is added in one place.

A results table's row is (quantity, modality, scope, value): ``quantity`` is a
:attr:`Measure.name`; ``scope`` one of its :attr:`Measure.scopes`, where :data:`TARGET` stands
for any modality's name (the lattice's shares regarding one target modality's columns).
Nothing here imports pandas, torch or matplotlib, so ``import intermodal`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

__all__ = [
    "Measure",
    "CATALOGUE",
    "FAMILIES",
    "TARGET",
    "PAIR_JOIN",
    "SINGLE_MODALITY_ERROR",
    "LOSS_OF_PRECISION",
    "BASELINE",
    "PREDICTION_ERROR",
    "CUSTOM",
    "SHARE",
    "INTERACTION",
    "RECONSTRUCTION_LOSS",
    "LATENT_LOSS",
    "LOSS",
    "ACTIVE_UNITS",
    "MEASURED_QUANTITIES",
    "KL_QUANTITIES",
    "measure",
    "names",
    "label_of",
    "with_unit",
    "takes_scope",
    "pair_name",
    "pair_parts",
]

# The names, as the tables spell them.
SINGLE_MODALITY_ERROR = "single_modality_error"
LOSS_OF_PRECISION = "loss_of_precision"
BASELINE = "baseline"
PREDICTION_ERROR = "prediction_error"
CUSTOM = "custom"
SHARE = "share"
INTERACTION = "interaction"
RECONSTRUCTION_LOSS = "reconstruction_loss"
LATENT_LOSS = "latent_loss"
LOSS = "loss"
ACTIVE_UNITS = "active_units"

# A scope standing for any modality's name: a share regarding that (target) modality's columns.
TARGET = "<target modality>"
# What joins the two parts of an interaction's ``modality`` ("vision&touch").
PAIR_JOIN = "&"

FAMILIES = ("integration", "reference", "prediction", "custom", "lattice", "loss", "diagnostic")


@dataclass(frozen=True)
class Measure:
    """One quantity: ``name`` (the ``quantity`` of a results table, or a history or
    diagnostics column), ``scopes`` (the ``scope`` values it takes; ``""`` where it has none,
    :data:`TARGET` for any modality's name), ``label`` (in words, for figures, report and
    comparison), ``short`` (an abbreviation for crowded panels; the label where there is
    none), ``unit``, ``family`` (one of :data:`FAMILIES`) and ``drawn`` (how the figures draw
    it, in words; None where no figure does)."""

    name: str
    scopes: tuple[str, ...]
    label: str
    unit: str
    family: str
    drawn: str | None
    short: str = ""


_LINES = "lines over epochs per schedule"
CATALOGUE: tuple[Measure, ...] = (
    Measure(SINGLE_MODALITY_ERROR, ("modality", "all"), "single modality error", "nats", "integration", _LINES, "SME"),
    Measure(LOSS_OF_PRECISION, ("modality", "all"), "loss of precision", "nats", "integration", _LINES, "LoP"),
    Measure(BASELINE, ("",), "baseline", "nats", "reference", _LINES),
    Measure(PREDICTION_ERROR, ("",), "prediction error", "data units", "prediction", _LINES),
    Measure(CUSTOM, ("",), "custom pair", "nats", "custom", None),
    Measure(
        SHARE,
        ("all", TARGET),
        "share of the baseline",
        "nats",
        "lattice",
        "bars per condition (regarding all); heat map of who informs whom (regarding a target)",
        "share",
    ),
    Measure(INTERACTION, ("all", TARGET), "interaction", "nats", "lattice", "ranked list"),
    Measure(RECONSTRUCTION_LOSS, ("",), "reconstruction loss", "nats", "loss", _LINES),
    Measure(LATENT_LOSS, ("",), "latent loss", "nats", "loss", _LINES),
    Measure(LOSS, ("",), "weighted loss", "nats", "loss", _LINES),
    Measure(ACTIVE_UNITS, ("",), "active latent units", "units", "diagnostic", _LINES),
)
_BY_NAME = {m.name: m for m in CATALOGUE}

# The quantities the measures compute into a results table, in the order of its rows.
MEASURED_QUANTITIES = (SINGLE_MODALITY_ERROR, LOSS_OF_PRECISION, BASELINE, PREDICTION_ERROR, CUSTOM)
# measures.py's name for them (prediction_error, in data units, is there too).
KL_QUANTITIES = MEASURED_QUANTITIES


def measure(name: str) -> Measure:
    """The catalogue's entry for ``name``; a ConfigError naming the known ones otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ConfigError(f"no quantity {name!r} in the catalogue; known: {', '.join(_BY_NAME)}") from None


def names(family: str | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The quantities' names in the catalogue's order, of one family (or several) or all."""
    if family is None:
        return tuple(_BY_NAME)
    wanted = (family,) if isinstance(family, str) else tuple(family)
    unknown = [f for f in wanted if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"no family {unknown[0]!r} in the catalogue; known: {', '.join(FAMILIES)}")
    return tuple(m.name for m in CATALOGUE if m.family in wanted)


def label_of(name: str, scope: str = "", *, short: bool = False) -> str:
    """``name`` in words, with its scope: "single modality error, regarding m" (``scope``
    "modality"), "…, regarding all", "share of the baseline, regarding vision" (a target);
    ``short`` gives the abbreviation and no comma ("SME regarding all")."""
    entry = measure(name)
    text = (entry.short or entry.label) if short else entry.label
    if not scope:
        return text
    regarding = "regarding m" if scope == "modality" else f"regarding {scope}"
    return f"{text} {regarding}" if short else f"{text}, {regarding}"


def with_unit(name: str, scope: str = "", *, short: bool = False) -> str:
    """:func:`label_of` with the unit in brackets: "baseline (nats)"."""
    return f"{label_of(name, scope, short=short)} ({measure(name).unit})"


def takes_scope(name: str, scope: str) -> bool:
    """Whether ``scope`` is one of ``name``'s scopes (any non-empty one where it takes a target)."""
    scopes = measure(name).scopes
    return scope in scopes or (TARGET in scopes and bool(scope) and scope not in ("", "modality"))


def pair_name(a: str, b: str) -> str:
    """The ``modality`` of an interaction row: the two parts joined ("vision&touch")."""
    return f"{a}{PAIR_JOIN}{b}"


def pair_parts(modality: str) -> tuple[str, str]:
    """The two parts of an interaction row's ``modality`` (the inverse of :func:`pair_name`)."""
    a, found, b = str(modality).partition(PAIR_JOIN)
    if not found or not a or not b:
        raise ConfigError(f"an interaction's modality must be two parts joined by {PAIR_JOIN!r}; got {modality!r}")
    return a, b
