"""The catalogue of bad inputs given to the library (``import intermodal as im``), as
tests/test_bad_inputs.py is the command line's: every one raises an
:class:`intermodal.IntermodalError` (so a notebook that catches it catches them all) whose
one-line message names the argument, key, row or column at fault and what was expected;
and the forms the library accepts (a DataFrame of the description's columns) give the
numbers the array gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import intermodal as im
from intermodal.data.description import DatasetDescription, Modality
from intermodal.data.sim import SimConfig

SIM = {"n_train": 100, "n_test": 60}


@pytest.fixture(scope="module")
def trained():
    """A small trained ensemble and complete test rows of its data set."""
    config = im.RunConfig(sim=SIM, epochs=1, batch_size=50, seeds=2)
    result = im.train(config)
    dataset = im.load_dataset("sim", sim=SIM)
    return result.model, dataset.test[:8], dataset.description


def _assign(target, name, value):
    setattr(target, name, value)


def _text_cell(rows):
    cells = rows.astype(object)
    cells[1, 3] = "x"
    return cells.tolist()


# Each case: (call(model, rows, description), the error class, text the message must hold).
ROW_FORMS = {
    "a text cell": (_text_cell, "row 1, column 3 (joints_t_3) holds 'x'"),
    "ragged rows": (lambda r: [list(r[0]), list(r[1][:-1])], "rows have different lengths (row 0 has 28 values"),
    "a file name": (lambda r: "rows.csv", "rows: expected a table of numbers"),
    "nothing": (lambda r: None, "rows: expected a table of numbers"),
    "a number": (lambda r: 3.0, "rows: expected a table of numbers"),
    "a table with other column names": (lambda r: pd.DataFrame(r), "unknown column(s) [0, 1, 2, 3, 4]"),
    "one column too few": (lambda r: r[:, :-1], "got 27 columns"),
    "a NaN": (lambda r: np.where(np.eye(*r.shape, dtype=bool), np.nan, r), "is nan"),
}
ENTRY_POINTS = {
    "integration_measures": lambda m, rows: im.integration_measures(m, rows),
    "modality_shares": lambda m, rows: im.modality_shares(m, rows),
    "lattice_values": lambda m, rows: im.lattice_values(m, rows),
    "check_model": lambda m, rows: im.check_model(m, rows),
    "latent_diagnostics": lambda m, rows: im.latent_diagnostics(m, rows),
    "predict": lambda m, rows: im.predict(m, rows, given="*"),
    "rollout": lambda m, rows: im.rollout(m, rows, 2, "*"),
}

CASES = {
    # --- the run config: constructed, or assigned afterwards
    "config epochs negative": (lambda m, r, d: im.RunConfig(epochs=-1), im.IntermodalError, "RunConfig: epochs"),
    "config lr nan": (lambda m, r, d: im.RunConfig(lr=float("nan")), None, "lr: input should be a finite number"),
    "config batch size as text": (lambda m, r, d: im.RunConfig(batch_size="10"), None, "batch_size: input should be"),
    "config unknown key": (lambda m, r, d: im.RunConfig(colour="red"), None, "colour: unknown key; known keys are"),
    "config epochs assigned zero": (lambda m, r, d: _assign(im.RunConfig(), "epochs", 0), None, "RunConfig: epochs"),
    "config lr assigned infinite": (lambda m, r, d: _assign(im.RunConfig(), "lr", float("inf")), None, "lr"),
    "config unknown key assigned": (lambda m, r, d: _assign(im.RunConfig(), "colour", 1), None, "colour: unknown key"),
    "sim options assigned (immutable)": (lambda m, r, d: _assign(SimConfig(), "n_train", 5), None, "n_train"),
    # --- an argument of another type
    "train a mapping for the config": (lambda m, r, d: im.train({"epochs": 1}), None, "config: expected a RunConfig"),
    "train a name for the data set": (
        lambda m, r, d: im.train(im.RunConfig(sim=SIM), "sim"),
        None,
        "dataset: expected None or a Dataset",
    ),
    "train a number for out": (lambda m, r, d: im.train(im.RunConfig(sim=SIM), out=5), None, "out 5: expected a path"),
    "run_study a mapping": (lambda m, r, d: im.run_study({"epochs": 1}, "x"), None, "config: expected a RunConfig"),
    "resume a number": (lambda m, r, d: im.resume(5), None, "run 5: expected a path"),
    "load_dataset a number": (lambda m, r, d: im.load_dataset(5), None, "data 5: expected 'sim'"),
    "load_description a number": (lambda m, r, d: im.load_description(5), None, "description 5: expected the path"),
    "simulate a mapping": (lambda m, r, d: im.simulate({"n_train": 5}), None, "config: expected None or a SimConfig"),
    "write_report a number": (lambda m, r, d: im.write_report(5), None, "run_dir 5: expected a path"),
    "load_run a number": (lambda m, r, d: im.load_run(5), None, "folder 5: expected a path"),
    # --- sizes, counts, seeds and epochs beyond their documented limits
    "config epochs beyond the limit": (
        lambda m, r, d: im.RunConfig(epochs=10**11),
        None,
        "epochs: input should be less than or equal to 1000000",
    ),
    "config a trillion seeds": (lambda m, r, d: im.RunConfig(seeds="0-999999999999"), None, "MAX_SEEDS = 10000"),
    "config a seed beyond 64 bits": (lambda m, r, d: im.RunConfig(seeds=[2**64]), None, "seeds.0"),
    "simulator ten billion rows": (lambda m, r, d: im.simulate(n_train=10**10), None, "n_train"),
    "description of a billion columns": (
        lambda m, r, d: DatasetDescription("big", (Modality("arm", 10**9),), {"complete": ()}),
        im.IntermodalError,
        "MAX_COLUMNS = 100000",
    ),
    "measures a trillion latent samples": (
        lambda m, r, d: im.integration_measures(m, r, z_samples=10**12),
        None,
        "z_samples 1000000000000: at most 10000",
    ),
    "predict a seed beyond 64 bits": (lambda m, r, d: im.predict(m, r, given="vision", seed=2**64), None, "seed"),
    "rollout a trillion steps": (lambda m, r, d: im.rollout(m, r, 10**12, "vision"), None, "steps"),
    "shares a seed beyond 64 bits": (lambda m, r, d: im.modality_shares(m, r, parts="steps", seed=2**64), None, "seed"),
    # --- a number where selectors are expected
    "measures muted selectors a number": (
        lambda m, r, d: im.integration_measures(m, r, extra_pairs={"p": (3, ["vision"])}),
        None,
        "extra pair 'p', muted selectors",
    ),
    "measures compared selectors a number": (
        lambda m, r, d: im.integration_measures(m, r, extra_pairs={"p": (["vision"], 4)}),
        None,
        "extra pair 'p', compared selectors",
    ),
    "predict given a number": (lambda m, r, d: im.predict(m, r, given=3), None, "given: selectors must be"),
    "shares targets a number": (lambda m, r, d: im.modality_shares(m, r, targets=3), None, "targets: expected"),
    "shares parts a number": (lambda m, r, d: im.modality_shares(m, r, parts=3), None, "parts"),
    # --- rows in every form, given to every entry point that takes rows
    **{
        f"{entry} with {form}": (
            lambda m, r, d, entry=entry, form=form: ENTRY_POINTS[entry](m, ROW_FORMS[form][0](r)),
            im.IntermodalError,
            ROW_FORMS[form][1],
        )
        for entry in ENTRY_POINTS
        for form in ROW_FORMS
        # predict reads only the given columns, and every column is given here: NaN is refused
    },
}


def test_the_library_catalogue_is_large():
    assert len(CASES) >= 60


@pytest.mark.parametrize("name", list(CASES))
def test_bad_library_input_is_an_intermodal_error(name, trained):
    call, kind, message = CASES[name]
    model, rows, description = trained
    with pytest.raises(kind or im.IntermodalError) as caught:
        call(model, rows, description)
    error = caught.value
    assert isinstance(error, im.IntermodalError) and isinstance(error, ValueError)
    assert message in str(error), f"expected {message!r} in {str(error)!r}"
    assert "\n" not in str(error), "one line per problem, and one problem here"
    assert caught.traceback[-1].frame.f_globals.get("__name__", "").startswith("intermodal"), "raised by intermodal"


def test_a_table_of_the_descriptions_columns_is_taken_everywhere_as_the_array(trained):
    """A DataFrame whose columns are the description's names, in any order, gives exactly
    the numbers of the array it holds, in the measures and in predict."""
    model, rows, description = trained
    names = description.column_names()
    table = pd.DataFrame(rows, columns=names)[names[::-1]]
    pd.testing.assert_frame_equal(im.integration_measures(model, table), im.integration_measures(model, rows))
    pd.testing.assert_frame_equal(im.lattice_values(model, table), im.lattice_values(model, rows))
    np.testing.assert_array_equal(
        im.predict(model, table, given="vision").mean, im.predict(model, rows, given="vision").mean
    )
    as_lists = rows.tolist()
    pd.testing.assert_frame_equal(im.integration_measures(model, as_lists), im.integration_measures(model, rows))


def test_a_bug_is_not_bad_input(trained, monkeypatch):
    """An error inside the computation that no input explains keeps its own type."""
    model, rows, _ = trained
    from intermodal.evaluation import divergences

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(divergences, "divergences", broken)
    monkeypatch.setattr("intermodal.evaluation.measures.divergences", broken)
    with pytest.raises(ZeroDivisionError):
        im.integration_measures(model, rows)


def test_a_data_set_write_that_fails_leaves_nothing_that_blocks_a_rerun(tmp_path, monkeypatch):
    """write_dataset refuses a folder that holds files (none of them replaced), and one
    that fails part-way (a full disk, SIGTERM) removes what it wrote, so a rerun is not
    refused."""
    from intermodal.data import catalog

    dataset = im.simulate(n_train=20, n_test=10)
    own = tmp_path / "own"
    own.mkdir()
    (own / "train.csv").write_text("mine\n")
    with pytest.raises(im.IntermodalError, match="it holds train.csv"):
        catalog.write_dataset(dataset, own)
    assert (own / "train.csv").read_text() == "mine\n" and len(list(own.iterdir())) == 1

    def full_disk(path, value):
        raise OSError(28, "No space left on device", str(path))

    out = tmp_path / "new"
    monkeypatch.setattr(catalog, "write_json", full_disk)
    with pytest.raises(OSError):
        catalog.write_dataset(dataset, out)
    assert not out.exists()
    monkeypatch.undo()
    assert catalog.write_dataset(dataset, out) == out / "description.json"


def test_compare_replaces_only_what_a_comparison_wrote(tmp_path):
    """The page and its companions may be written over a page a comparison wrote (a
    rerun); a companion without such a page, or another program's page, is refused before
    anything is read, naming it, and left as it was."""
    from intermodal.outputs.compare import PAGE_TITLE, _check_out

    page = tmp_path / "cmp.html"
    (tmp_path / "cmp.csv").write_text("mine\n")
    with pytest.raises(im.IntermodalError, match="cmp.csv exists and would be replaced"):
        im.compare([tmp_path / "a", tmp_path / "b"], page)
    page.write_text(f"<html><head><title>{PAGE_TITLE}</title></head></html>")
    _check_out(page)  # a rerun over its own page and table
    page.write_text("<html>my notes</html>")
    with pytest.raises(im.IntermodalError, match="not a page intermodal compare wrote"):
        _check_out(page)
    assert (tmp_path / "cmp.csv").read_text() == "mine\n"
