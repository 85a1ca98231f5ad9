"""Checkpoints: weights and optimiser state as safetensors, everything else as JSON.

A checkpoint is a folder::

    model.safetensors      weights.<layer> [models, in, out], biases.<layer> [models, 1, out]
    optimizer.safetensors  exp_avg.<param>, exp_avg_sq.<param>, step.<param>
    rng.safetensors        per-model generator states, uint8 [models, state]
    state.json             epochs done, the run config, the data set description, the
                           architecture, dtype, and which (schedule, seed) each model is

Nothing is pickled: loading reads tensors and JSON only. A checkpoint is written beside
its destination and renamed into place, so a crash leaves the previous one intact.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .data import DatasetDescription
from .model import Architecture, MultimodalVAE

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "CheckpointError"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: str | os.PathLike, model: MultimodalVAE, optimizer_state: dict[str, torch.Tensor] | None,
                    rng_states: torch.Tensor | None, state: dict) -> Path:
    """Write a checkpoint folder at ``path`` atomically (see the module docstring).

    ``optimizer_state``: tensors named ``<kind>.<parameter name>`` (e.g.
    ``exp_avg.weights.enc:joints:0``), each with the model axis first where it has one.
    ``rng_states``: ``[models, state]`` uint8. ``state`` must be JSON-serialisable; model
    facts are added to it.
    """
    path = Path(path)
    new = path.with_name(path.name + ".new")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_file({n: p.detach().contiguous().cpu() for n, p in model.named_parameters()}, str(new / "model.safetensors"))
    if optimizer_state is not None:
        save_file({k: v.detach().contiguous().cpu() for k, v in optimizer_state.items()}, str(new / "optimizer.safetensors"))
    if rng_states is not None:
        save_file({"states": rng_states.contiguous()}, str(new / "rng.safetensors"))
    p0 = next(model.parameters())
    full_state = dict(state)
    full_state.update(
        format_version=FORMAT_VERSION,
        n_models=model.n_models,
        dtype=str(p0.dtype).removeprefix("torch."),
        architecture=model.architecture.to_dict(),
        description=model.description.to_dict(),
    )
    (new / "state.json").write_text(json.dumps(full_state, indent=2) + "\n")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def _resolve(path: Path) -> Path:
    if (path / "state.json").exists():
        return path
    for candidate in (path / "checkpoint", path.with_name(path.name + ".old"), path / "checkpoint.old"):
        if (candidate / "state.json").exists():
            return candidate
    raise CheckpointError(f"{path}: no checkpoint here (expected state.json, or a run folder with checkpoint/state.json)")


def load_checkpoint(path: str | os.PathLike, *, device: str = "cpu"):
    """Read a checkpoint folder (or a run folder holding ``checkpoint/``).

    Returns ``(model, state, optimizer_state, rng_states)``: the ensemble, the JSON state,
    the optimiser tensors by name (empty when none were saved) and the per-model generator
    states ``[models, state]`` (None when none were saved).
    """
    path = _resolve(Path(path))
    try:
        state = json.loads((path / "state.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path / 'state.json'}: not valid JSON ({e})") from None
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format_version')!r}; this intermodal reads {FORMAT_VERSION}")
    desc = DatasetDescription.from_dict(state["description"], origin=f"{path}/state.json description")
    arch = Architecture.from_dict(state["architecture"], origin=f"{path}/state.json architecture")
    model = MultimodalVAE(desc, arch, state["n_models"], dtype=getattr(torch, state["dtype"]), device=device)
    weights = load_file(str(path / "model.safetensors"), device=device)
    expected = {n for n, _ in model.named_parameters()}
    if set(weights) != expected:
        raise CheckpointError(f"{path / 'model.safetensors'}: tensors do not match the architecture in state.json")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if weights[n].shape != p.shape:
                raise CheckpointError(f"{path / 'model.safetensors'}: {n} has shape {tuple(weights[n].shape)}; expected {tuple(p.shape)}")
            p.copy_(weights[n])
    opt_file = path / "optimizer.safetensors"
    optimizer_state = load_file(str(opt_file), device=device) if opt_file.exists() else {}
    rng_file = path / "rng.safetensors"
    rng_states = load_file(str(rng_file))["states"] if rng_file.exists() else None
    return model, state, optimizer_state, rng_states


def load_model(path: str | os.PathLike, *, device: str = "cpu"):
    """Just the trained ensemble and its JSON state (for measuring)."""
    model, state, _, _ = load_checkpoint(path, device=device)
    return model, state
