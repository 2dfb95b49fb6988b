"""The files a trial writes into its checkpoints; `sweep.records` finds them by these names. The sample grid of the
evaluation is named like every grid, by `gan.train.grid_name(step)`."""

STATE_FILE = "state.pt"  # the full TrainState (torch.load(weights_only=True)): resume from here
WEIGHTS_FILE = "generator.pt"  # final checkpoint only: the generator's weights and the config that builds it
FINAL_SAMPLES_FILE = "samples.parquet"  # final checkpoint only: the scored samples, a gan.imagetable table
