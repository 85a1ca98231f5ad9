"""The library as a notebook uses it (``import intermodal as im``): the README's block and
the tutorial run as written, a call leaves the process as it found it and prints nothing,
and each model position is labelled with its (schedule, seed)."""

from __future__ import annotations

import logging
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import intermodal as im

ROOT = Path(__file__).resolve().parents[1]
SIM = {"n_train": 300, "n_test": 150}


def small_config(**changes) -> im.RunConfig:
    values = dict(sim=SIM, schedules=["constant-0", "constant-1"], seeds=2, epochs=6, lr=1e-3, batch_size=200)
    return im.RunConfig(**{**values, **changes})


def test_the_readme_library_block_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Library") :]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert list(namespace["result"].models.columns) == ["position", "fusion", "schedule", "seed"]
    assert {"fusion", "schedule", "seed"} <= set(namespace["measures"].columns)
    assert namespace["vision_only"].mean.shape == (4, 300, 28)
    assert "fig7_window_means" in namespace["figures"]


def test_the_own_model_page_wraps_a_module_that_the_measures_accept():
    page = (ROOT / "docs" / "own_model.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "class MyModel" in b)
    wrapper = block.split("class MyModel")[1].split("model = MyModel")[0]
    assert len([line for line in wrapper.splitlines() if line.strip()]) <= 14
    namespace: dict = {}
    exec(compile(block, "docs/own_model.md", "exec"), namespace)
    table, model = namespace["table"], namespace["model"]
    assert isinstance(model, im.OutputGaussianModel)
    assert set(table["quantity"]) == {"prediction_error", "single_modality_error", "loss_of_precision", "baseline"}
    assert (table["value"] >= 0).all() and len(table) == 2 + 4 * 5
    # predict and rollout work on the page's wrapper (they once passed it an argument it lacks)
    assert namespace["past"].mean.shape == (1, 10, 28) and namespace["steps"].mean.shape == (1, 5, 10, 28)
    with pytest.raises(im.IntermodalError, match="cannot draw a latent sample"):
        im.predict(model, namespace["dataset"].test[:10], given="vision", seed=0)


def test_the_own_model_pages_subsets_example_runs():
    page = (ROOT / "docs" / "own_model.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "im.adapters.subsets(" in b)
    namespace: dict = {}
    exec(compile(block, "docs/own_model.md", "exec"), namespace)
    table = namespace["subset_table"]
    assert (table.value >= 0).all() and set(table.likelihood) == {"", "gaussian"}
    assert im.check_model(namespace["subset_model"], namespace["dataset"].test[:32]).ok


def test_a_library_call_leaves_the_process_as_it_found_it(tmp_path, capsys, caplog):
    torch.set_num_threads(2)
    handler = signal.getsignal(signal.SIGTERM)
    root_handlers = list(logging.getLogger().handlers)
    try:
        with caplog.at_level(logging.WARNING):
            result = im.train(small_config(threads=1, eval_every=3), evaluate=True, out=tmp_path / "run")
            im.write_report(tmp_path / "run")
        assert torch.get_num_threads() == 2
        assert signal.getsignal(signal.SIGTERM) is handler
        assert logging.getLogger().handlers == root_handlers
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err == ""
        assert result.epochs_done == 6 and (tmp_path / "run" / "report.html").is_file()
    finally:
        torch.set_num_threads(1)


def test_positions_are_labelled_with_schedule_and_seed():
    dataset = im.load_dataset("sim", sim=SIM)
    result = im.train(small_config(schedules=["constant-1", "constant-0"], seeds=[4, 2]), dataset)
    assert result.models.to_dict("list") == {
        "position": [0, 1, 2, 3],
        "fusion": ["concat"] * 4,
        "schedule": ["constant-1", "constant-1", "constant-0", "constant-0"],
        "seed": [4, 2, 4, 2],
    }
    table = im.integration_measures(result.model, dataset.test[:40])
    baseline = table[table.quantity == "baseline"]
    assert baseline[["model", "schedule", "seed"]].values.tolist() == [
        [0, "constant-1", 4],
        [1, "constant-1", 2],
        [2, "constant-0", 4],
        [3, "constant-0", 2],
    ]
    # a model selected from the ensemble keeps its label
    alone = im.integration_measures(result.model.select([2]), dataset.test[:40])
    assert set(zip(alone.schedule, alone.seed)) == {("constant-0", 4)}
    np.testing.assert_allclose(alone.value, table[table.model == 2].value, rtol=1e-5, atol=1e-7)


def test_a_trained_run_and_one_read_back_are_one_type_the_measures_take_alike(tmp_path):
    """What im.train returns and what im.load_run reads are an im.Run (TrainingResult is the
    same class): the same models, tables, epochs and measures, the in-memory one's model and
    data set in memory, the read one's from its checkpoint and config."""
    assert im.TrainingResult is im.Run
    result = im.train(small_config(eval_every=3), evaluate=True, out=tmp_path / "run")
    run = im.load_run(tmp_path / "run")
    assert isinstance(result, im.Run) and isinstance(run, im.Run)
    assert result.out == run.path == tmp_path / "run"
    assert result.models.equals(run.models) and result.epochs_done == run.epochs_done == 6
    assert result.diverged == run.diverged == {}
    np.testing.assert_array_equal(result.history["loss"], run.history["loss"])
    rows = run.dataset.test[:40]
    np.testing.assert_array_equal(rows, result.dataset.test[:40])
    generator = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    from_memory = im.integration_measures(result, rows, generator=generator())
    from_disk = im.integration_measures(run, rows, generator=generator())
    assert from_memory.drop(columns="value").equals(from_disk.drop(columns="value"))
    np.testing.assert_allclose(from_memory.value, from_disk.value, rtol=1e-6, atol=1e-9)
    assert im.predict(run, rows, given="vision").mean.shape == im.predict(result, rows, given="vision").mean.shape


def test_the_public_names_are_documented():
    for name in im.__all__[1:]:
        assert getattr(im, name).__doc__, f"im.{name} has no docstring"


@pytest.mark.slow
def test_the_tutorial_notebook_runs(tmp_path):
    """examples/tutorial.ipynb in a real kernel, from a fresh folder (about a minute)."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook test needs nbclient: pip install -e '.[test]'")
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "examples" / "tutorial.ipynb", as_version=4)
    imports = {line for cell in notebook.cells if cell.cell_type == "code" for line in cell.source.splitlines()}
    assert not [line for line in imports if "from intermodal" in line or "import intermodal." in line]
    NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("data", {}).get("image/png") for o in outputs), "the figure was not drawn"
    assert (tmp_path / "runs" / "tutorial-cli" / "checkpoint").is_dir()


def test_bad_models_and_adapters_are_refused_naming_what_is_wrong():
    dataset = im.load_dataset("sim")
    rows = dataset.test[:8]
    with pytest.raises(im.IntermodalError, match="lacks description, n_models"):
        im.integration_measures(object(), rows)
    with pytest.raises(im.IntermodalError, match="latent_size: expected a whole number >= 1"):
        im.adapters.subsets(lambda s, i: None, lambda z: None, dataset.description, latent_size=0)
    with pytest.raises(im.IntermodalError, match="likelihoods: unknown modality 'eyes'"):
        im.adapters.subsets(
            lambda s, i: None, lambda z: None, dataset.description, latent_size=2, likelihoods={"eyes": "bernoulli"}
        )
    with pytest.raises(im.IntermodalError, match="divergence 'exact'"):
        im.integration_measures(
            im.adapters.subsets(lambda s, i: None, lambda z: None, dataset.description, latent_size=2),
            rows,
            divergence="exact",
        )

    def bad_encode(subset, inputs):  # a posterior of the wrong shape
        return im.GaussianPosterior(torch.zeros(1, 3), torch.ones(1, 3))

    model = im.adapters.subsets(bad_encode, lambda z: None, dataset.description, latent_size=2)
    with pytest.raises(im.IntermodalError, match="GaussianPosterior: mean and var must both be"):
        im.integration_measures(model, rows)

    def wrong_outputs(z):  # a decoder that forgets a modality
        return {"joints": z.new_zeros(z.shape[0], z.shape[1], 8)}

    model = im.adapters.subsets(
        lambda s, i: (torch.zeros(len(next(iter(i.values()))), 2), torch.ones(len(next(iter(i.values()))), 2)),
        wrong_outputs,
        dataset.description,
        latent_size=2,
    )
    with pytest.raises(im.IntermodalError, match="no output for the modality 'vision'"):
        im.integration_measures(model, rows)
