"""Training: KL-weight schedules (:mod:`.schedules`), the run config (:mod:`.config`), the
device and its arithmetic (:mod:`.device`), checkpoints (:mod:`.checkpoint`), the run folder
(:mod:`.runfolder`, which the trainer writes as it goes), each epoch's random draws
(:mod:`.noise`), the sharded ensemble (:mod:`.ensemble`), the loop of epochs and
evaluations (:mod:`.trainer`) and continuing a run (:mod:`.resume`). Imports the data and
model layers."""
