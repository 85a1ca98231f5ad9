"""Evaluation: the catalogue of quantities (:mod:`.catalogue`), the integration measures
(:mod:`.measures`) and the engine behind every KL measure (:mod:`.divergences`), the lattice
of modalities (:mod:`.lattice`), latent diagnostics (:mod:`.diagnostics`), the measures a
run config asks for (:mod:`.evaluator`), prediction (:mod:`.predict`), the original work's
prediction tests (:mod:`.prediction_tests`), the feed-forward baselines
(:mod:`.baselines`), the checks before trusting a wrapped model (:mod:`.checks`),
statistics over seeds (:mod:`.statistics`), tables derived from a run's tables
(:mod:`.summaries`), and the findings checked on them (:mod:`.findings`, built of
:mod:`.claims`; the simulator's ground truth in the lattice's terms: :mod:`.lattice_truth`).
Imports the data, model and training layers."""
