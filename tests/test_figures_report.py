"""Figures and report from fabricated run folders (no training involved).

The fabricated tables follow the run-folder format that training writes; their values are
constructed so that each of the paper's findings holds in one run and fails in another.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from intermodal.evaluation.findings import check_findings
from intermodal.evaluation.summaries import resolve_windows
from intermodal.outputs.figures import FIGURES, fig7_window_means
from intermodal.outputs.report import FINDINGS_SECTION_TITLE, figure_paths, write_figures, write_report

PAPER_SCHEDULES = ["constant-1", "constant-0", "dynamic-plateau-0", "dynamic-plateau-1"]

# (SME regarding m, SME regarding all, LoP regarding m, LoP regarding all) per modality for
# the schedules that do not collapse; chosen so that vision has the lowest SME regarding all
# and a LoP regarding all above the median, and touch and sound have SME regarding themselves
# above the median with LoP close to it.
ICUB_PAPER_LIKE = {
    "joints": (3.0, 8.0, 0.5, 1.0),
    "vision": (1.0, 2.0, 2.0, 6.0),
    "touch": (5.0, 9.0, 4.5, 5.0),
    "sound": (4.5, 9.5, 4.0, 4.5),
    "motor": (2.5, 8.5, 0.3, 0.8),
}
# The opposite: vision the least informative, touch and sound easy to recover from the rest.
ICUB_CONTRARY = {
    "joints": (3.0, 4.0, 2.0, 6.0),
    "vision": (2.0, 10.0, 0.2, 0.5),
    "touch": (1.0, 5.0, 0.1, 2.0),
    "sound": (1.5, 5.5, 0.1, 2.5),
    "motor": (2.5, 4.5, 1.5, 5.0),
}
# A robot of one's own: nothing named like the iCub's modalities, and three not five of them.
OWN_ROBOT = {
    "arm": (2.0, 6.0, 1.0, 3.0),
    "camera": (1.0, 3.0, 2.0, 5.0),
    "bumper": (4.0, 7.0, 3.5, 4.0),
}


def beta(schedule: str, epoch: int, epochs: int) -> float:
    """The paper's schedules, scaled to a run of ``epochs`` epochs (cycles of >= 2 epochs)."""
    scale = epochs / 80_000
    if schedule == "constant-1":
        return 1.0
    if schedule == "constant-0":
        return 1.0 - min(epoch / (1000 * scale), 1.0)
    cycle = max(int(round(80 * scale)), 2)
    if epoch >= 0.875 * epochs:
        return 0.0 if schedule.endswith("0") else 1.0
    position = epoch % cycle
    return max(1.0 - position / max(cycle / 2, 1), 0.0)


def fabricate_run(
    modalities: dict,
    *,
    collapse: bool = True,
    schedules=PAPER_SCHEDULES,
    seeds=(0, 1, 2),
    epochs: int = 40,
    evaluate_every: int = 2,
    windows=None,
    diagnostics: bool = False,
    rng_seed: int = 0,
):
    """Config, history, results (and diagnostics) tables in the run-folder format.

    ``collapse=True``: constant-1 has the lowest baseline, the highest prediction error and a
    latent loss near 0 (as in the paper); ``collapse=False``: none of the three.
    """
    rng = np.random.default_rng(rng_seed)
    evaluation_epochs = sorted(set(range(0, epochs, evaluate_every)) | {epochs - 1})
    latent_level = {
        "constant-1": 0.1 if collapse else 40.0,
        "constant-0": 60.0,
        "dynamic-plateau-0": 15.0,
        "dynamic-plateau-1": 12.0,
    }
    baseline_level = {
        "constant-1": 0.3 if collapse else 30.0,
        "constant-0": 12.0,
        "dynamic-plateau-0": 10.0,
        "dynamic-plateau-1": 8.0,
    }
    prediction_level = {
        "constant-1": 1.2 if collapse else 0.2,
        "constant-0": 0.4,
        "dynamic-plateau-0": 0.5,
        "dynamic-plateau-1": 0.6,
    }
    history, results, diagnostic_rows = [], [], []
    for schedule in schedules:
        for seed in seeds:
            seed_factor = 1.0 + 0.05 * rng.standard_normal()
            for epoch in range(epochs):
                settle = 1.0 + 0.5 * np.exp(-epoch / 8)  # values fall early in training, then settle
                b = beta(schedule, epoch, epochs)
                recon = 2.0 * settle * seed_factor + 0.05 * rng.standard_normal()
                latent = latent_level.get(schedule, 20.0) * seed_factor * (1 + 0.02 * rng.standard_normal())
                history.append((schedule, seed, epoch, b, recon, latent, recon + b * latent))
            for epoch in evaluation_epochs:
                settle = 1.0 + 0.5 * np.exp(-epoch / 8)
                shrink = 0.1 if (schedule == "constant-1" and collapse) else 1.0
                noise = seed_factor * settle * (1 + 0.02 * rng.standard_normal())
                results.append((schedule, seed, epoch, "baseline", "", "", baseline_level.get(schedule, 9.0) * noise))
                results.append(
                    (schedule, seed, epoch, "prediction_error", "", "", prediction_level.get(schedule, 0.5) * noise)
                )
                for modality, (sme_m, sme_all, lop_m, lop_all) in modalities.items():
                    for quantity, scope, level in [
                        ("single_modality_error", "modality", sme_m),
                        ("single_modality_error", "all", sme_all),
                        ("loss_of_precision", "modality", lop_m),
                        ("loss_of_precision", "all", lop_all),
                    ]:
                        results.append((schedule, seed, epoch, quantity, modality, scope, level * shrink * noise))
                # Extra quantities may appear in a run; the standard figures must ignore them.
                results.append((schedule, seed, epoch, "custom", next(iter(modalities)), "modality", 123.0))
                if diagnostics:
                    n_active = 2 if (schedule == "constant-1" and collapse) else 20
                    for unit in range(28):
                        diagnostic_rows.append(
                            (
                                schedule,
                                seed,
                                epoch,
                                f"{schedule}/{seed}",
                                unit,
                                1.0 if unit < n_active else 0.001,
                                0.5,
                                unit < n_active,
                            )
                        )
    config = {
        "data": "fabricated-test-set <escaped & shown whole>",
        "schedules": list(schedules),
        "epochs": epochs,
        "eval_every": evaluate_every,
        "seeds": list(seeds),
    }
    if windows is not None:
        config["windows"] = windows
    history = pd.DataFrame(
        history, columns=["schedule", "seed", "epoch", "beta", "reconstruction_loss", "latent_loss", "loss"]
    )
    results = pd.DataFrame(results, columns=["schedule", "seed", "epoch", "quantity", "modality", "scope", "value"])
    diagnostics_table = None
    if diagnostics:
        diagnostics_table = pd.DataFrame(
            diagnostic_rows,
            columns=["schedule", "seed", "epoch", "model", "latent_dim", "kl", "posterior_mean_variance", "active"],
        )
    return config, history, results, diagnostics_table


def write_run(folder: Path, config, history, results, diagnostics=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    history.to_parquet(folder / "history.parquet", index=False)
    results.to_parquet(folder / "results.parquet", index=False)
    if diagnostics is not None:
        diagnostics.to_parquet(folder / "diagnostics.parquet", index=False)
    return folder


def assert_figures_written(run: Path, diagnostics: bool = False) -> None:
    for stem, (png, svg) in figure_paths(run, diagnostics=diagnostics).items():
        assert png.is_file() and svg.is_file(), stem
        pixels = matplotlib.image.imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, stem
        assert pixels.std() > 0, f"{stem} is a single colour"
        assert svg.read_text().lstrip().startswith("<?xml"), stem


def by_claim(findings) -> dict:
    """Findings keyed a/b/c by what they are about."""
    keyed = {}
    for f in findings:
        keyed["a" if "collapses" in f.claim else "b" if "informative" in f.claim else "c"] = f
    return keyed


@pytest.fixture(scope="module")
def paper_like_run(tmp_path_factory) -> Path:
    """iCub names, findings constructed to hold, with diagnostics; figures and report written."""
    run = write_run(tmp_path_factory.mktemp("paper_like"), *fabricate_run(ICUB_PAPER_LIKE, diagnostics=True))
    write_report(run)  # draws the figures itself since none exist yet
    return run


def test_every_figure_is_written_as_png_and_svg(paper_like_run):
    assert_figures_written(paper_like_run, diagnostics=True)
    assert len(figure_paths(paper_like_run)) == len(FIGURES) == 6


def test_findings_hold_when_constructed_to_hold():
    _, history, results, _ = fabricate_run(ICUB_PAPER_LIKE)
    findings = by_claim(check_findings(history, results, windows=[(30, 35), (35, 41)]))
    assert [findings[k].holds for k in "abc"] == [True, True, True]
    for f in findings.values():
        assert f.evidence and f.rule and f.source.startswith("Langer")


def test_findings_fail_when_constructed_to_fail():
    _, history, results, _ = fabricate_run(ICUB_CONTRARY, collapse=False)
    findings = by_claim(check_findings(history, results, windows=[(30, 35), (35, 41)]))
    assert [findings[k].holds for k in "abc"] == [False, False, False]


def test_findings_cannot_tell_without_constant_1_or_named_modalities():
    schedules = [s for s in PAPER_SCHEDULES if s != "constant-1"]
    _, history, results, _ = fabricate_run(ICUB_PAPER_LIKE, schedules=schedules)
    findings = by_claim(check_findings(history, results, windows=None))
    assert findings["a"].holds is None and "constant-1" in findings["a"].evidence
    # b and c compare schedules other than constant-1, so they still hold here.
    assert findings["b"].holds is True and findings["c"].holds is True

    _, history, results, _ = fabricate_run(OWN_ROBOT)
    findings = by_claim(check_findings(history, results, windows=None))
    assert findings["a"].holds is True
    assert findings["b"].holds is None and findings["c"].holds is None


def test_findings_cannot_tell_when_the_last_window_is_empty():
    _, history, results, _ = fabricate_run(ICUB_PAPER_LIKE)
    findings = check_findings(history, results, windows=[(30, 35), (500, 600)])
    assert [f.holds for f in findings] == [None, None, None]


def test_missing_modality_and_scope_read_as_blank():
    # A table built in memory may leave modality/scope missing (None) where they do not apply.
    _, history, results, _ = fabricate_run(ICUB_PAPER_LIKE)
    blank = results["modality"] == ""
    results = results.astype({"modality": object, "scope": object})
    results.loc[blank, ["modality", "scope"]] = None
    findings = check_findings(history, results, windows=[(30, 35), (35, 41)])
    assert [f.holds for f in findings] == [True, True, True]


def test_windows_from_config_are_checked():
    with pytest.raises(ValueError, match="start < end"):
        resolve_windows({"windows": [[10, 5]]})
    assert resolve_windows({"windows": [[0, 5], [5, 10]]}) == [(0, 5), (5, 10)]
    assert resolve_windows({"epochs": 80_000}) == [(60_000, 70_000), (70_000, 80_001)]


def test_report_is_one_self_contained_page(paper_like_run):
    report = paper_like_run / "report.html"
    text = report.read_text(encoding="utf-8")
    assert FINDINGS_SECTION_TITLE in text
    assert text.count("<img") + text.count("<svg") >= 6
    assert re.search(r"<td>\d+(\.\d+)?(e[-+]\d+)? ± \d", text), "no mean ± sd numbers in a table"
    # Every reference stays inside the page: images are data URIs, links are anchors.
    references = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', text)
    assert references and all(r.startswith(("data:", "#")) for r in references), references
    assert "url(" not in text and "<script" not in text and "<link" not in text
    assert "fabricated-test-set" in text  # data set name
    assert "&lt;escaped &amp; shown whole&gt;" in text  # config printed whole, escaped
    assert "Yes" in text and "active latent units" in text
    for window in ("epochs 30–34", "epochs 35–40"):
        assert window in text


def test_figures_and_report_for_own_modalities(tmp_path):
    run = write_run(
        tmp_path / "own", *fabricate_run(OWN_ROBOT, schedules=["constant-1", "constant-0"], seeds=(0, 1), epochs=16)
    )
    paths = write_figures(run)
    assert len(paths) == 12 and all(p.is_file() for p in paths)
    assert {p.suffix for p in paths} == {".png", ".svg"}
    assert_figures_written(run)
    drawn_at = {p: p.stat().st_mtime_ns for p in paths}
    text = write_report(run).read_text(encoding="utf-8")
    assert all(p.stat().st_mtime_ns == t for p, t in drawn_at.items()), "report redrew existing figures"
    for name in OWN_ROBOT:
        assert f"<th>{name}</th>" in text
    assert "Cannot tell from this run" in text
    assert "<th>vision</th>" not in text


def test_single_seed_single_evaluation_and_empty_window(tmp_path):
    two_modalities = {name: OWN_ROBOT[name] for name in ("arm", "camera")}
    config, history, results, _ = fabricate_run(
        two_modalities,
        schedules=["constant-0", "linear:warmup=7"],
        seeds=(7,),
        epochs=12,
        evaluate_every=100,
        windows=[[0, 5], [5, 11]],
    )
    results = results[results["epoch"] == 0]  # one evaluation, in the first window only
    run = write_run(tmp_path / "edge", config, history, results)
    text = write_report(run).read_text(encoding="utf-8")
    assert_figures_written(run)
    assert "No evaluations in epochs 5–10" in text
    figure = fig7_window_means(results, [(0, 5), (5, 11)])
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any("no evaluations" in t for t in texts)


def chromium_path() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def test_report_renders_in_headless_chromium(paper_like_run, tmp_path):
    browser = chromium_path()
    if browser is None:
        pytest.skip("headless Chromium not installed; install Debian's chromium to run this test")
    report = paper_like_run / "report.html"
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    screenshot = tmp_path / "report.png"
    subprocess.run(
        flags
        + [
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            f"--screenshot={screenshot}",
            "--window-size=1200,3000",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        flags + [f"--user-data-dir={tmp_path / 'profile-dom'}", "--dump-dom", report.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
        text=True,
    ).stdout
    assert FINDINGS_SECTION_TITLE in dom
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) >= 6

    pixels = matplotlib.image.imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels.std() > 0.01, "screenshot is a single colour"
    not_white = (pixels < 0.95).any(axis=-1)
    assert not_white.mean() > 0.03, f"only {not_white.mean():.1%} of the page is not white"
    # Figures are the only source of saturated colour on the page (text and tables are grey),
    # so coloured pixels show that the embedded images were decoded and drawn.
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    assert (saturation > 0.25).mean() > 0.005, "no figure colours in the screenshot"


def test_verdicts_cannot_tell_with_two_seeds_and_decide_with_twenty():
    _, history, results, _ = fabricate_run(ICUB_PAPER_LIKE, seeds=(0, 1))
    findings = check_findings(history, results, windows=[(30, 35), (35, 41)])
    assert [f.state for f in findings] == ["cannot tell"] * 3
    assert all(f.n_seeds == 2 and f.seeds_needed == 3 and "Too few seeds (2)" in f.evidence for f in findings)
    _, history, results, _ = fabricate_run(ICUB_PAPER_LIKE, seeds=range(20))
    findings = check_findings(history, results, windows=[(30, 35), (35, 41)])
    assert [f.state for f in findings] == ["yes"] * 3
    assert all(f.n_seeds == 20 and f.p_value < 0.05 and f.seeds_needed is None for f in findings)


def test_a_near_tie_cannot_tell_and_names_the_seeds_it_would_need():
    # vision's SME regarding all only 0.5% below joints': within the noise of three seeds.
    near_tie = {**ICUB_PAPER_LIKE, "vision": (1.0, 7.96, 2.0, 6.0)}
    _, history, results, _ = fabricate_run(near_tie)
    # ... with a spread of its own across seeds (the fabricated noise is shared by every
    # modality of a model, so it cancels from ratios).
    rows = (results["modality"] == "vision") & (results["quantity"] == "single_modality_error")
    spread = dict(zip(range(3), [0.99, 1.0, 1.005]))
    results.loc[rows, "value"] *= results.loc[rows, "seed"].map(spread)
    informative = by_claim(check_findings(history, results, windows=[(30, 35), (35, 41)]))["b"]
    assert informative.state == "cannot tell" and informative.n_seeds == 3
    assert informative.seeds_needed is not None and informative.seeds_needed > 3
    assert f"about {informative.seeds_needed} seeds would decide" in informative.evidence
