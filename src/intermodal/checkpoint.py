"""Checkpoints: weights and optimiser state as safetensors, everything else as JSON.

A checkpoint is a folder::

    model.safetensors      weights.<layer> [models, in, out], biases.<layer> [models, 1, out]
    optimizer.safetensors  exp_avg.<param>, exp_avg_sq.<param>, step.<param>
    rng.safetensors        per-model generator states, uint8 [models, state]
    state.json             epochs done, the run config, the data set description, the
                           architecture, dtype, which (schedule, seed) each model is, and the
                           SHA-256 of each of the files above

Nothing is pickled: loading reads tensors and JSON only, and checks every file against its
SHA-256, so a damaged or missing file is an error that names it. A checkpoint is written
beside its destination (``NAME.new``) and renamed into place; the one it replaces is kept
as ``NAME.old`` until the next save, so a damaged latest checkpoint still leaves the
previous one to resume from (:func:`load_checkpoint` with ``fallback=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .data import DataError, DatasetDescription
from .files import fsync_folder, write_json
from .model import Architecture, MultimodalVAE

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "merge_checkpoints", "CheckpointError"]

FORMAT_VERSION = 2
_REQUIRED_STATE = (
    "format_version",
    "n_models",
    "dtype",
    "architecture",
    "description",
    "models",
    "epochs_done",
    "sha256",
)


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, or does not match what it is loaded for."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, str(path))
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def save_checkpoint(
    path: str | os.PathLike,
    model: MultimodalVAE,
    optimizer_state: dict[str, torch.Tensor] | None,
    rng_states: torch.Tensor | None,
    state: dict,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically (see the module docstring).

    ``optimizer_state``: tensors named ``<kind>.<parameter name>`` (e.g.
    ``exp_avg.weights.enc:joints:0``), each with the model axis first where it has one.
    ``rng_states``: ``[models, state]`` uint8. ``state`` must be JSON-serialisable and hold
    ``models`` and ``epochs_done``; model facts and checksums are added to it.
    """
    path = Path(path)
    new = path.with_name(path.name + ".new")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    _save_tensors({n: p.detach().contiguous().cpu() for n, p in model.named_parameters()}, new / "model.safetensors")
    if optimizer_state is not None:
        _save_tensors(
            {k: v.detach().contiguous().cpu() for k, v in optimizer_state.items()}, new / "optimizer.safetensors"
        )
    if rng_states is not None:
        _save_tensors({"states": rng_states.contiguous()}, new / "rng.safetensors")
    p0 = next(model.parameters())
    full_state = dict(state)
    full_state.update(
        format_version=FORMAT_VERSION,
        n_models=model.n_models,
        dtype=str(p0.dtype).removeprefix("torch."),
        architecture=model.architecture.to_dict(),
        description=model.description.to_dict(),
        sha256={f.name: _sha256(f) for f in sorted(new.glob("*.safetensors"))},
    )
    write_json(new / "state.json", full_state)
    fsync_folder(new)
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(new, path)
    fsync_folder(path.parent)
    return path


def _candidates(path: Path) -> list[Path]:
    """Checkpoint folders to try for ``path`` (a checkpoint or a run folder), newest first."""
    if (path / "state.json").exists() or path.name.startswith("checkpoint"):
        base = path
    else:
        base = path / "checkpoint"
    old = base.with_name(base.name + ".old")
    return [c for c in (base, old) if (c / "state.json").exists()] or [base]


def load_checkpoint(path: str | os.PathLike, *, device: str = "cpu", fallback: bool = False):
    """Read a checkpoint folder (or a run folder holding ``checkpoint/``), checking every
    file against its SHA-256.

    Returns ``(model, state, optimizer_state, rng_states)``: the ensemble, the JSON state,
    the optimiser tensors by name and the per-model generator states ``[models, state]``
    (None when none were saved). With ``fallback``, a damaged latest checkpoint gives way to
    the previous one (``checkpoint.old``), and a line on stderr says so.
    """
    path = Path(path)
    candidates = _candidates(path)
    errors = []
    for candidate in candidates if fallback else candidates[:1]:
        try:
            loaded = _load(candidate, device)
        except CheckpointError as e:
            errors.append(str(e))
            continue
        if errors:
            import sys

            print(
                f"intermodal: warning: {errors[0]}; resuming from the previous checkpoint {candidate} "
                f"(epoch {loaded[1]['epochs_done']})",
                file=sys.stderr,
                flush=True,
            )
        return loaded
    if not any((c / "state.json").exists() for c in candidates):
        raise CheckpointError(
            f"{path}: no checkpoint here (expected state.json, or a run folder with checkpoint/state.json)"
        )
    raise CheckpointError("; and the previous one: ".join(errors))


def _load(path: Path, device: str):
    state_file = path / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{state_file}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{state_file}: not valid JSON ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{state_file}: expected a JSON object")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{state_file}: checkpoint format {state.get('format_version')!r}; this intermodal reads {FORMAT_VERSION}"
        )
    missing = [k for k in _REQUIRED_STATE if k not in state]
    if missing:
        raise CheckpointError(f"{state_file}: lacks key(s) {missing}")
    for name, digest in state["sha256"].items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file}: missing (state.json lists it)")
        if _sha256(file) != digest:
            raise CheckpointError(f"{file}: damaged (its SHA-256 differs from the one state.json records)")
    if "model.safetensors" not in state["sha256"]:
        raise CheckpointError(f"{state_file}: names no model.safetensors")
    try:
        desc = DatasetDescription.from_dict(state["description"], origin=f"{state_file} description")
        arch = Architecture.from_dict(state["architecture"], origin=f"{state_file} architecture")
        model = MultimodalVAE(desc, arch, int(state["n_models"]), dtype=getattr(torch, state["dtype"]), device=device)
    except (DataError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{state_file}: {e}") from None
    try:
        weights = load_file(str(path / "model.safetensors"), device=device)
        optimizer_state = (
            load_file(str(path / "optimizer.safetensors"), device=device)
            if "optimizer.safetensors" in state["sha256"]
            else {}
        )
        rng_states = (
            load_file(str(path / "rng.safetensors"))["states"] if "rng.safetensors" in state["sha256"] else None
        )
    except (SafetensorError, OSError, KeyError) as e:
        raise CheckpointError(f"{path}: a tensor file cannot be read ({e})") from None
    expected = {n for n, _ in model.named_parameters()}
    if set(weights) != expected:
        raise CheckpointError(f"{path / 'model.safetensors'}: tensors do not match the architecture in state.json")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if weights[n].shape != p.shape:
                raise CheckpointError(
                    f"{path / 'model.safetensors'}: {n} has shape {tuple(weights[n].shape)}; expected {tuple(p.shape)}"
                )
            p.copy_(weights[n])
    return model, state, optimizer_state, rng_states


def load_model(path: str | os.PathLike, *, device: str = "cpu"):
    """Just the trained ensemble and its JSON state (for measuring and predicting)."""
    model, state, _, _ = load_checkpoint(path, device=device)
    return model, state


def merge_checkpoints(
    sources: list[Path], out: str | os.PathLike, keys: list[tuple[str, int]], config: dict, tables: list[str]
) -> Path:
    """One checkpoint of the models ``keys`` (in that order) from checkpoints that hold them
    between them, all at the same epoch: weights, Adam moments and generator states are
    taken model by model; Adam's step counts, one per parameter, must agree."""
    loaded = [load_checkpoint(s) for s in sources]
    epochs = {int(state["epochs_done"]) for _, state, _, _ in loaded}
    if len(epochs) != 1:
        raise CheckpointError(f"the checkpoints to merge stopped at different epochs {sorted(epochs)}: {sources}")
    where = {}
    for i, (_, state, _, _) in enumerate(loaded):
        for j, key in enumerate(state["models"]):
            where[(key[0], int(key[1]))] = (i, j)
    picks = [where[k] for k in keys]
    # Diverged models keep their mark (by position, now in the merged ensemble).
    diverged = {
        str(position): loaded[i][1].get("diverged", {})[str(j)]
        for position, (i, j) in enumerate(picks)
        if str(j) in loaded[i][1].get("diverged", {})
    }
    model = MultimodalVAE.concatenate([loaded[i][0].select([j]) for i, j in picks])
    optimizer_state = None
    if all(opt for _, _, opt, _ in loaded):
        optimizer_state = {}
        for name in loaded[0][2]:
            if name.startswith("step."):
                steps = {float(opt[name]) for _, _, opt, _ in loaded}
                if len(steps) != 1:
                    raise CheckpointError(f"the checkpoints to merge disagree on Adam's step count ({name})")
                optimizer_state[name] = loaded[0][2][name]
            else:
                optimizer_state[name] = torch.cat([loaded[i][2][name][j : j + 1] for i, j in picks])
    rng_states = None
    if all(r is not None for *_, r in loaded):
        rng_states = torch.stack([loaded[i][3][j] for i, j in picks])
    state = {
        "epochs_done": epochs.pop(),
        "models": [list(k) for k in keys],
        "config": config,
        "tables": tables,
        "diverged": diverged,
    }
    return save_checkpoint(out, model, optimizer_state, rng_states, state)
