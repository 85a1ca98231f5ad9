from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from intermodal.cli import main
from intermodal.model.architecture import architecture_preset
from intermodal.model.base import losses
from intermodal.model.fusions.concat import MultimodalVAE
from intermodal.training.config import RunConfig
from intermodal.training.resume import resume
from intermodal.training.runfolder import HISTORY_COLUMNS, load_checkpoint
from intermodal.training.trainer import Trainer, progress_interval


def tiny_config(**kw) -> RunConfig:
    base = dict(data="tiny", schedules=["constant-0"], seeds=[0], epochs=3, batch_size=100, lr=1e-3, dtype="float64")
    base.update(kw)
    return RunConfig(**base)


def test_loss_matches_an_independent_per_modality_computation(tiny_description):
    desc = tiny_description
    g = torch.Generator().manual_seed(0)
    shape = (2, 7, desc.n_columns)
    x, mu, lv = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
    zm, zl = (torch.randn(2, 7, 5, generator=g, dtype=torch.float64) for _ in range(2))
    recon, latent = losses(desc, 5, x, mu, lv, zm, zl)
    x, mu, lv, zm, zl = (a.numpy() for a in (x, mu, lv, zm, zl))
    expected = np.zeros((2, 7))
    for m in desc.modality_names:
        c = desc.columns_of(m)
        term = 0.5 * ((x[..., c] - mu[..., c]) ** 2 / np.exp(lv[..., c])).sum(-1) + 0.5 * lv[..., c].sum(-1)
        expected += (term + 0.5 * (5 / 2) * math.log(2 * math.pi)) / len(c)
    np.testing.assert_allclose(recon.numpy(), expected, rtol=1e-12)
    kl = 0.5 * (np.exp(zl) + zm**2 - 1 - zl).sum(-1)
    np.testing.assert_allclose(latent.numpy(), kl, rtol=1e-12)


def test_fused_training_losses_equal_the_plain_form_in_value_and_gradient(tiny_description):
    desc = tiny_description
    arch = architecture_preset("1", desc)
    model = MultimodalVAE(desc, arch, 3, dtype=torch.float64)
    model.reset_parameters([0, 1, 2])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # head biases that put log-variances from deep in the floor to well above it
        for name, p in model.named_parameters():
            if name.startswith("biases.") and name.endswith(("head", "latent")):
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 6)
    x = torch.rand(3, desc.n_columns, 50, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(3, desc.n_columns, 50, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(3, model.latent_size, 50, generator=g, dtype=torch.float64)
    beta = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    params = list(model.parameters())

    def loss_and_grads(recon, latent):
        loss = (recon.mean(1) + beta * latent.mean(1)).sum()
        return recon, latent, torch.autograd.grad(loss, params)

    fused = loss_and_grads(*model.training_losses(x, y, eps))
    out_mean, out_logvar, z_mean, z_logvar = model.forward_features_first(x, eps)
    rows_first = (t.transpose(1, 2) for t in (y, out_mean, out_logvar, z_mean, z_logvar))
    plain = loss_and_grads(*losses(desc, model.latent_size, *rows_first))
    assert out_logvar.min() < math.log(2e-4) and out_logvar.max() > 1  # both regimes are exercised
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(fused[1], plain[1], rtol=1e-12, atol=0)
    for name, a, b in zip([n for n, _ in model.named_parameters()], fused[2], plain[2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


def test_fused_loss_functions_pass_gradcheck():
    from intermodal.model.base import _GaussianNLL, _LatentSample

    g = torch.Generator().manual_seed(2)
    t = lambda *shape, scale=1.0: torch.randn(*shape, generator=g, dtype=torch.float64) * scale  # noqa: E731
    mean, raw, eps = t(2, 4, 6).requires_grad_(), t(2, 4, 6, scale=4.0).requires_grad_(), t(2, 4, 6)
    assert torch.autograd.gradcheck(lambda m, r: _LatentSample.apply(m, r, eps), (mean, raw))
    target, weight = t(2, 4, 6), torch.rand(4, 1, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, r: _GaussianNLL.apply(target, m, r, weight, 1.5), (mean, raw))


def test_preset_1_has_the_papers_layer_sizes(icub):
    model = MultimodalVAE(icub.description, architecture_preset("1", icub.description), 1)
    shapes = {name: (a, b) for name, a, b in model.layer_shapes}
    assert shapes["enc:joints:0"] == (8, 40) and shapes["enc:joints:1"] == (40, 20)
    assert shapes["enc:touch:0"] == (2, 10) and shapes["enc:motor:1"] == (40, 10)
    assert shapes["enc:shared:0"] == (60, 100) and shapes["enc:latent"] == (100, 56)
    assert shapes["dec:shared:0"] == (28, 100) and shapes["dec:shared:1"] == (100, 70)
    assert shapes["dec:vision:0"] == (20, 40) and shapes["dec:vision:1"] == (40, 8)
    assert shapes["dec:sound:1"] == (10, 2) and shapes["dec:sound:head"] == (2, 4)


def test_initialisation_follows_the_original_and_depends_on_the_seed_only(tiny):
    desc = tiny.description
    arch = architecture_preset("1", desc)
    group = MultimodalVAE(desc, arch, 3, dtype=torch.float64)
    group.reset_parameters([5, 6, 7])
    alone = MultimodalVAE(desc, arch, 1, dtype=torch.float64)
    alone.reset_parameters([6])
    for name, n_in, n_out in group.layer_shapes:
        w = group.weights[name]
        fan_out = n_out // 2 if name.endswith(("head", "latent")) else n_out
        assert w.abs().max() <= math.sqrt(1 / (n_in + fan_out))
        assert w.abs().max() > 0.5 * math.sqrt(1 / (n_in + fan_out))
        assert (group.biases[name] == 0).all()
        torch.testing.assert_close(w[1], alone.weights[name][0], rtol=0, atol=0)
        assert not torch.equal(w[0], w[1])


def test_a_model_in_a_group_of_20_trains_as_it_does_alone(tiny):
    schedules = ["constant-1", "constant-0", "dynamic-plateau-0", "linear:warmup=10000"]
    group = Trainer(tiny_config(schedules=schedules, seeds=[0, 1, 2, 3, 4], epochs=4), tiny).run()
    assert len(group.model_keys) == 20
    full = group.history
    for schedule, seed in [("constant-0", 3), ("linear:warmup=10000", 0)]:
        alone = Trainer(tiny_config(schedules=[schedule], seeds=[seed], epochs=4), tiny).run()
        a = alone.history
        g = full[(full.schedule == schedule) & (full.seed == seed)].reset_index(drop=True)
        np.testing.assert_allclose(g[HISTORY_COLUMNS[3:7]].to_numpy(), a[HISTORY_COLUMNS[3:7]].to_numpy(), rtol=1e-10)
    # and different seeds do train differently
    s = full[full.schedule == "constant-0"].groupby("seed")["reconstruction_loss"].last()
    assert s.nunique() == 5


def test_history_columns_and_loss_identity(tiny):
    h = (
        Trainer(
            tiny_config(schedules=["constant-1", "cyclical:cycles=2:ratio=0.5"], seeds=[0, 1], epochs=4),
            tiny,
            progress=False,
        )
        .run()
        .history
    )
    assert list(h.columns) == HISTORY_COLUMNS
    assert len(h) == 2 * 2 * 4
    np.testing.assert_allclose(h["loss"], h["reconstruction_loss"] + h["beta"] * h["latent_loss"], rtol=1e-12)
    assert (h["latent_loss"] >= 0).all()


class _Interrupt(Exception):
    pass


def test_resume_continues_exactly(tmp_path, tiny):
    cfg = tiny_config(schedules=["constant-0", "constant-1"], seeds=[0, 1], epochs=6, checkpoint_every=2)
    whole = Trainer(cfg, tiny, tmp_path / "whole").run().history

    def stop_at_5(model, epoch):
        if epoch == 5:
            raise _Interrupt
        return {}

    cut = Trainer(
        RunConfig(**{**cfg.to_dict(), "eval_every": 5}), tiny, tmp_path / "cut", evaluate=stop_at_5, progress=False
    )
    with pytest.raises(_Interrupt):
        cut.run()
    assert json.loads((tmp_path / "cut/checkpoint/state.json").read_text())["epochs_done"] == 4
    resumed = resume(tmp_path / "cut", tiny).run()
    assert resumed.epochs_done == 6
    np.testing.assert_allclose(
        resumed.history[HISTORY_COLUMNS[3:7]].to_numpy(), whole[HISTORY_COLUMNS[3:7]].to_numpy(), rtol=1e-12
    )
    on_disk = pd.read_parquet(tmp_path / "cut/history.parquet")
    assert len(on_disk) == len(whole)


def test_resume_before_the_first_checkpoint_starts_again(tmp_path, tiny):
    cfg = tiny_config(epochs=2)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(cfg.to_dict()))
    trainer = resume(out, tiny)
    assert trainer.epoch == 0
    trainer.run()
    assert len(pd.read_parquet(out / "history.parquet")) == 2


def test_checkpoint_holds_no_pickle_and_loads(tmp_path, tiny):
    Trainer(tiny_config(seeds=[0, 1]), tiny, tmp_path / "run").run()
    files = sorted(p.name for p in (tmp_path / "run/checkpoint").iterdir())
    assert files == ["model.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json"]
    model, state, _, _ = load_checkpoint(tmp_path / "run")
    assert state["model_keys"] == [("concat", "constant-0", 0), ("concat", "constant-0", 1)] == model.model_keys
    assert json.loads((tmp_path / "run/checkpoint/state.json").read_text())["model_keys"] == [
        {"fusion": "concat", "schedule": "constant-0", "seed": 0},
        {"fusion": "concat", "schedule": "constant-0", "seed": 1},
    ]
    assert model.n_models == 2 and next(model.parameters()).dtype == torch.float64


def test_cli_trains_on_own_data_and_rejects_bad_options(tmp_path, tiny, capsys):
    from intermodal.data.catalog import write_dataset

    path = write_dataset(tiny, tmp_path / "data")
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(path),
            "--schedule",
            "constant-1,constant-0",
            "--seeds",
            "2",
            "--epochs",
            "2",
            "--batch-size",
            "200",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    h = pd.read_parquet(out / "history.parquet")
    assert sorted(set(h.schedule)) == ["constant-0", "constant-1"] and sorted(set(h.seed)) == [0, 1]
    config = json.loads((out / "config.json").read_text())
    assert config["schedules"] == ["constant-1", "constant-0"] and config["batch_size"] == 200

    for argv, message in [
        (["--schedule", "constant-7"], "unknown schedule 'constant-7'"),
        (["--dtype", "float16"], "dtype: input should be 'float32' or 'float64' (got 'float16')"),
        (["--epochs", "many"], "epochs is 'many'; expected int"),
        (["--batch-size", "5000"], "--batch-size 5000 is larger than the 1200 training rows"),
        (["--architecture", "9"], "--architecture '9': expected one of 1, 2, 3, 4, 5, 6, 7"),
    ]:
        code = main(["train", "--data", str(path), "--out", str(tmp_path / "other"), "--quiet", *argv])
        assert code == 2
        assert message in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "--data", str(path), "--out", str(tmp_path / "gpu"), "--device", "cuda", "--quiet"]) == 2
        assert "no CUDA device is available" in capsys.readouterr().err
    assert main(["train", "--data", str(path), "--out", str(out), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["train", "--resume", str(out), "--epochs", "9", "--quiet"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = 3\nlearning_rate = 0.1\n")
    assert main(["train", "--data", str(path), "--config", str(bad), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "learning_rate: unknown key" in capsys.readouterr().err


def test_config_file_is_overridden_by_flags(tmp_path):
    from intermodal.cli import _resolve_config, build_parser

    cfg = tmp_path / "c.toml"
    cfg.write_text('epochs = 30\nlr = 0.001\nschedules = ["constant-1"]\nseeds = 3\n')
    args = build_parser().parse_args(["train", "--config", str(cfg), "--epochs", "40"])
    config = _resolve_config(args, RunConfig())
    assert (config.epochs, config.lr, config.schedules, config.seeds) == (40, 0.001, ["constant-1"], [0, 1, 2])


@pytest.mark.parametrize("preset", ["1", "2", "3", "4", "5", "6", "7"])
def test_every_architecture_preset_trains_on_any_data_set(tiny, preset):
    h = Trainer(tiny_config(architecture=preset, epochs=2), tiny).run().history
    assert np.isfinite(h[HISTORY_COLUMNS[3:7]].to_numpy()).all()
    assert h["reconstruction_loss"].iloc[-1] < h["reconstruction_loss"].iloc[0]


def test_architecture_from_a_json_file(tmp_path, tiny):
    arch = {
        "encoders": {"arm": [6], "bump": [], "eye": [9, 4]},
        "shared_encoder": [16],
        "shared_decoder": [16, 12],
        "slices": {"arm": 4, "bump": 2, "eye": 6},
        "decoders": {"arm": [4], "bump": [], "eye": [8]},
        "latent": 5,
    }
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    trainer = Trainer(tiny_config(architecture=str(path)), tiny)
    assert trainer.model.latent_size == 5
    arch["shared_decoder"] = [16, 11]
    path.write_text(json.dumps(arch))
    with pytest.raises(ValueError, match="must equal the sum of the slices"):
        Trainer(tiny_config(architecture=str(path)), tiny)


def test_progress_updates_once_a_minute_into_a_log_file(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert progress_interval(Terminal()) == 0.5
    with open(tmp_path / "run.log", "w") as log:
        assert progress_interval(log) == 60.0
