"""What the simulator makes true, in the terms the measures speak (docs/simulator.md, "What
the measures must find"): the distractors a study adds so that it can be checked, the
modalities each truth is about and the measure pairs its check needs. The checks themselves
(their rules over seeds) are :mod:`intermodal.evaluation.findings`'s."""

from __future__ import annotations

import re
from typing import NamedTuple, cast

from .description import DatasetDescription
from .sim import BASE_MODALITIES, DESCRIPTION_NAME, SYNERGY_NAMES

__all__ = ["GROUND_TRUTH_DISTRACTORS", "GroundTruth", "with_ground_truth", "ground_truth_of"]


# The distractors a study on the simulator adds by default, so that its report can check
# that a pure-noise modality comes out uninformative and an exact copy redundant.
GROUND_TRUTH_DISTRACTORS = ("noise", "copy-vision")
_NOISE_NAME = re.compile(r"noise(-\d+)?")
_COPY_NAME = re.compile(r"copy-([a-z]+)(-\d+)?")
_BIT_A_NAME = re.compile(re.escape(SYNERGY_NAMES[0]) + r"(-\d+)?")


def with_ground_truth(options: dict) -> dict:
    """Simulator options with :data:`GROUND_TRUTH_DISTRACTORS` added, unless they name
    distractors of their own (then they are kept as given, an empty list included)."""
    options = dict(options or {})
    if "distractors" not in options:
        options["distractors"] = list(GROUND_TRUTH_DISTRACTORS)
    return options


class GroundTruth(NamedTuple):
    """The simulator's truths present in one of its data sets (from its description).

    ``noise``: the pure-noise distractors. ``copies``: ``(copy, source)`` of each exact copy.
    ``reference``: an informative arm modality (vision where present), the one whose muting
    the noise must not notice. ``pairs``: the extra measure pairs the checks need, name ->
    ``{"muted": [...], "compared": [...]}``; the names below are their keys (None where the
    data set lacks the modalities): ``noise_when_reference_muted`` (per noise modality),
    ``copy_from_source`` (per copy), ``present_from_past`` and ``present_from_nothing``
    (``joints@t`` given every modality at ``t-1``, or nothing; needs joints and motor),
    ``contact_from_vision`` and ``contact_from_nothing`` (per touch and sound, given vision
    alone or nothing). ``synergies``: ``(bit, bit, product)`` of each synergy triple (the
    ``xor`` distractor), with the pairs over the product's columns given both bits alone
    (``product_from_bits``), one bit alone (``product_from_bit``, per bit) and nothing
    (``product_from_nothing``), each keyed by the product's name."""

    noise: list[str]
    copies: list[tuple[str, str]]
    reference: str | None
    pairs: dict[str, dict[str, list[str]]]
    noise_when_reference_muted: dict[str, str]
    copy_from_source: dict[str, str]
    present_from_past: str | None
    present_from_nothing: str | None
    contact_from_vision: dict[str, str]
    contact_from_nothing: dict[str, str]
    synergies: list[tuple[str, str, str]]
    product_from_bits: dict[str, str]
    product_from_bit: dict[str, dict[str, str]]
    product_from_nothing: dict[str, str]


def ground_truth_of(description: DatasetDescription) -> GroundTruth | None:
    """The truths a data set of the simulator holds (None for any other data set): which of
    its modalities are distractors, and the measure pairs that check them."""
    if description.name != DESCRIPTION_NAME:
        return None
    names = description.modality_names
    arm = [m for m in names if m in dict(BASE_MODALITIES)]
    noise = [m for m in names if _NOISE_NAME.fullmatch(m)]
    copies = []
    for m in names:
        match = _COPY_NAME.fullmatch(m)
        if match and match.group(1) in arm:
            copies.append((m, match.group(1)))
    reference = "vision" if "vision" in arm else (arm[0] if arm else None)
    pairs: dict[str, dict[str, list[str]]] = {}

    def pair(name: str, muted: list[str], compared: list[str]) -> str:
        pairs[name] = {"muted": list(muted), "compared": list(compared)}
        return name

    def all_but(kept: str) -> list[str]:
        return [m for m in names if m != kept]

    noise_pairs = {}
    if reference is not None:
        noise_pairs = {n: pair(f"{n}-when-{reference}-muted", [reference], [n]) for n in noise}
    copy_pairs = {c: pair(f"{c}-from-{source}", all_but(source), [c]) for c, source in copies}
    past = nothing = None
    if "joints" in arm and "motor" in arm and "t" in description.time_steps and len(description.time_steps) > 1:
        now = [f"{m}@t" for m in names]
        past = pair("joints@t-from-past", now, ["joints@t"])
        nothing = pair("joints@t-from-nothing", names, ["joints@t"])
    contact, contact_nothing = {}, {}
    if "vision" in arm:
        for m in ("touch", "sound"):
            if m in arm:
                contact[m] = pair(f"{m}-from-vision", all_but("vision"), [m])
                contact_nothing[m] = pair(f"{m}-from-nothing", names, [m])
    synergies = []
    for match in filter(None, (_BIT_A_NAME.fullmatch(m) for m in names)):
        triple = cast(tuple[str, str, str], tuple(f"{n}{match.group(1) or ''}" for n in SYNERGY_NAMES))
        if all(n in names for n in triple):
            synergies.append(triple)
    from_bits = {p: pair(f"{p}-from-{a}-and-{b}", [m for m in names if m not in (a, b)], [p]) for a, b, p in synergies}
    from_bit = {p: {x: pair(f"{p}-from-{x}", all_but(x), [p]) for x in (a, b)} for a, b, p in synergies}
    from_nothing = {p: pair(f"{p}-from-nothing", names, [p]) for _, _, p in synergies}
    return GroundTruth(
        noise,
        copies,
        reference,
        pairs,
        noise_pairs,
        copy_pairs,
        past,
        nothing,
        contact,
        contact_nothing,
        synergies,
        from_bits,
        from_bit,
        from_nothing,
    )
