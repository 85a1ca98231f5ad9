"""The simulator's ground truth on the lattice measures (evaluation/lattice_truth.py): on
synthetic results tables, each check says Yes where the shares and interactions are as the
data make them, No where they are not, and is absent when the run computed no shares."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from intermodal.data import sim, sim_truth
from intermodal.evaluation import lattice_truth
from intermodal.evaluation.findings import check_findings

DESCRIPTION = sim.description(sim.SimConfig(distractors=("noise", "copy-vision", "xor")))
NAMES = DESCRIPTION.modality_names
LATTICE_IDS = ["noise-no-share", "copy-shares-split", "bits-synergy"]
SEEDS = range(5)


def _true_game() -> dict[tuple[str, str, str], float]:
    """(quantity, modality, scope) → value, as a model that learned the simulator gives them:
    the noise has no share, vision and its copy split vision's share and are redundant, the
    product's share is 2/3 its own and 1/6 each bit's, the bits interact by half of it and
    each bit with the product by minus half (given the other bit, they tell the same)."""
    shares_all = {"joints": 2.0, "vision": 1.5, "copy-vision": 1.5, "touch": 0.3, "sound": 0.2, "motor": 2.0}
    shares_all |= {"noise": 0.001, "bit-a": 0.5, "bit-b": 0.5, "bit-ab": 0.5}
    game = {("share", m, "all"): v for m, v in shares_all.items()}
    for a, b in itertools.combinations(NAMES, 2):
        game["interaction", f"{a}&{b}", "all"] = 0.01 if "noise" not in (a, b) else 0.0005
    game["interaction", "vision&copy-vision", "all"] = -2.5
    game["interaction", "bit-a&bit-b", "all"] = 0.5
    product = {m: 0.0 for m in NAMES} | {"bit-a": 0.5, "bit-b": 0.5, "bit-ab": 2.0}
    game |= {("share", m, "bit-ab"): v for m, v in product.items()}
    for a, b in itertools.combinations(NAMES, 2):
        game["interaction", f"{a}&{b}", "bit-ab"] = 0.0
    game["interaction", "bit-a&bit-b", "bit-ab"] = 1.5
    game["interaction", "bit-a&bit-ab", "bit-ab"] = game["interaction", "bit-b&bit-ab", "bit-ab"] = -1.5
    # Who informs vision: vision and its copy, redundantly; and the noise informs itself
    # (a model that reconstructs it from its own input), which tells nothing of the arm.
    game |= {("share", m, "vision"): {"vision": 1.5, "copy-vision": 1.5, "noise": 0.001}.get(m, 0.0) for m in NAMES}
    for a, b in itertools.combinations(NAMES, 2):
        game["interaction", f"{a}&{b}", "vision"] = 0.0005 if "noise" in (a, b) else 0.0
    game["interaction", "vision&copy-vision", "vision"] = -1.5
    game |= {("share", m, "noise"): 2.0 if m == "noise" else 0.0 for m in NAMES}
    return game


def _results(game: dict | None, *, scopes=("all", "bit-ab", "vision", "noise")) -> pd.DataFrame:
    """A results table of 5 seeds at one epoch: the baseline, and the game's rows (jittered
    by a few percent per seed, so that the seeds differ) of the given scopes."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in SEEDS:
        rows.append(("baseline", "", "", 5.0, seed))
        for (quantity, modality, scope), value in (game or {}).items():
            if scope in scopes:
                rows.append((quantity, modality, scope, value * float(np.exp(rng.normal(0, 0.05))), seed))
    table = pd.DataFrame(rows, columns=["quantity", "modality", "scope", "value", "seed"])
    return table.assign(fusion="concat", schedule="constant-0", epoch=10)


HISTORY = pd.DataFrame(
    {"fusion": "concat", "schedule": "constant-0", "seed": list(SEEDS), "epoch": 10, "beta": 0.0, "latent_loss": 3.0}
)


def _lattice(results: pd.DataFrame, description=DESCRIPTION) -> dict:
    findings = check_findings(HISTORY, results, [(0, 11)], description=description)
    return {f.id: f for f in findings if f.id in LATTICE_IDS}


def test_each_check_says_yes_where_the_game_is_the_datas():
    findings = _lattice(_results(_true_game()))
    assert list(findings) == LATTICE_IDS
    for f in findings.values():
        assert f.state == "yes", f.evidence
        assert f.n_seeds == 5 and f.source.startswith("ground truth") and f.rule
    assert "bit-a and bit-b" in findings["bits-synergy"].claim
    assert "× the lattice's baseline" in findings["bits-synergy"].rule


@pytest.mark.parametrize(
    "broken, id_",
    [
        # The noise takes most of vision's baseline: a model that reads the arm in it.
        ({("share", "noise", "vision"): 9.0}, "noise-no-share"),
        # The noise interacts with vision, regarding vision, as much as vision's share.
        ({("interaction", "noise&vision", "vision"): -6.0}, "noise-no-share"),
        # The copy adds to vision instead of repeating it.
        ({("interaction", "vision&copy-vision", "all"): 0.5}, "copy-shares-split"),
        # Vision takes most of the share, its copy a little (read, but not as an equal view;
        # a copy with no share at all is not read, and then the check cannot tell).
        ({("share", "vision", "all"): 2.6, ("share", "copy-vision", "all"): 0.4}, "copy-shares-split"),
        # The bits are redundant regarding the product, not synergistic.
        ({("interaction", "bit-a&bit-b", "bit-ab"): -1.0}, "bits-synergy"),
        # Another pair is as synergistic regarding the product as the bits.
        ({("interaction", "joints&motor", "bit-ab"): 1.5}, "bits-synergy"),
    ],
)
def test_each_check_says_no_where_the_game_is_not(broken, id_):
    findings = _lattice(_results(_true_game() | broken))
    assert findings[id_].state == "no", findings[id_].evidence
    assert [f.state for i, f in findings.items() if i != id_] == ["yes", "yes"]


def test_the_checks_are_absent_without_shares():
    """A run that did not compute the lattice gets none of these checks; the others are as before."""
    findings = check_findings(HISTORY, _results(None), [(0, 11)], description=DESCRIPTION)
    assert not {f.id for f in findings} & set(LATTICE_IDS)
    assert [f.id for f in findings][:2] == ["noise-uninformative", "copy-redundant"]
    assert (
        lattice_truth.lattice_truth_checks(pd.DataFrame(), sim_truth.ground_truth_of(DESCRIPTION), "concat", "") == []
    )


def test_the_checks_say_what_they_lack():
    # Shares regarding all only: the synergy, which is regarding the product, and what the
    # noise tells of the other modalities cannot be told.
    findings = _lattice(_results(_true_game(), scopes=("all",)))
    assert findings["copy-shares-split"].state == "yes"
    assert findings["bits-synergy"].state == "cannot tell" and findings["noise-no-share"].state == "cannot tell"
    assert "regarding bit-ab" in findings["bits-synergy"].evidence
    assert "regarding another modality" in findings["noise-no-share"].evidence
    # A data set without the distractors: each check says which one to add.
    plain = sim.description(sim.SimConfig())
    game = {k: v for k, v in _true_game().items() if all(m in plain.modality_names for m in k[1].split("&"))}
    findings = _lattice(_results(game), plain)
    assert [f.state for f in findings.values()] == ["cannot tell"] * 3
    assert '"xor"' in findings["bits-synergy"].evidence and '"noise"' in findings["noise-no-share"].evidence


def test_the_interaction_is_found_in_either_order():
    game = _true_game()
    swapped = {
        (q, "copy-vision&vision" if m == "vision&copy-vision" else m, s): v
        for (q, m, s), v in game.items()
        if not (q == "interaction" and m == "vision&copy-vision" and s == "bit-ab")
    }
    assert _lattice(_results(swapped))["copy-shares-split"].state == "yes"


def test_thresholds_are_stated_in_the_rules():
    f = _lattice(_results(_true_game()))
    assert f"{lattice_truth.NOISE_SHARE_FRACTION:g}" in f["noise-no-share"].rule
    assert f"{lattice_truth.COPY_SPLIT_RATIO:g}" in f["copy-shares-split"].rule
    assert f"{lattice_truth.NOISE_INTERACTION_FRACTION:g}" in f["noise-no-share"].rule
    assert f"{lattice_truth.SYNERGY_DOMINANCE:g}" in f["bits-synergy"].rule


def test_ground_truth_names_the_synergy_triples_and_their_pairs():
    truth = sim_truth.ground_truth_of(sim.description(sim.SimConfig(distractors=("xor", "noise", "xor"))))
    assert truth.synergies == [("bit-a", "bit-b", "bit-ab"), ("bit-a-2", "bit-b-2", "bit-ab-2")]
    both = truth.pairs[truth.product_from_bits["bit-ab"]]
    assert both["compared"] == ["bit-ab"] and not {"bit-a", "bit-b"} & set(both["muted"])
    assert {"bit-ab", "bit-a-2", "noise", "vision"} <= set(both["muted"])
    one = truth.pairs[truth.product_from_bit["bit-ab-2"]["bit-a-2"]]
    assert "bit-a-2" not in one["muted"] and "bit-b-2" in one["muted"]
    nothing = truth.pairs[truth.product_from_nothing["bit-ab"]]
    assert nothing["compared"] == ["bit-ab"] and "bit-ab" in nothing["muted"] and "bit-a-2" in nothing["muted"]
    assert sim_truth.ground_truth_of(DESCRIPTION).synergies == [("bit-a", "bit-b", "bit-ab")]
    assert sim_truth.ground_truth_of(sim.description(sim.SimConfig(distractors=("noise",)))).synergies == []


def test_the_scatter_of_a_copy_never_read_is_not_reading_it():
    """Models never given the copy alone still give it a share and an interaction of a few
    percent of vision's share, either sign (inputs no pattern teaches): that is no reading of
    the copy, and no evidence against the redundancy (the front door's models gave this)."""
    game = _true_game()
    vision = game[("share", "vision", "all")]
    game |= {("share", "copy-vision", "all"): 0.05 * vision, ("interaction", "vision&copy-vision", "all"): 0.2 * vision}
    findings = _lattice(_results(game))
    assert findings["copy-shares-split"].state == "cannot tell"
    assert "do not read copy-vision" in findings["copy-shares-split"].evidence


@pytest.mark.parametrize("given_bits, state", [(0.001, "yes"), (500.0, "cannot tell")])
def test_a_product_known_from_itself_but_not_from_the_bits_is_no_synergy(given_bits, state):
    """Where the run measured the ground truth's pairs, the product given both bits must be
    near the product given everything: a model that predicts it sharply and wrongly from the
    bits (its divergence there far above the one given nothing) has a large interaction and
    no synergy learned; one that predicts it from the bits is judged by the claims."""
    truth = sim_truth.ground_truth_of(DESCRIPTION)
    pairs = {
        ("custom", truth.product_from_bits["bit-ab"], ""): given_bits,
        ("custom", truth.product_from_nothing["bit-ab"], ""): 2.5,
    }
    findings = _lattice(_results(_true_game() | pairs, scopes=("all", "bit-ab", "vision", "noise", "")))
    assert findings["bits-synergy"].state == state, findings["bits-synergy"].evidence
    if state != "yes":
        assert "No model learned bit-ab from bit-a and bit-b" in findings["bits-synergy"].evidence
        assert "5 did not learn it from bit-a and bit-b" in findings["bits-synergy"].evidence


def test_the_synergy_is_decided_over_the_models_that_learned_it():
    """Models that did not learn the product from the bits are left out and counted: two
    seeds predicting it sharply and wrongly from the bits, three from the bits; the check
    decides on the three. With only two left, too few seeds to decide."""
    truth = sim_truth.ground_truth_of(DESCRIPTION)
    both, nothing = truth.product_from_bits["bit-ab"], truth.product_from_nothing["bit-ab"]
    table = _results(_true_game() | {("custom", nothing, ""): 2.5}, scopes=("all", "bit-ab", "vision", "noise", ""))

    def given_bits(wrong_seeds):
        rows = [("custom", both, "", 500.0 if seed in wrong_seeds else 0.001, seed) for seed in SEEDS]
        extra = pd.DataFrame(rows, columns=["quantity", "modality", "scope", "value", "seed"])
        return pd.concat([table, extra.assign(fusion="concat", schedule="constant-0", epoch=10)], ignore_index=True)

    three = _lattice(given_bits({0, 1}))["bits-synergy"]
    assert three.state == "yes", three.evidence
    assert three.evidence.startswith("Left out, of 5 models: 2 did not learn it from bit-a and bit-b")
    assert "over 3 models" in three.evidence and three.n_seeds == 3
    two = _lattice(given_bits({0, 1, 2}))["bits-synergy"]
    assert two.state == "cannot tell" and "Too few seeds (2)" in two.evidence


def test_a_copy_never_read_and_a_product_never_learned_cannot_be_told():
    """The quick preset's models: the copy's input ignored (no share, no interaction), the
    product predicted from everything no better than from nothing (its baseline ~0.1 nats)."""
    game = _true_game() | {("share", "copy-vision", "all"): 0.0, ("interaction", "vision&copy-vision", "all"): 0.0}
    game |= {k: v / 40 for k, v in game.items() if k[2] == "bit-ab"}
    findings = _lattice(_results(game))
    assert findings["copy-shares-split"].state == "cannot tell"
    assert "do not read copy-vision" in findings["copy-shares-split"].evidence
    assert "teach_copies" in findings["copy-shares-split"].evidence
    assert findings["bits-synergy"].state == "cannot tell"
    assert "did not learn bit-ab" in findings["bits-synergy"].evidence
    assert findings["noise-no-share"].state == "yes"


@pytest.mark.slow
@pytest.mark.controls
def test_the_presets_report_finds_synergy_and_redundancy_on_its_controls(tmp_path):
    """What the simulator makes certain, found in trained models: a preset study on the
    simulator first trains its ground-truth controls (concat models, constant-0, lr 1e-3,
    600 epochs) of the xor triple alone (each bit in 4 columns) and of vision with its copy
    taught alone, and its report decides the synergy and the copy's redundancy on them: Yes,
    the synergy in place of the study's own "no synergy triple", the copy's beside the study's
    own (docs/simulator.md; about two and a half minutes here)."""
    import intermodal as im
    from intermodal.outputs.report import render_report
    from intermodal.study import controls

    config = im.preset("demo").updated({"epochs": 10, "eval_every": 10, "seeds": [0], "schedules": ["constant-0"]})
    run = im.run_study(config, tmp_path / "study", report=False)
    assert sorted(run.controls) == sorted(controls.CONTROLS)
    synergy, redundancy = run.controls[controls.SYNERGY], run.controls[controls.REDUNDANCY]
    assert synergy.path == tmp_path / "study" / "controls" / "synergy" and len(synergy.model_keys) == 6
    assert synergy.description.modality_names == ["bit-a", "bit-b", "bit-ab"]
    assert redundancy.description.modality_names == ["vision", "copy-vision"]
    for control, check in ((synergy, "bits-synergy"), (redundancy, "copy-shares-split")):
        found = {f.id: f for f in check_findings(control.history, control.results, description=control.description)}
        assert found[check].state == "yes", found[check].evidence
    page = render_report(run.path)
    assert "The synergy control (6 concat models, constant-0, 600 epochs" in page
    assert "The redundancy control (6 concat models" in page
    assert "has no synergy triple" not in page  # the study's own check gave way to its control's
    side = im.compare([run.path, run.path], labels=["a", "b"]).findings
    from_controls = side[side["claim"].str.startswith("The synergy control")]
    assert list(from_controls["run"]) == ["a", "b"] and set(from_controls["state"]) == {"yes"}
    # A study without the controls, or not on the simulator, trains none.
    assert controls.control_configs(config.updated({"ground_truth_controls": False})) == {}
    assert controls.control_configs(config.updated({"data": "digits"})) == {}
    assert controls.control_configs(config.updated({"ground_truth": False})) == {}
    assert controls.control_configs(config.updated({"dtype": "float64"}))["synergy"].dtype == "float64"
