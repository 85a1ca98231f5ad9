"""Outputs: drawing helpers (:mod:`.plotting`), the paper's figures (:mod:`.figures`),
prediction trajectories (:mod:`.prediction_figures`), a run folder's predictions
(:mod:`.prediction`) and the report (:mod:`.report` with ``templates/``). Imports every
layer before it, none after."""
