"""Checkpoints: weights and optimiser state as safetensors, everything else as JSON.

A checkpoint is a folder::

    model.safetensors      <fusion>/weights.<layer> [models, in, out], <fusion>/biases.<layer> [models, 1, out]
    optimizer.safetensors  <fusion>/exp_avg.<param>, <fusion>/exp_avg_sq.<param>, <fusion>/step.<param>
    rng.safetensors        per-model generator states, uint8 [models, state]
    state.json             epochs done, the run config, the data set description, the
                           ensembles (``groups``: fusion, models, architecture), dtype,
                           which model each position holds (``model_keys``), and the
                           SHA-256 of each file above

Nothing is pickled: loading reads tensors and JSON only, and checks every file against its
SHA-256, so a damaged or missing file is an error that names it. A checkpoint is written
beside its destination (``NAME.new``) and renamed into place; the one it replaces is kept
as ``NAME.old`` until the next save, so a damaged latest checkpoint still leaves the
previous one to resume from (:func:`load_checkpoint` with ``fallback=True``). A save that
fails (a full disk) removes its ``NAME.new`` and leaves ``NAME`` and ``NAME.old`` as they were.

This module owns the files inside a checkpoint folder; where a run keeps its checkpoint
is :mod:`intermodal.training.runfolder`'s.
"""

from __future__ import annotations

import json
import logging
import os
import reprlib
import shutil
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..data.description import DatasetDescription
from ..errors import CheckpointError, DataError, ModelError
from ..files import fsync_file, fsync_folder, sha256, write_json
from ..model.architecture import Architecture
from ..model.base import EnsembleVAE
from ..model.group import ModelGroups, build_model, concatenate_models, groups_of
from .config import ModelKey

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "read_state",
    "check_state_types",
    "merge_checkpoints",
    "STATE_FILE",
]

logger = logging.getLogger("intermodal")

# The state's format: 3 holds several fusions ("groups", tensors named <fusion>/...) and
# "model_keys" as records; 2, still read, holds one Zambelli ensemble and "models" as
# [schedule, seed] pairs.
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)
STATE_FILE = "state.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
_REQUIRED_STATE = ("format_version", "n_models", "dtype", "description", "epochs_done", "sha256")
# The JSON type of each entry of state.json, where it is there; another (a list where a
# mapping belongs, a word where a count does) is refused when the state is read.
_STATE_TYPES = {
    "format_version": int,
    "n_models": int,
    "epochs_done": int,
    "dtype": str,
    "description": dict,
    "sha256": dict,
    "groups": list,
    "architecture": dict,
    "model_keys": list,
    "models": list,
    "config": dict,
    "tables": list,
    "diverged": dict,
}
_TYPE_WORDS = {int: "a whole number", str: "a text", dict: "a mapping", list: "a list"}


class Checkpoint(NamedTuple):
    """A checkpoint as loaded: the ensemble, its JSON state (``model_keys`` as
    :class:`~intermodal.training.config.ModelKey`), the optimiser tensors by name and the
    per-model generator states ``[models, state]`` (None when none were saved)."""

    model: EnsembleVAE | ModelGroups  # ModelGroups for several fusions
    state: dict
    optimizer_state: dict[str, torch.Tensor]
    rng_states: torch.Tensor | None

    @property
    def model_keys(self) -> list[ModelKey]:
        return self.state["model_keys"]

    @property
    def epochs_done(self) -> int:
        return int(self.state["epochs_done"])


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, str(path))
    fsync_file(path)


def save_checkpoint(
    path: str | os.PathLike,
    model,
    optimizer_state: dict[str, torch.Tensor] | None,
    rng_states: torch.Tensor | None,
    state: dict,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically (see the module docstring).

    ``model``: an ensemble, or :class:`~intermodal.model.group.ModelGroups`.
    ``optimizer_state``: tensors named ``<fusion>/<kind>.<parameter name>`` (e.g.
    ``concat/exp_avg.weights.enc:joints:0``), each with the model axis first where it has one.
    ``rng_states``: ``[models, state]`` uint8. ``state`` must be JSON-serialisable and hold
    ``model_keys`` (one :class:`ModelKey` per position) and ``epochs_done``; model facts and
    checksums are added to it. A failed write raises :class:`CheckpointError` and changes
    nothing already there."""
    path = Path(path)
    new = path.with_name(path.name + ".new")
    old = path.with_name(path.name + ".old")
    try:
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(parents=True)
        groups = [g for _, g in groups_of(model)]
        tensors = {f"{g.fusion}/{n}": p.detach().contiguous().cpu() for g in groups for n, p in g.named_parameters()}
        _save_tensors(tensors, new / MODEL_FILE)
        if optimizer_state is not None:
            _save_tensors({k: v.detach().contiguous().cpu() for k, v in optimizer_state.items()}, new / OPTIMIZER_FILE)
        if rng_states is not None:
            _save_tensors({"states": rng_states.contiguous()}, new / RNG_FILE)
        p0 = next(groups[0].parameters())
        full_state = dict(state)
        full_state.update(
            format_version=FORMAT_VERSION,
            model_keys=[key._asdict() for key in state["model_keys"]],
            n_models=model.n_models,
            dtype=str(p0.dtype).removeprefix("torch."),
            groups=[
                {"fusion": g.fusion, "n_models": g.n_models, "architecture": g.architecture.to_dict()} for g in groups
            ],
            description=model.description.to_dict(),
            sha256={f.name: sha256(f) for f in sorted(new.glob("*.safetensors"))},
        )
        write_json(new / STATE_FILE, full_state)
        fsync_folder(new)
    except (OSError, SafetensorError) as e:
        shutil.rmtree(new, ignore_errors=True)
        reason = getattr(e, "strerror", None) or str(e)
        kept = f"the previous checkpoint {path} is intact" if path.is_dir() else "no checkpoint was there yet"
        raise CheckpointError(
            f"cannot write a checkpoint into {path.parent} ({reason}); nothing was lost: {kept}. "
            "Free some space there (or fix the folder), then continue with --resume"
        ) from None
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(new, path)
    fsync_folder(path.parent)
    return path


def read_state(path: str | os.PathLike) -> dict | None:
    """The JSON state of the checkpoint at ``path``, or of the one before it while a save
    renames the new one into place; None where there is none (yet). Only JSON is read and
    nothing is checked: for polling progress over shared storage."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + ".old")):
        try:
            state = json.loads((candidate / STATE_FILE).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue  # absent, or being replaced this instant
        if isinstance(state, dict) and "epochs_done" in state:
            check_state_types(state, candidate / STATE_FILE)
            try:
                return _with_model_keys(state)
            except (TypeError, ValueError) as e:
                raise CheckpointError(
                    f"{candidate / STATE_FILE}: model_keys are not records of fusion, schedule and seed ({e})"
                ) from None
    return None


def _is(value, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def check_state_types(state: dict, state_file: Path) -> None:
    """Refuse a state whose entries have the wrong JSON type, naming the file and the entry
    (:class:`CheckpointError`)."""

    def refuse(where: str, kind: type, value) -> None:
        shown = reprlib.repr(value)
        raise CheckpointError(f"{state_file}: {where}: expected {_TYPE_WORDS[kind]}, got {shown}")

    for key, kind in _STATE_TYPES.items():
        if key in state and not _is(state[key], kind):
            refuse(key, kind, state[key])
    for key, kind in (("sha256", str), ("tables", str), ("groups", dict), ("model_keys", dict), ("models", list)):
        values = state.get(key, {})
        for name, value in values.items() if isinstance(values, dict) else enumerate(values):
            if not _is(value, kind):
                refuse(f"{key}.{name}", kind, value)
    for i, key in enumerate(state.get("model_keys", [])):
        for field, kind in (("fusion", str), ("schedule", str), ("seed", int)):
            if field in key and not _is(key[field], kind):
                refuse(f"model_keys.{i}.{field}", kind, key[field])
    for i, group in enumerate(state.get("groups") or []):
        for field, kind in (("fusion", str), ("n_models", int), ("architecture", dict)):
            if field in group and not _is(group[field], kind):
                refuse(f"groups.{i}.{field}", kind, group[field])
    for position, divergence in state.get("diverged", {}).items():
        if not _is(divergence, dict):
            refuse(f"diverged.{position}", dict, divergence)
        if not (position.isdigit() and _is(divergence.get("epoch"), int) and _is(divergence.get("cause"), str)):
            raise CheckpointError(
                f"{state_file}: diverged.{position}: expected a model's position and its epoch (a whole number) "
                f"and cause (a text), got {reprlib.repr(divergence)}"
            )


def exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or its previous version, ``NAME.old``) holds a checkpoint's state."""
    path = Path(path)
    return any((c / STATE_FILE).is_file() for c in (path, path.with_name(path.name + ".old")))


def _with_model_keys(state: dict) -> dict:
    """``state`` with ``model_keys`` as ModelKey records and ``groups`` listed, from either
    readable format (format 2: one Zambelli ensemble)."""
    if "model_keys" in state:
        keys = [ModelKey(**r) for r in state["model_keys"]]
    else:  # format 2
        keys = [ModelKey("concat", str(s), int(n)) for s, n in state.get("models", [])]
    groups = state.get("groups")
    if groups is None and "architecture" in state:
        groups = [
            {"fusion": "concat", "n_models": state.get("n_models", len(keys)), "architecture": state["architecture"]}
        ]
    return {**state, "model_keys": keys, "groups": groups}


def load_checkpoint(path: str | os.PathLike, *, device: str = "cpu", fallback: bool = False) -> Checkpoint:
    """Read the checkpoint folder at ``path``, checking every file against its SHA-256.
    With ``fallback``, a damaged latest checkpoint gives way to the previous one
    (``NAME.old``), and a warning (logger ``intermodal``) says so."""
    path = Path(path)
    candidates = [c for c in (path, path.with_name(path.name + ".old")) if (c / STATE_FILE).exists()] or [path]
    errors = []
    for candidate in candidates if fallback else candidates[:1]:
        try:
            loaded = _load(candidate, device)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            logger.warning(
                "%s; resuming from the previous checkpoint %s (epoch %s)", errors[0], candidate, loaded.epochs_done
            )
        return loaded
    if not any((c / STATE_FILE).exists() for c in candidates):
        raise CheckpointError(f"{path}: no checkpoint here (expected {STATE_FILE})")
    raise CheckpointError("; and the previous one: ".join(errors))


def _load(path: Path, device: str) -> Checkpoint:
    state_file = path / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{state_file}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_file}: not valid JSON ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{state_file}: expected a JSON object")
    if state.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{state_file}: checkpoint format {state.get('format_version')!r}; this intermodal reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    missing = [k for k in _REQUIRED_STATE if k not in state]
    missing += [] if "model_keys" in state or "models" in state else ["model_keys"]
    missing += [] if "groups" in state or "architecture" in state else ["groups"]
    if missing:
        raise CheckpointError(f"{state_file}: lacks key(s) {missing}")
    check_state_types(state, state_file)
    version = state["format_version"]
    try:
        state = _with_model_keys(state)
    except (TypeError, ValueError, IndexError) as e:
        raise CheckpointError(f"{state_file}: model_keys are not records of fusion, schedule and seed ({e})") from None
    for name, digest in state["sha256"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing ({STATE_FILE} lists it)")
        if sha256(file) != digest:
            raise CheckpointError(f"{file}: damaged (its SHA-256 differs from the one {STATE_FILE} records)")
    if MODEL_FILE not in state["sha256"]:
        raise CheckpointError(f"{state_file}: names no {MODEL_FILE}")
    try:
        description = DatasetDescription.from_dict(state["description"], origin=f"{state_file} description")
        dtype = getattr(torch, state["dtype"])
        groups = []
        for g in state["groups"]:
            arch = Architecture.from_dict(g["architecture"], origin=f"{state_file} architecture")
            groups.append(build_model(description, arch, g["fusion"], int(g["n_models"]), dtype=dtype, device=device))
    except (DataError, ModelError, TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{state_file}: {e}") from None
    try:
        weights = load_file(str(path / MODEL_FILE), device=device)
        optimizer_state = (
            load_file(str(path / OPTIMIZER_FILE), device=device) if OPTIMIZER_FILE in state["sha256"] else {}
        )
        rng_states = load_file(str(path / RNG_FILE))["states"] if RNG_FILE in state["sha256"] else None
    except (SafetensorError, OSError, KeyError) as e:
        raise CheckpointError(f"{path}: a tensor file cannot be read ({e})") from None
    if version == 2:  # one Zambelli ensemble, tensors without the fusion's prefix
        weights = {f"concat/{n}": t for n, t in weights.items()}
        optimizer_state = {f"concat/{n}": t for n, t in optimizer_state.items()}
    expected = {f"{g.fusion}/{n}" for g in groups for n, _ in g.named_parameters()}
    if set(weights) != expected:
        raise CheckpointError(f"{path / MODEL_FILE}: tensors do not match the ensembles in {STATE_FILE}")
    with torch.no_grad():
        for g in groups:
            for n, p in g.named_parameters():
                tensor = weights[f"{g.fusion}/{n}"]
                if tensor.shape != p.shape:
                    raise CheckpointError(
                        f"{path / MODEL_FILE}: {g.fusion}/{n} has shape {tuple(tensor.shape)}; "
                        f"expected {tuple(p.shape)}"
                    )
                p.copy_(tensor)
    model = groups[0] if len(groups) == 1 else ModelGroups(groups)
    if len(state["model_keys"]) != model.n_models:
        raise CheckpointError(f"{state_file}: {len(state['model_keys'])} model_keys for {model.n_models} models")
    model.model_keys = list(state["model_keys"])
    return Checkpoint(model, state, optimizer_state, rng_states)


def merge_checkpoints(sources: list[Path], out: str | os.PathLike, model_keys: list[ModelKey], state: dict) -> Path:
    """One checkpoint of the models ``model_keys`` (in that order) from checkpoints that hold
    them between them, all at the same epoch: weights, Adam moments and generator states are
    taken model by model; Adam's step counts, one per parameter, must agree. ``state``: the
    merged checkpoint's other JSON entries (``config``, ``tables``)."""
    loaded = [load_checkpoint(s) for s in sources]
    epochs = {c.epochs_done for c in loaded}
    if len(epochs) != 1:
        raise CheckpointError(f"the checkpoints to merge stopped at different epochs {sorted(epochs)}: {sources}")
    where = {key: (i, j) for i, c in enumerate(loaded) for j, key in enumerate(c.model_keys)}
    picks = [where[k] for k in model_keys]
    # Diverged models keep their mark (by position, now in the merged ensemble).
    diverged = {
        str(position): loaded[i].state.get("diverged", {})[str(j)]
        for position, (i, j) in enumerate(picks)
        if str(j) in loaded[i].state.get("diverged", {})
    }
    model = concatenate_models([loaded[i].model.select([j]) for i, j in picks])
    optimizer_state = None
    if all(c.optimizer_state for c in loaded):
        optimizer_state = {}
        names = dict.fromkeys(n for c in loaded for n in c.optimizer_state)
        for name in names:
            having = [(i, j) for i, j in picks if name in loaded[i].optimizer_state]
            if name.split("/", 1)[1].startswith("step."):
                steps = {float(loaded[i].optimizer_state[name]) for i, _ in having}
                if len(steps) != 1:
                    raise CheckpointError(f"the checkpoints to merge disagree on Adam's step count ({name})")
                optimizer_state[name] = loaded[having[0][0]].optimizer_state[name]
            else:
                # A checkpoint's optimiser tensors of one fusion index that fusion's models.
                optimizer_state[name] = torch.cat(
                    [
                        loaded[i].optimizer_state[name][_within_fusion(loaded[i], j) : _within_fusion(loaded[i], j) + 1]
                        for i, j in having
                    ]
                )
    rng_states = None
    states = [c.rng_states for c in loaded if c.rng_states is not None]
    if len(states) == len(loaded):
        rng_states = torch.stack([states[i][j] for i, j in picks])
    merged = {**state, "epochs_done": epochs.pop(), "model_keys": list(model_keys), "diverged": diverged}
    return save_checkpoint(out, model, optimizer_state, rng_states, merged)


def _within_fusion(checkpoint: Checkpoint, position: int) -> int:
    """The position's index among its fusion's models in a checkpoint."""
    for start, group in groups_of(checkpoint.model):
        if start <= position < start + group.n_models:
            return position - start
    raise CheckpointError(f"position {position} is not in the checkpoint's {checkpoint.model.n_models} models")
