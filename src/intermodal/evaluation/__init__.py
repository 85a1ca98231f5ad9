"""Evaluation: the integration measures (:mod:`.measures`), latent diagnostics
(:mod:`.diagnostics`), the measures a run config asks for (:mod:`.evaluator`), prediction
(:mod:`.predict`), the original work's prediction tests (:mod:`.prediction_tests`), the
feed-forward baselines (:mod:`.baselines`), tables derived from a run's tables
(:mod:`.summaries`) and the paper's findings checked on them (:mod:`.findings`). Imports
the data, model and training layers."""
