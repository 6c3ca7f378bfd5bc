"""Lightning glue: the LightningModule that holds the science (:mod:`.module`), the callbacks that
log and guard a run (:mod:`.callbacks`, :mod:`.divergence`), resumable atomic checkpoints
(:mod:`.checkpoints`) and the prediction writer (:mod:`.prediction_writer`)."""
