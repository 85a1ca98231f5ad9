"""Outputs: drawing helpers (:mod:`.plotting`), the paper's figures (:mod:`.figures`), the
lattice's figures (:mod:`.shares_figures`), prediction trajectories
(:mod:`.prediction_figures`), a run folder's predictions (:mod:`.prediction`), the report
(:mod:`.report` with ``templates/``), several runs side by side (:mod:`.compare`) and live
tracking in TensorBoard or MLflow (:mod:`.tracking`). Imports every layer before it, none
after."""
