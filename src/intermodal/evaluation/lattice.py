"""The lattice of modalities (docs/method.md §5d): Shapley shares of the baseline, who informs
whom, and the interactions (redundancy and synergy) of every pair of parts.

The paper's measures look at three vertices of the lattice of given parts: one part given
(single modality error), one part hidden (loss of precision) and nothing given (the
baseline). For any set ``S`` of given parts, ``v_T(S)`` is the divergence of the output given
everything from the output given only ``S``, regarding the target columns ``T`` (every
column, or one modality's); ``v_T(N) = 0`` and ``v_T(∅)`` is the baseline regarding ``T``.
The game whose gain is ``g(S) = v_T(∅) − v_T(S)`` gives

* the **share** of part ``m``: its Shapley value ``φ_m(T)``; the shares add up to the
  baseline regarding ``T`` exactly;
* **who informs whom**: ``φ_m(T = modality m')``, a source per row, a target per column;
* the **interaction** of parts ``a, b``: their Shapley interaction index ``I_ab(T)``,
  positive where together they remove more than apart (synergy), negative where they
  remove the same thing (redundancy).

Up to :data:`EXACT_UP_TO` parts every subset is evaluated (``2^n`` muted copies); above it
the shares and interactions are estimated from sampled orderings of the parts, with their
Monte Carlo standard errors. The divergences come from the same engine, noise and options
as :func:`~intermodal.evaluation.measures.integration_measures`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from math import factorial

import numpy as np
import pandas as pd
import torch

from ..data.description import DatasetDescription
from ..errors import ConfigError, DataError
from ..options import whole_number
from ..streams import MAX_SEED
from ..training.config import label_models
from .catalogue import INTERACTION, PAIR_JOIN, PREDICTION_ERROR, SHARE
from .measures import MeasureSpec, checked_options, evaluate_specs, measure_specs

__all__ = [
    "PART_KINDS",
    "EXACT_UP_TO",
    "DEFAULT_ORDERINGS",
    "MAX_PARTS",
    "lattice_parts",
    "lattice_values",
    "shapley_from_values",
    "modality_shares",
]

# What the parts of the lattice are: each modality (both of its time steps), or each
# modality at each time step ("modality@step").
PART_KINDS = ("modalities", "steps")
# Every subset is evaluated up to this many parts (4 096 muted copies); above it the
# orderings are sampled. iCub's 5 modalities: 32 subsets; its 10 modality@step parts: 1 024.
EXACT_UP_TO = 12
DEFAULT_ORDERINGS = 256  # sampled orderings when there are more than EXACT_UP_TO parts
MAX_PARTS = 64  # parts are bits of a subset's index; more is refused up front
# Sampled orderings read at most this many subsets (each a muted copy of every row); more
# is refused before anything is decoded, naming the options that shrink it.
MAX_SAMPLED_SUBSETS = 1 << 16
# Muted copies decoded per call of the engine: bounds a pass's memory (a mixture's
# predictive divergence holds models × copies × S² log-probabilities per row).
SUBSETS_PER_CALL = 64
LATTICE = "lattice"  # the quantity of a lattice value v_T(S) in lattice_values's table
JOIN = PAIR_JOIN  # the two parts of an interaction's name, "a&b" (the catalogue's)
GIVEN_JOIN = "+"  # the parts of a given set's name, "a+b"; "" for the empty set


# ---------------------------------------------------------------------- parts and targets
def lattice_parts(description: DatasetDescription, parts="modalities") -> list[tuple[str, np.ndarray]]:
    """The parts of the lattice as ``(name, mask [n_columns])``: ``"modalities"`` (one per
    modality), ``"steps"`` (one per modality and time step, named ``"modality@step"``), a
    list of selectors (each selector one part), or a mapping name -> selectors. The parts
    must split the columns: every column in exactly one part."""
    if isinstance(parts, str):
        if parts == "modalities":
            named = [(m, [m]) for m in description.modality_names]
        elif parts == "steps":
            named = [(f"{m}@{t}", [f"{m}@{t}"]) for m in description.modality_names for t in description.time_steps]
        else:
            raise ConfigError(
                f"parts {parts!r}: expected one of {', '.join(PART_KINDS)}, a list of selectors or a mapping "
                "name -> selectors"
            )
    elif isinstance(parts, Mapping):
        named = [(str(k), [v] if isinstance(v, str) else list(v)) for k, v in parts.items()]
    elif isinstance(parts, Sequence):
        named = [(str(p), [p]) for p in parts]
    else:
        raise ConfigError(f"parts: expected {', '.join(PART_KINDS)}, a list of selectors or a mapping; got {parts!r}")
    if len(named) < 2:
        raise ConfigError(f"parts: the lattice needs at least two parts; got {[n for n, _ in named]}")
    if len(named) > MAX_PARTS:
        raise ConfigError(f"parts: {len(named)} parts; at most {MAX_PARTS} are supported")
    out, covered = [], np.zeros(description.n_columns, dtype=int)
    for name, selectors in named:
        if not name or JOIN in name or GIVEN_JOIN in name or "|" in name:
            raise ConfigError(f"parts: the name {name!r} must be non-empty and hold none of '&', '+', '|'")
        try:
            mask = description.mask(selectors)
        except DataError as e:
            raise DataError(f"parts, part {name!r}: {e}") from None
        out.append((name, mask))
        covered += mask
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"parts: names repeat in {names}")
    columns = description.column_names()
    if (covered > 1).any() or (covered == 0).any():
        i = int(np.flatnonzero(covered != 1)[0])
        how = "in no part" if covered[i] == 0 else "in several parts"
        raise ConfigError(f"parts: column {columns[i]!r} is {how}; the parts must split the columns")
    return out


def _targets(description: DatasetDescription, targets) -> list[tuple[str, np.ndarray]]:
    """``(scope, compared mask)`` per target: ``"all"`` then each modality, or those named."""
    everything = np.ones(description.n_columns, dtype=bool)
    if targets is None:
        names = ["all", *description.modality_names]
    elif isinstance(targets, str):
        names = [targets]
    elif isinstance(targets, Iterable):
        names = list(targets)
    else:
        raise ConfigError(f"targets: expected 'all', a modality or a list of them; got {targets!r}")
    out = []
    for name in names:
        if name == "all":
            out.append(("all", everything))
        elif name in description.modality_names:
            out.append((name, description.mask(name)))
        else:
            raise ConfigError(
                f"targets: {name!r} is neither 'all' nor a modality; modalities: {description.modality_names}"
            )
    if not out:
        raise ConfigError("targets: name at least one ('all' or a modality)")
    return out


# ---------------------------------------------------------------------- Shapley arithmetic
def shapley_from_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact Shapley shares and interaction indices from the lattice values.

    Parameters
    ----------
    values : array ``[..., 2**n]``: ``v(S)`` at index ``sum(2**i for i in S)`` (part ``i``
        given where bit ``i`` is set); ``v`` of the full set is ignored (taken as 0).

    Returns
    -------
    shares ``[..., n]`` (``φ_i = Σ_{S∌i} s!(n−s−1)!/n! · (v(S) − v(S∪i))``; they add up to
    ``v(∅)``) and interactions ``[..., n, n]`` (symmetric, 0 on the diagonal:
    ``I_ij = Σ_{S∌i,j} s!(n−s−2)!/(n−1)! · −(v(S∪ij) − v(S∪i) − v(S∪j) + v(S))``).
    """
    values = np.array(values, dtype=np.float64, copy=True)
    size = values.shape[-1]
    n = size.bit_length() - 1
    if size != 1 << n or n < 1:
        raise ConfigError(f"values: the last axis must have 2**n entries; got {size}")
    values[..., size - 1] = 0.0
    index = np.arange(size)
    popcount = np.array([bin(s).count("1") for s in range(size)])
    shares = np.zeros((*values.shape[:-1], n))
    for i in range(n):
        without = index[(index >> i) & 1 == 0]
        weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in popcount[without]])
        shares[..., i] = ((values[..., without] - values[..., without | (1 << i)]) * weight).sum(-1)
    interactions = np.zeros((*values.shape[:-1], n, n))
    for i, j in combinations(range(n), 2):
        without = index[((index >> i) & 1 == 0) & ((index >> j) & 1 == 0)]
        weight = np.array([factorial(s) * factorial(n - s - 2) / factorial(n - 1) for s in popcount[without]])
        bi, bj = 1 << i, 1 << j
        second = values[..., without | bi | bj] - values[..., without | bi] - values[..., without | bj]
        second = second + values[..., without]
        interactions[..., i, j] = interactions[..., j, i] = (-second * weight).sum(-1)
    return shares, interactions


def _orderings(n: int, count: int, seed: int) -> np.ndarray:
    """``count`` orderings of ``n`` parts ``[count, n]``, from ``seed``."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(count)])


def _sampled_subsets(orderings: np.ndarray) -> set[int]:
    """Every subset the sampled estimates read: each ordering's prefixes, and for each pair
    ``i < j`` the set ``S`` of parts before ``i`` other than ``j`` with ``S∪i, S∪j, S∪ij``."""
    needed: set[int] = set()
    n = orderings.shape[1]
    for order in orderings:
        prefix = 0
        needed.add(0)
        for part in order:
            prefix |= 1 << int(part)
            needed.add(prefix)
        for i, j in combinations(range(n), 2):
            s = _before(order, i, j)
            needed.update((s, s | 1 << i, s | 1 << j, s | 1 << i | 1 << j))
    return needed


def _before(order: np.ndarray, i: int, j: int) -> int:
    """The parts before ``i`` in ``order``, ``j`` left out, as a subset index."""
    s = 0
    for part in order:
        if part == i:
            return s
        if part != j:
            s |= 1 << int(part)
    raise AssertionError("part not in the ordering")


def _sampled_shapley(value, orderings: np.ndarray, lead: tuple) -> tuple[np.ndarray, ...]:
    """Shares and interactions (and their standard errors over orderings) from sampled
    orderings; ``value(S)`` gives ``v(S)`` ``[*lead]``. A uniform ordering makes each part's
    marginal contribution an unbiased draw of its share, and the parts before ``i`` (``j``
    left out) a draw of ``S`` with the interaction index's weights."""
    count, n = orderings.shape
    full = (1 << n) - 1

    def v(s: int) -> np.ndarray:
        return np.zeros(lead) if s == full else value(s)

    share_draws = np.zeros((count, *lead, n))
    pair_draws = np.zeros((count, *lead, n, n))
    for k, order in enumerate(orderings):
        prefix = 0
        for part in order:
            after = prefix | 1 << int(part)
            share_draws[k, ..., part] = v(prefix) - v(after)
            prefix = after
        for i, j in combinations(range(n), 2):
            s = _before(order, i, j)
            bi, bj = 1 << i, 1 << j
            second = v(s | bi | bj) - v(s | bi) - v(s | bj) + v(s)
            pair_draws[k, ..., i, j] = pair_draws[k, ..., j, i] = -second

    def mean_and_error(draws):
        error = draws.std(axis=0, ddof=1) / np.sqrt(count) if count > 1 else np.full(draws.shape[1:], np.nan)
        return draws.mean(axis=0), error

    return (*mean_and_error(share_draws), *mean_and_error(pair_draws))


# ---------------------------------------------------------------------- the divergences
def _given_name(names: list[str], subset: int) -> str:
    return GIVEN_JOIN.join(n for i, n in enumerate(names) if subset >> i & 1)


def _subset_specs(parts, targets, subsets: list[int]) -> list[MeasureSpec]:
    names = [n for n, _ in parts]
    specs = []
    for subset in subsets:
        muted = np.zeros_like(parts[0][1])
        for i, (_, mask) in enumerate(parts):
            if not subset >> i & 1:
                muted = muted | mask
        for scope, compared in targets:
            specs.append(MeasureSpec(LATTICE, _given_name(names, subset), scope, muted, compared))
    return specs


def _evaluate_subsets(model, rows, description, parts, targets, subsets, options, leading=()):
    """``v_T(S)`` for every subset ``[models, subsets, targets]``, in calls of at most
    :data:`SUBSETS_PER_CALL` muted copies, each drawing the same noise (a fresh copy of the
    generator); ``leading`` specs go into the first call. Returns the values, their standard
    errors, the leading specs' values and errors ``[models, 1 + leading]`` and the targets'
    likelihood labels per model (the leading specs' labels ride with their values)."""
    z_samples, divergence, generator, rows_per_pass = options
    n_targets = len(targets)
    values, errors, first, labels = [], [], None, None
    for start in range(0, max(len(subsets), 1), SUBSETS_PER_CALL):
        batch = subsets[start : start + SUBSETS_PER_CALL]
        specs = (list(leading) if start == 0 else []) + _subset_specs(parts, targets, batch)
        v, e, lab = evaluate_specs(model, rows, description, specs, z_samples, divergence, generator, rows_per_pass)
        cut = 1 + (len(leading) if start == 0 else 0)
        if start == 0:
            first = (v[:, :cut], e[:, :cut], [per[:cut] for per in lab])
            labels = [per[cut : cut + n_targets] for per in lab]
        values.append(v[:, cut:].reshape(v.shape[0], len(batch), n_targets))
        errors.append(e[:, cut:].reshape(e.shape[0], len(batch), n_targets))
    return np.concatenate(values, axis=1), np.concatenate(errors, axis=1), first, labels


def _checked(model, rows, description, parts, targets, z_samples, divergence, generator, rows_per_pass):
    model, description, z_samples, divergence, rows_per_pass = checked_options(
        model, description, z_samples, divergence, rows_per_pass
    )
    if generator is None:
        # One generator for every call, so that every subset decodes the same noise; seeded
        # from torch's global generator as a single call of the measures would draw from it.
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
    return (
        model,
        description,
        lattice_parts(description, parts),
        _targets(description, targets),
        (z_samples, divergence, generator, rows_per_pass),
    )


def lattice_values(
    model,
    rows,
    *,
    description: DatasetDescription | None = None,
    parts="modalities",
    targets: Sequence[str] | None = None,
    z_samples: int | None = None,
    divergence: str | None = None,
    generator: torch.Generator | None = None,
    rows_per_pass: int | None = None,
) -> pd.DataFrame:
    """``v_T(S)`` for every subset ``S`` of the parts and every target ``T``: the divergence
    of the output given everything from the output given only ``S`` (nats, mean over rows).

    The options are those of :func:`modality_shares`. Returns a table as the measures'
    (``model``, the model keys, ``quantity = "lattice"``, ``modality`` = the given parts
    joined by ``"+"`` (``""`` for none), ``scope`` = the target, ``value``, ``likelihood``),
    one row per model, subset (in the order of their index, the full set last) and target.
    """
    model, description, parts, targets, options = _checked(
        model, rows, description, parts, targets, z_samples, divergence, generator, rows_per_pass
    )
    n = len(parts)
    if n > EXACT_UP_TO:
        raise ConfigError(f"parts: {n} parts make {2**n} subsets; lattice_values evaluates at most 2**{EXACT_UP_TO}")
    subsets = list(range(2**n - 1))
    values, _, _, labels = _evaluate_subsets(model, rows, description, parts, targets, subsets, options)
    values = np.concatenate([values, np.zeros((values.shape[0], 1, len(targets)))], axis=1)
    names = [name for name, _ in parts]
    rows_out = [
        (m, LATTICE, _given_name(names, s), scope, values[m, s, t], labels[m][t])
        for m in range(values.shape[0])
        for s in range(2**n)
        for t, (scope, _) in enumerate(targets)
    ]
    table = pd.DataFrame(rows_out, columns=["model", "quantity", "modality", "scope", "value", "likelihood"])
    return label_models(table, getattr(model, "model_keys", None))


def modality_shares(
    model,
    rows,
    *,
    description: DatasetDescription | None = None,
    parts="modalities",
    targets: Sequence[str] | None = None,
    z_samples: int | None = None,
    divergence: str | None = None,
    generator: torch.Generator | None = None,
    rows_per_pass: int | None = None,
    orderings: int | None = None,
    seed: int = 0,
    measures: bool = False,
    extra_pairs=None,
) -> pd.DataFrame:
    """Shapley shares of the baseline, who informs whom, and the interactions of every pair
    of parts, for every model of an ensemble (docs/method.md §5d).

    Parameters
    ----------
    model, rows, description, z_samples, divergence, generator, rows_per_pass : as for
        :func:`~intermodal.evaluation.measures.integration_measures` (any model the
        measures accept, every fusion and likelihood; ``rows`` complete ``[n_rows,
        n_columns]``). Every subset decodes the same latent noise.
    parts : ``"modalities"`` (default), ``"steps"`` (each ``"modality@step"``), a list of
        selectors or a mapping name -> selectors; the parts must split the columns.
    targets : the columns the divergences regard: ``"all"`` and modality names; None
        (default) = ``"all"`` and every modality (the who-informs-whom matrix).
    orderings : with more than :data:`EXACT_UP_TO` parts, the number of sampled orderings
        (default :data:`DEFAULT_ORDERINGS`); with fewer, None or 0 (every subset is exact).
    seed : seed of the sampled orderings.
    measures : also return the rows of
        :func:`~intermodal.evaluation.measures.integration_measures` (with ``extra_pairs``),
        computed in the same calls so that shared muted copies are decoded once.

    Returns
    -------
    DataFrame in the long format of the measures: ``model``, the model keys where known,
    ``quantity`` (``"share"`` or ``"interaction"``), ``modality`` (the source part; for an
    interaction ``"a&b"`` in the parts' order), ``scope`` (the target: ``"all"`` or a
    modality), ``value`` (nats: a share is the part of the baseline regarding the target
    that the part removes; the shares of a target add up to its baseline; an interaction is
    positive for synergy, negative for redundancy), ``likelihood`` (the target's output
    families), ``standard_error`` (Monte Carlo error of sampled orderings; 0 when exact, or
    the predictive divergence's estimate error is not propagated). Model-major; shares
    first, then interactions, each target in turn.
    """
    model, description, parts, targets, options = _checked(
        model, rows, description, parts, targets, z_samples, divergence, generator, rows_per_pass
    )
    n = len(parts)
    seed = whole_number(seed, "seed", maximum=MAX_SEED)  # checked whether or not orderings are sampled
    if n <= EXACT_UP_TO:
        if orderings:
            raise ConfigError(f"orderings {orderings}: with {n} parts (at most {EXACT_UP_TO}) every subset is exact")
        ordering_table = None
        subsets = list(range(2**n - 1))
    else:
        count = whole_number(DEFAULT_ORDERINGS if orderings is None else orderings, "orderings", minimum=1)
        if count < 2:
            raise ConfigError(f"orderings {count}: at least 2, so that the estimates have a standard error")
        ordering_table = _orderings(n, count, seed)
        if count * n * n > 4 * MAX_SAMPLED_SUBSETS:  # each ordering reads about 2 n² subsets
            raise ConfigError(
                f"orderings {count} with {n} parts would read about {2 * count * n * n} subsets (muted copies of "
                f"every row); at most {MAX_SAMPLED_SUBSETS}: give fewer orderings or fewer parts"
            )
        subsets = sorted(_sampled_subsets(ordering_table) - {2**n - 1})
    leading = measure_specs(description, extra_pairs) if measures else []
    values, _, first, labels = _evaluate_subsets(model, rows, description, parts, targets, subsets, options, leading)
    n_models = values.shape[0]
    if ordering_table is None:
        lattice = np.concatenate([values, np.zeros((n_models, 1, len(targets)))], axis=1)
        shares, pairs = shapley_from_values(np.moveaxis(lattice, 1, -1))  # [models, targets, n(, n)]
        share_se, pair_se = np.zeros_like(shares), np.zeros_like(pairs)
    else:
        position = {s: k for k, s in enumerate(subsets)}
        shares, share_se, pairs, pair_se = _sampled_shapley(
            lambda s: values[:, position[s]], ordering_table, (n_models, len(targets))
        )
    table = _table(parts, targets, labels, shares, share_se, pairs, pair_se)
    table = label_models(table, getattr(model, "model_keys", None))
    if not measures:
        return table
    return _with_measures(model, table, leading, first)


def _table(parts, targets, labels, shares, share_se, pairs, pair_se) -> pd.DataFrame:
    names = [n for n, _ in parts]
    pair_index = list(combinations(range(len(names)), 2))
    records = []
    for m in range(shares.shape[0]):
        for t, (scope, _) in enumerate(targets):
            for i, name in enumerate(names):
                records.append((m, SHARE, name, scope, shares[m, t, i], labels[m][t], share_se[m, t, i]))
        for t, (scope, _) in enumerate(targets):
            for i, j in pair_index:
                pair = f"{names[i]}{JOIN}{names[j]}"
                records.append((m, INTERACTION, pair, scope, pairs[m, t, i, j], labels[m][t], pair_se[m, t, i, j]))
    columns = ["model", "quantity", "modality", "scope", "value", "likelihood", "standard_error"]
    return pd.DataFrame(records, columns=columns)


def _with_measures(model, shares: pd.DataFrame, leading, first) -> pd.DataFrame:
    """The measures' rows (as integration_measures lays them out) then the shares'; the
    ``standard_error`` column only where some share has one (sampled orderings); model-major."""
    values, _, labels = first
    quantities = [PREDICTION_ERROR] + [s.quantity for s in leading]
    modalities = [""] + [s.modality for s in leading]
    scopes = [""] + [s.scope for s in leading]
    n_models, per_model = values.shape[0], len(quantities)
    measures = pd.DataFrame(
        {
            "model": np.repeat(np.arange(n_models, dtype=np.int64), per_model),
            "quantity": np.tile(np.array(quantities, dtype=object), n_models),
            "modality": np.tile(np.array(modalities, dtype=object), n_models),
            "scope": np.tile(np.array(scopes, dtype=object), n_models),
            "value": values.reshape(-1),
            "likelihood": np.array([label for per in labels for label in per], dtype=object),
        }
    )
    if not shares["standard_error"].any():
        shares = shares.drop(columns="standard_error")
    # Model-major, as every table of the measures: a model's measures, then its shares.
    both = pd.concat([label_models(measures, getattr(model, "model_keys", None)), shares], ignore_index=True)
    return both.sort_values("model", kind="stable", ignore_index=True)
