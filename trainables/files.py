"""The files a trial writes into its checkpoints; `sweep.records` finds them by these names. The sample grid of the
evaluation is named like every grid, by `gan.train.grid_name(step)`. Also the text values every report carries
beside its metrics, which MLflow turns into the run's dataset inputs (`sweep.mlflow.layout.dataset_inputs`)."""

STATE_FILE = "state.pt"  # the full TrainState (torch.load(weights_only=True)): resume from here
WEIGHTS_FILE = "generator.pt"  # final checkpoint only: the generator's weights and the config that builds it
FINAL_SAMPLES_FILE = "samples.parquet"  # final checkpoint only: the scored samples, a gan.imagetable table
DATA_DIGEST = "data_digest"  # report key: `gan.cache.image_hash` of the images the trial trains on
REFERENCE_DIGEST = "reference_digest"  # report key: the same of the real images it is scored against
