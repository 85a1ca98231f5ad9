"""The one configuration of a run: plain typed fields with defaults.

Values come, in rising priority, from the defaults below, a study preset, a config file
(``--config run.toml`` or ``.json``) and command-line options. Unknown keys are rejected
with the list of known ones. A run folder keeps the resolved config as ``config.json``,
from which the run can be resumed and its figures rebuilt.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .schedules import PAPER_EPOCHS, PAPER_SCHEDULES

__all__ = ["RunConfig", "ConfigError", "load_config_file", "parse_seeds", "STUDY_PRESETS", "preset_config"]


class ConfigError(ValueError):
    """An option or config key has a value that is not what was expected."""


@dataclass
class RunConfig:
    # --- data -----------------------------------------------------------------------
    data: str = "sim"  # "sim", "icub", or a data set description file (.json/.toml)
    data_dir: str | None = None  # read the data files from here instead of fetching
    sim: dict = field(default_factory=dict)  # simulator options for --data sim
    patterns: list[str] | None = None  # muting patterns to train on; None = all
    # --- models: one per (schedule, seed) -------------------------------------------
    schedules: list[str] = field(default_factory=lambda: ["constant-0"])
    seeds: list[int] = field(default_factory=lambda: [0])
    architecture: str = "1"  # preset 1..7 of the original code, or an architecture .json
    # --- optimisation (SPEC section 3) ----------------------------------------------
    epochs: int = 200
    schedule_horizon: int | None = None  # epochs a schedule is laid over; None = epochs
    lr: float = 5e-5
    batch_size: int = 1000
    dtype: str = "float32"  # the original trains in float64; float32 agrees (see docs)
    device: str = "cpu"
    # torch threads per process. These layers are too small to split across threads, and
    # on a busy machine extra threads spin-wait: 1 thread was 16x faster than 2 there.
    threads: int | None = 1
    workers: int | None = None  # models train in this many parallel shards; None = one per core
    # --- evaluation during training (0 = never) ---------------------------------------
    eval_every: int = 0
    eval_rows: str = "first"  # "first", "random" or "all" rows of the test part
    n_eval_rows: int = 1024
    eval_seed: int = 0
    z_samples: int = 0  # 0 = decode from the latent mean (as the original's evaluation)
    extra_pairs: dict = field(default_factory=dict)  # name -> {"muted": [...], "compared": [...]}
    windows: list[list[int]] | None = None  # epoch windows for the window means figure
    # --- output ---------------------------------------------------------------------
    checkpoint_every: int = 1000  # epochs between checkpoints (and at the end)

    def validate(self) -> "RunConfig":
        def need(ok: bool, key: str, expected: str):
            if not ok:
                raise ConfigError(f"option {key!r} is {getattr(self, key)!r}; expected {expected}")

        need(self.epochs >= 1, "epochs", "a whole number >= 1")
        need(self.lr > 0, "lr", "a learning rate > 0")
        need(self.batch_size >= 1, "batch_size", "a whole number >= 1")
        need(self.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'")
        need(self.device == "cpu" or self.device.startswith("cuda"), "device", "'cpu' or 'cuda' (or 'cuda:N')")
        need(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), "seeds", "distinct seeds, at least one")
        need(len(self.schedules) >= 1 and len(set(self.schedules)) == len(self.schedules), "schedules", "distinct schedule names, at least one")
        need(self.eval_every >= 0, "eval_every", "a whole number >= 0 (0 = no evaluation)")
        need(self.eval_rows in ("first", "random", "all"), "eval_rows", "'first', 'random' or 'all'")
        need(self.n_eval_rows >= 1, "n_eval_rows", "a whole number >= 1")
        need(self.z_samples >= 0, "z_samples", "a whole number >= 0")
        need(self.checkpoint_every >= 1, "checkpoint_every", "a whole number >= 1")
        need(self.schedule_horizon is None or self.schedule_horizon >= 1, "schedule_horizon", "a whole number >= 1 or none")
        need(self.threads is None or self.threads >= 1, "threads", "a whole number >= 1 or none")
        need(self.workers is None or self.workers >= 1, "workers", "a whole number >= 1 or none (one per core)")
        need(
            self.windows is None or all(len(w) == 2 and w[0] < w[1] for w in self.windows),
            "windows",
            "a list of [start, end] epoch pairs with start < end",
        )
        from .schedules import parse_schedule

        for s in self.schedules:
            parse_schedule(s)
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def updated(self, values: dict, origin: str = "config") -> "RunConfig":
        """A copy with ``values`` applied (keys as field names; '-' may stand for '_')."""
        hints = typing.get_type_hints(RunConfig)
        known = {f.name for f in dataclasses.fields(RunConfig)}
        changes = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                raise ConfigError(f"{origin}: unknown key {key!r}; known keys are {', '.join(sorted(known))}")
            changes[name] = _coerce(value, hints[name], f"{origin}: {key}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict, origin: str = "config") -> "RunConfig":
        return cls().updated(values, origin)

    @classmethod
    def from_run(cls, run: str | Path) -> "RunConfig":
        """The config a run folder was started with (its ``config.json``)."""
        path = Path(run) / "config.json"
        if not path.exists():
            raise ConfigError(f"{run}: not a run folder (it has no config.json)")
        return cls.from_dict(json.loads(path.read_text()), origin=str(path))

    def load_dataset(self):
        """The data set this config names (see :func:`intermodal.data.load_dataset`)."""
        from .data import load_dataset

        return load_dataset(self.data, self.data_dir, self.sim)


# Study presets: overrides of the defaults above. Why they are as they are: intermodal.study.
STUDY_PRESETS: dict[str, dict] = {
    "paper": dict(
        schedules=list(PAPER_SCHEDULES),
        seeds=list(range(20)),
        epochs=PAPER_EPOCHS,
        lr=5e-5,
        eval_every=200,
        checkpoint_every=1000,
    ),
    "quick": dict(
        schedules=list(PAPER_SCHEDULES),
        seeds=[0, 1, 2],
        epochs=1500,
        lr=3e-4,
        eval_every=50,
        checkpoint_every=250,
    ),
}


def preset_config(name: str) -> RunConfig:
    """The run config of a study preset (see :mod:`intermodal.study` for what they are)."""
    if name not in STUDY_PRESETS:
        raise ValueError(f"--preset {name!r}: expected one of {sorted(STUDY_PRESETS)}")
    return RunConfig().updated(STUDY_PRESETS[name], origin=f"preset {name}")



def parse_seeds(value) -> list[int]:
    """``5`` → seeds 0..4; ``"0,3,7"`` → those; ``"10-19"`` → 10..19; a list as given."""
    if isinstance(value, bool):
        raise ConfigError(f"seeds: {value!r} is not a number of seeds or a list")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"seeds: {value} must be >= 1 (the number of seeds, from 0)")
        return list(range(value))
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    text = str(value).strip()
    try:
        if "," in text:
            return [int(v) for v in text.split(",") if v.strip()]
        if "-" in text[1:]:
            a, b = text.split("-", 1)
            return list(range(int(a), int(b) + 1))
        return parse_seeds(int(text))
    except ValueError:
        raise ConfigError(f"seeds: {value!r}; expected a count (5), a list (0,3,7) or a range (10-19)") from None


def _coerce(value, hint, where: str):
    """Turn a command-line string or a file value into the field's type, or say why not."""
    if where.endswith("seeds"):
        return parse_seeds(value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where)
    try:
        if hint is bool:
            if isinstance(value, str):
                return {"true": True, "false": False, "1": True, "0": False}[value.lower()]
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if not isinstance(value, (str, int)):
                raise ValueError
            return str(value)
        if origin is list or hint is list:
            if isinstance(value, str):
                if value.strip().startswith("["):
                    value = json.loads(value)
                else:
                    value = [v.strip() for v in value.split(",") if v.strip()]
            item = args[0] if args else None
            return [_coerce(v, item, where) if item else v for v in value]
        if hint is dict or origin is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError):
        raise ConfigError(f"{where} is {value!r}; expected {getattr(hint, '__name__', str(hint))}") from None
    return value


def load_config_file(path: str | Path) -> dict:
    """Read a TOML or JSON config file into a plain dict (keys checked later)."""
    from .data import read_mapping_file

    return read_mapping_file(path, "config file", ConfigError)
