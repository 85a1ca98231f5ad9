"""Data: a data set's description (:mod:`.description`), reading and checking its files
(:mod:`.reading`), the rows in memory and their training augmentation (:mod:`.dataset`),
choosing a data set (:mod:`.catalog`: the simulator, the iCub data, a description file),
and the embedded robot simulator (:mod:`.sim`, :mod:`.sim_world`). The first layer: it
imports nothing of intermodal's beyond the root modules (errors, options, streams, files)."""
