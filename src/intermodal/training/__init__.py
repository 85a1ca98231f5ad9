"""Training: KL-weight schedules (:mod:`.schedules`), the run config (:mod:`.config`),
checkpoints (:mod:`.checkpoint`), the run folder (:mod:`.runfolder`, which the trainer
writes as it goes), the sharded ensemble (:mod:`.ensemble`), the loop of epochs and
evaluations (:mod:`.trainer`) and continuing a run (:mod:`.resume`). Imports the data and
model layers."""
