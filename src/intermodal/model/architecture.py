"""Layer widths of the multimodal VAE: the :class:`Architecture` and the original code's
presets "1".."7" (docs/method.md §2), named by the data set's modality names.

A preset's widths come from the data set's description where it lists them (the iCub one
states the original table), else from each modality's number of columns by the rules below.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as validated_dataclass

from ..data.description import DatasetDescription
from ..data.reading import read_mapping_file
from ..errors import ModelError, validation_message

__all__ = ["Architecture", "architecture_preset", "PRESETS", "MAX_WEIGHTS"]

# The most weights one model may have (about 4 GB in float32, per model of an ensemble):
# checked from the widths before any layer is allocated (docs/reliability.md, "Limits").
MAX_WEIGHTS = 10**9

PRESETS = ("1", "2", "3", "4", "5", "6", "7")

# Widths of the original presets for a modality of d columns (both time steps), as
# multiples of d. They reproduce the original table for d = 8 and d = 2 except where the
# original singles out one modality (motor's encoder ends at 10), which a data set's
# description states itself (see datasets/icub-zambelli2020.json).
_GENERIC: dict[str, dict[str, Any]] = {
    "1": dict(enc=(5, 2.5), slice=2.5, dec=(5, 1), shared_encoder=[100], shared_decoder=[100]),
    "2": dict(enc=(2.5, 1.25), slice=1.25, dec=(2.5, 1), shared_encoder=[50], shared_decoder=[50]),
    "3": dict(enc=(), slice=2.5, dec=(), shared_encoder=[70], shared_decoder=[]),
    "4": dict(enc=(5,), slice=5, dec=(1,), shared_encoder=[100], shared_decoder=[100]),
    "5": dict(enc=(), slice=1, dec=(), shared_encoder=[50], shared_decoder=[50]),
    "6": dict(enc=(6.25, 2.5, 1.25), slice=2.5, dec=(6.25, 2.5, 1.25), shared_encoder=[100], shared_decoder=[100]),
}
_GENERIC["7"] = _GENERIC["1"]


Width = Annotated[int, Strict(), Field(ge=1)]


@validated_dataclass(config=ConfigDict(extra="forbid"))
class Architecture:
    """Layer widths of one multimodal VAE.

    ``encoders[m]``: hidden widths of modality ``m``'s encoder (ReLU each; empty = the
    modality's columns go straight into the concatenation). ``shared_encoder``: widths
    after the concatenation (ReLU). ``latent``: latent size, ``None`` = number of columns
    (as Zambelli). ``shared_decoder``: widths from z (ReLU); the last must equal the sum of
    ``slices``. ``decoders[m]``: widths from modality ``m``'s slice (ReLU each, the last
    included); then a Gaussian head maps the last width to the modality's columns.
    """

    encoders: dict[str, list[Width]]
    shared_encoder: list[Width]
    shared_decoder: list[Width]
    slices: dict[str, Width]
    decoders: dict[str, list[Width]]
    latent: Width | None = None

    def check(self, description: DatasetDescription) -> None:
        names = description.modality_names
        for part in ("encoders", "slices", "decoders"):
            got = list(getattr(self, part))
            if sorted(got) != sorted(names):
                raise ModelError(
                    f"architecture: '{part}' names modalities {got}; the data set {description.name!r} has {names}"
                )
        if not self.shared_encoder:
            raise ModelError("architecture: 'shared_encoder' needs at least one layer")
        if not self.shared_decoder or self.shared_decoder[-1] != sum(self.slices.values()):
            raise ModelError(
                "architecture: the last shared decoder width "
                f"({self.shared_decoder[-1] if self.shared_decoder else None}) "
                f"must equal the sum of the slices ({sum(self.slices.values())})"
            )
        weights = self.weights(description)
        if weights > MAX_WEIGHTS:
            raise ModelError(
                f"architecture: its widths make about {weights:.3g} weights per model for {description.name!r}; "
                f"a model has at most MAX_WEIGHTS = {MAX_WEIGHTS:.0e}: choose smaller widths (an architecture file)"
            )

    def weights(self, description: DatasetDescription) -> int:
        """The weights of the linear layers (biases aside) of one model of these widths."""

        def chain(widths: list[int]) -> int:
            return sum(a * b for a, b in zip(widths, widths[1:]))

        steps = len(description.time_steps)
        sizes = {m.name: m.size * steps for m in description.modalities}
        latent = self.latent or description.n_columns
        encoded = sum((self.encoders[m] or [d])[-1] for m, d in sizes.items())
        total = sum(chain([d, *self.encoders[m]]) for m, d in sizes.items())
        total += chain([encoded, *self.shared_encoder]) + self.shared_encoder[-1] * 2 * latent
        total += chain([latent, *self.shared_decoder])
        total += sum(
            chain([self.slices[m], *self.decoders[m]]) + (self.decoders[m] or [self.slices[m]])[-1] * 2 * d
            for m, d in sizes.items()
        )
        return total

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, origin: str = "architecture") -> Architecture:
        """Validate a mapping of widths (as read from JSON); errors name ``origin`` and the key."""
        try:
            return _ARCHITECTURE.validate_python(d)
        except ValidationError as e:
            raise ModelError(validation_message(e, origin)) from None


_ARCHITECTURE = TypeAdapter(Architecture)


def architecture_preset(preset: str | int, description: DatasetDescription) -> Architecture:
    """Architecture preset ``"1"``..``"7"`` for a data set, or a JSON file of an
    :class:`Architecture`. A data set's description may state the widths of its modalities
    (the iCub one states the original table); other modalities get widths scaled from
    their number of columns."""
    preset = str(preset)
    if preset not in PRESETS:
        path = Path(preset)
        if path.suffix == ".json" and path.exists():
            arch = Architecture.from_dict(read_mapping_file(path, "architecture file"), origin=str(path))
            try:
                arch.check(description)
            except ModelError as e:
                raise ModelError(f"{path}: {e}") from None
            return arch
        raise ModelError(f"--architecture {preset!r}: expected one of {', '.join(PRESETS)} or a .json file of widths")
    rule = _GENERIC[preset]
    table = description.architectures.get(preset, {})
    up = lambda x: int(math.ceil(x))  # noqa: E731
    enc, slices, dec = {}, {}, {}
    for m in description.modalities:
        d = m.size * len(description.time_steps)
        enc[m.name] = table.get("encoders", {}).get(m.name, [up(f * d) for f in rule["enc"]])
        slices[m.name] = table.get("slices", {}).get(m.name, up(rule["slice"] * d))
        generic_dec = [up(f * d) for f in rule["dec"]]
        dec[m.name] = table.get("decoders", {}).get(m.name, generic_dec)
    # The last shared decoder width is always the sum of the slices it is cut into.
    shared_decoder = list(table.get("shared_decoder", rule["shared_decoder"] + [0]))[:-1] + [sum(slices.values())]
    arch = Architecture(
        encoders=enc,
        shared_encoder=list(table.get("shared_encoder", rule["shared_encoder"])),
        shared_decoder=shared_decoder,
        slices=slices,
        decoders=dec,
    )
    arch.check(description)
    return arch
