"""The GPU path, checked on a machine without one (docs/performance.md, "On a GPU"): an
epoch of every fusion reads no value back from its device (run on the ``meta`` device,
where any such read fails), the draws made ahead leave every number as it was (and the
generators a checkpoint saves), ``moe``'s two ways of summing its pairs agree, a run moves
to another device on resume, and the device and arithmetic of each stretch of training are
checked and recorded. ``benchmarks/gpu_check.py`` runs the same on a real GPU."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import torch

import intermodal as im
from intermodal.cli import main
from intermodal.data.catalog import dataset_of
from intermodal.errors import ConfigError
from intermodal.model.architecture import architecture_preset
from intermodal.model.fusions import moe as fusion_module
from intermodal.model.group import FUSIONS, build_model
from intermodal.training import runfolder
from intermodal.training import shards as shards_module
from intermodal.training.config import RunConfig
from intermodal.training.device import TF32_OVERRIDE, check_device, environment, exact_float32
from intermodal.training.resume import resume
from intermodal.training.shards import _Shard
from intermodal.training.trainer import Trainer


class _StepOnly(torch.optim.SGD):
    """Stands in for torch's fused Adam, which has no kernel for the meta device. On a GPU
    the fused Adam reads nothing back (it keeps its step count on the device: torch's
    design, and gpu_check.py counts it); the rest of the epoch is what is checked here."""

    def __init__(self, params, lr, fused=None):
        super().__init__(params, lr=lr, foreach=False)


class _Stop(Exception):
    """Stands in for an interruption: raised from the progress callback after an epoch."""


def _stop_after(epoch: int):
    """A progress callback that interrupts the run once ``epoch`` epochs are done."""

    def progress(done, total, means):
        if done == epoch:
            raise _Stop

    return progress


def test_a_value_read_back_from_the_meta_device_fails():
    """What the next test relies on: on ``meta`` a tensor has no values, so any step that
    waits for one (``.item()``, ``int()``, a shape that depends on values) raises."""
    t = torch.ones(3, device="meta")
    with pytest.raises(RuntimeError, match="meta"):
        int(t.max())
    with pytest.raises(RuntimeError):
        torch.nonzero(t)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_an_epoch_reads_nothing_back_from_its_device(tiny_description, fusion, monkeypatch):
    """A whole epoch of every fusion (draws, batches, forward, backward, optimiser) on the
    meta device: no step waits for a value from the device, so on a GPU an epoch is queued
    without a synchronisation (its one wait is the loss means after it)."""
    monkeypatch.setattr(shards_module.torch.optim, "Adam", _StepOnly)
    model = build_model(tiny_description, architecture_preset("1", tiny_description), fusion, 2, device="meta")
    generators = [torch.Generator().manual_seed(k) for k in range(2)]
    shard = _Shard([0, 1], model, torch.ones(2, 4, device="meta"), generators, 1e-3)
    rows = torch.zeros(tiny_description.n_columns, 40, device="meta")
    means = shard.train_epoch(0, rows, rows, 2, 8)
    assert means.shape == (2, 3) and means.device.type == "meta"
    shard.rewind()


def test_moe_sums_every_pair_or_the_present_ones_alike(tiny_description, monkeypatch):
    """``moe``'s training off the CPU decodes every (component, row) pair with the absent
    ones weighted 0 (a fixed shape, no atomic sums); on the CPU only the present pairs. The
    losses and their gradients agree to rounding."""
    model = build_model(tiny_description, architecture_preset("1", tiny_description), "moe", 2, dtype=torch.float64)
    model.reset_parameters([3, 4])
    rng = np.random.default_rng(0)
    x = torch.as_tensor(np.tanh(rng.normal(size=(2, tiny_description.n_columns, 24))))
    # mute some experts in some rows, and every expert in one row (the prior's slot)
    for expert, rows in zip(model.experts, ([0, 5, 7], [1, 5], [2, 9, 11], [5])):
        x[:, torch.as_tensor(expert.columns)[:, None], torch.as_tensor(rows)] = tiny_description.muted_value
    for expert in model.experts:
        x[:, torch.as_tensor(expert.columns), 13] = tiny_description.muted_value
    target = torch.as_tensor(np.tanh(rng.normal(size=(2, tiny_description.n_columns, 24))))
    eps = model.training_noise(torch.Generator().manual_seed(1), 2 * 24, torch.float64)
    eps = eps.view(2, 24, -1).permute(0, 2, 1).contiguous()

    def losses_and_grads(every_pair: bool):
        monkeypatch.setattr(fusion_module, "decodes_every_pair", lambda device: every_pair)
        model.zero_grad()
        recon, latent = model.training_losses(x, target, eps)
        (recon.sum() + 0.7 * latent.sum()).backward()
        return recon.detach(), latent.detach(), [p.grad.clone() for p in model.parameters()]

    present = losses_and_grads(False)
    every = losses_and_grads(True)
    torch.testing.assert_close(every[0], present[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(every[1], present[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(every[2], present[2]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert all(torch.isfinite(t).all() for t in (*every[:2], *every[2]))


def _config(**changes) -> RunConfig:
    base = {
        "fusions": ["concat", "moe"],
        "schedules": ["constant-1", "constant-0"],
        "seeds": [0, 1],
        "epochs": 6,
        "batch_size": 100,
        "checkpoint_every": 3,
        "dtype": "float64",
    }
    return RunConfig.from_dict({**base, **changes})


def test_draws_made_ahead_change_no_number_and_no_checkpoint(tiny, tmp_path, monkeypatch):
    """Drawing each epoch's shuffles and noise while the last one trains (a GPU's way) gives
    the histories of drawing them when needed, bit for bit, and a run stopped at its
    checkpoint and resumed with draws ahead goes on exactly as a run never stopped."""
    config = _config()
    plain = Trainer(config, tiny, tmp_path / "plain").run()
    monkeypatch.setattr(shards_module, "DRAW_AHEAD_ON_CPU", True)
    ahead = Trainer(config, tiny, tmp_path / "ahead").run()
    pd.testing.assert_frame_equal(ahead.history, plain.history, check_exact=True)
    # the generators the checkpoints saved are those of a run that never drew ahead
    for name in ("plain", "ahead"):
        assert runfolder.checkpoint_state(tmp_path / name)["epochs_done"] == 6
    states = [runfolder.load_checkpoint(tmp_path / n).rng_states for n in ("plain", "ahead")]
    assert all(torch.equal(a, b) for a, b in zip(*states))

    with pytest.raises(_Stop):
        Trainer(config, tiny, tmp_path / "cut", progress=_stop_after(4)).run()
    assert runfolder.checkpoint_state(tmp_path / "cut")["epochs_done"] == 3
    resumed = resume(tmp_path / "cut", tiny).run()
    pd.testing.assert_frame_equal(resumed.history, plain.history, check_exact=True)


def test_a_run_resumes_on_another_device_and_records_each_stretch(tmp_path, capsys):
    """``--resume RUN --device D`` is taken (other options still refused); the run goes on
    as it would have, its config names the device, and ``environment.json`` records each
    stretch of training; a device this machine lacks is refused with the option named."""
    sim = '{"n_train": 300, "n_test": 100}'
    argv = ["--sim", sim, "--epochs", "4", "--batch-size", "100", "--checkpoint-every", "2", "--quiet"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["train", *argv, "--out", str(whole)]) == 0
    config = runfolder.read_config(whole)

    with pytest.raises(_Stop):
        Trainer(config, dataset_of(config), cut, progress=_stop_after(3)).run()
    assert runfolder.checkpoint_state(cut)["epochs_done"] == 2
    assert main(["train", "--resume", str(cut), "--device", "cpu", "--quiet"]) == 0
    pd.testing.assert_frame_equal(runfolder.read_history(cut), runfolder.read_history(whole))
    records = runfolder.read_environment(cut)
    assert [r["device"] for r in records] == ["cpu", "cpu"] and records[0]["from_epoch"] == 0
    assert records[1]["from_epoch"] == 2 and records[1]["tf32"] is False
    assert records[0]["float32_matmul_precision"] == "highest"
    capsys.readouterr()
    if not torch.cuda.is_available():
        assert main(["train", "--resume", str(cut), "--device", "cuda", "--quiet"]) == 2
        assert "--device cuda: no CUDA device" in capsys.readouterr().err
    assert main(["train", "--resume", str(cut), "--device", "gpu", "--quiet"]) == 2
    assert "device" in capsys.readouterr().err
    assert main(["train", "--resume", str(cut), "--device", "cpu", "--epochs", "9", "--quiet"]) == 2
    assert "drop --epochs" in capsys.readouterr().err


def test_exact_float32_restores_torch_settings():
    """A run turns TF32 off and leaves torch's settings as it found them."""
    before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("high")
    try:
        with exact_float32():
            assert torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cudnn.allow_tf32 == before[1]
    finally:
        torch.set_float32_matmul_precision(before[0])


def test_a_cuda_device_is_checked_and_its_costs_said(monkeypatch, caplog):
    """``cuda:N`` past the GPUs present is refused naming the option and how many there are;
    float64 on a GPU, and TF32 forced on by the environment, are said on the logger."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"--device cuda:2: this machine has 2 CUDA devices \(cuda:0 to cuda:1\)"):
        check_device("cuda:2", torch.float32)
    monkeypatch.delenv(TF32_OVERRIDE, raising=False)
    with caplog.at_level(logging.WARNING, logger="intermodal"):
        assert check_device("cuda:1", torch.float32) == torch.device("cuda:1")
    assert caplog.records == []
    with caplog.at_level(logging.WARNING, logger="intermodal"):
        check_device("cuda", torch.float64)
    assert "float64" in caplog.text and "slower" in caplog.text
    caplog.clear()
    monkeypatch.setenv(TF32_OVERRIDE, "1")
    with caplog.at_level(logging.WARNING, logger="intermodal"):
        check_device("cuda", torch.float32)
    assert TF32_OVERRIDE in caplog.text and "TF32" in caplog.text
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA device"):
        check_device("cuda", torch.float32)


def test_a_run_records_the_precision_it_used_and_restores_the_callers(tmp_path):
    """A caller who asked torch for TF32 ("high") gets a run in full float32, recorded as
    such, and its own setting back afterwards."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        config = RunConfig.from_dict({"sim": {"n_train": 200, "n_test": 50}, "epochs": 1, "batch_size": 100})
        im.train(config, out=tmp_path / "run")
        assert runfolder.read_environment(tmp_path / "run")[0]["float32_matmul_precision"] == "highest"
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_environment_record_names_the_arithmetic():
    record = environment(torch.device("cpu"), torch.float32, 5)
    assert record["from_epoch"] == 5 and record["device"] == "cpu" and record["dtype"] == "float32"
    assert record["torch"] == torch.__version__ and record["tf32"] is False
    json.dumps(record)  # values only


def test_library_resume_takes_a_device(tmp_path):
    """``im.resume(run, device=...)``: the library's way of moving a run; a bad device is a
    ConfigError naming it."""
    config = RunConfig.from_dict(
        {"sim": {"n_train": 300, "n_test": 100}, "epochs": 2, "batch_size": 100, "checkpoint_every": 1}
    )
    im.train(config, out=tmp_path / "run")
    with pytest.raises(ConfigError, match="tpu"):
        im.resume(tmp_path / "run", device="tpu")
    result = im.resume(tmp_path / "run", device="cpu")
    assert result.epochs_done == 2
