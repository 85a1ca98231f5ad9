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


def save_checkpoint(path: str | os.PathLike, model: MultimodalVAE, optimizer: torch.optim.Optimizer | None,
                    generators: list[torch.Generator] | None, state: dict) -> Path:
    """Write a checkpoint folder at ``path`` atomically (see the module docstring).
    ``state`` must be JSON-serialisable; model facts are added to it."""
    path = Path(path)
    new = path.with_name(path.name + ".new")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    names = {id(p): n for n, p in model.named_parameters()}
    save_file({n: p.detach().contiguous().cpu() for n, p in model.named_parameters()}, str(new / "model.safetensors"))
    if optimizer is not None:
        tensors = {}
        for p, s in optimizer.state.items():
            for key, value in s.items():
                tensors[f"{key}.{names[id(p)]}"] = torch.as_tensor(value).detach().contiguous().cpu()
        save_file(tensors, str(new / "optimizer.safetensors"))
    if generators is not None:
        save_file({"states": torch.stack([g.get_state() for g in generators])}, str(new / "rng.safetensors"))
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


def load_checkpoint(path: str | os.PathLike, *, device: str = "cpu", optimizer_factory=None):
    """Read a checkpoint folder (or a run folder holding ``checkpoint/``).

    Returns ``(model, state, optimizer, generators)``; ``optimizer`` is built with
    ``optimizer_factory(parameters)`` and filled when that is given, else None;
    ``generators`` is None when the checkpoint has no RNG states.
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
    dtype = getattr(torch, state["dtype"])
    model = MultimodalVAE(desc, arch, state["n_models"], dtype=dtype, device=device)
    weights = load_file(str(path / "model.safetensors"), device=device)
    expected = {n for n, _ in model.named_parameters()}
    if set(weights) != expected:
        raise CheckpointError(f"{path / 'model.safetensors'}: tensors do not match the architecture in state.json")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if weights[n].shape != p.shape:
                raise CheckpointError(f"{path / 'model.safetensors'}: {n} has shape {tuple(weights[n].shape)}; expected {tuple(p.shape)}")
            p.copy_(weights[n])
    optimizer = None
    if optimizer_factory is not None:
        optimizer = optimizer_factory(model.parameters())
        opt_file = path / "optimizer.safetensors"
        if opt_file.exists():
            tensors = load_file(str(opt_file), device=device)
            for n, p in model.named_parameters():
                keys = {k.split(".", 1)[0] for k in tensors if k.split(".", 1)[1] == n}
                entry = {}
                for key in keys:
                    value = tensors[f"{key}.{n}"]
                    # Adam keeps its step count on the CPU unless it runs fused/capturable.
                    entry[key] = value.cpu() if key == "step" else value
                if entry:
                    optimizer.state[p] = entry
    generators = None
    rng_file = path / "rng.safetensors"
    if rng_file.exists():
        states = load_file(str(rng_file))["states"]
        generators = []
        for s in states:
            g = torch.Generator()
            g.set_state(s.clone())
            generators.append(g)
    return model, state, optimizer, generators


def load_model(path: str | os.PathLike, *, device: str = "cpu"):
    """Just the trained ensemble and its state dict (for measuring)."""
    model, state, _, _ = load_checkpoint(path, device=device)
    return model, state
