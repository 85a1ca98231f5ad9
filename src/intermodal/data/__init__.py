"""Data: a data set's description (:mod:`.description`), reading and checking its files
(:mod:`.reading`), the rows in memory and their training augmentation (:mod:`.dataset`),
choosing a data set (:mod:`.catalog`: the simulator, the iCub data, the digits, a
description file), scikit-learn's handwritten digits (:mod:`.digits`), the embedded robot
simulator (:mod:`.sim`, its world :mod:`.sim_world`, two data sets compared by
:mod:`.sim_compare`) and what it makes true in the
measures' terms (:mod:`.sim_truth`). The first layer: it imports nothing of intermodal's
beyond the root modules (errors, options, streams, files)."""
