"""Training: KL-weight schedules (:mod:`.schedules`), the run config (:mod:`.config`), the
device and its arithmetic (:mod:`.device`), checkpoints (:mod:`.checkpoint`), the run folder
(:mod:`.runfolder`: its names and lock, its tables, a run read back; the trainer writes it as
it goes), each epoch's random draws (:mod:`.noise`), the models in shards while they train
(:mod:`.shards`), the loop of epochs and evaluations (:mod:`.trainer`) and continuing a run
(:mod:`.resume`). Imports the data and model layers."""
