"""Training: KL-weight schedules (:mod:`.schedules`), the run config (:mod:`.config`),
checkpoints (:mod:`.checkpoint`), the run folder (:mod:`.runfolder`: its names and lock,
its tables, a run read back; the trainer writes it as it goes), the models in shards
while they train (:mod:`.shards`), the loop of epochs and evaluations (:mod:`.trainer`) and continuing a
run (:mod:`.resume`). Imports the data and model layers."""
