"""Ray Tune's side of a sweep: the callback that forwards trial events to MLflow, and the progress table.

The callback holds only the sweep's path: Tune pickles it into the sweep folder and `Tuner.restore` brings that copy
back, so it looks its tracker up at run time (`sweep.mlflow.active.active`) and a resume may point it at another MLflow.
This module imports Ray Tune; the driver imports it only where it builds a Tuner.
"""

from __future__ import annotations

import os
import sys
import tempfile

from ray import tune
from ray.tune import Callback

from gan import storage
from gan.metrics.schema import metric_key
from gan.train import grid_name
from sweep.mlflow import active
from sweep.records import outcome
from sweep.mlflow.layout import trial_params, trial_run_name
from trainables.files import WEIGHTS_FILE


class MlflowTuneCallback(Callback):
    """Forwards trial events to the active `SweepTracker` of `sweep_path` (Ray >= 2.50 signatures)."""

    def __init__(self, sweep_path: str):
        self.sweep_path = str(sweep_path)

    @property
    def tracker(self):
        found = active.active(self.sweep_path)
        if found is None and not getattr(self, "_warned", False):
            self._warned = True
            print(f"gansweep: no MLflow tracker is active for {self.sweep_path}; trials are not tracked "
                  "(run the sweep through `gansweep run` / `gansweep resume`)", file=sys.stderr)
        return found

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.tracker:
            self.tracker.trial_started(trial.trial_id, trial_params(trial.config),
                                       trial_run_name(trial.config, trial.trial_id))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.tracker:
            self.tracker.trial_result(trial.trial_id, result)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        # Called after on_trial_result of the report that carried this checkpoint: last_result is that report.
        if not self.tracker:
            return
        step = trial.last_result.get("step")
        grid = grid_name(step) if step is not None else None
        names = (WEIGHTS_FILE,) if grid is None else (grid, WEIGHTS_FILE)
        with tempfile.TemporaryDirectory(prefix="gansweep-ckpt-") as work:
            try:  # a remote checkpoint's files are copied into `work` for the duration
                files = storage.fetch_files(checkpoint.filesystem, checkpoint.path, names, work)
            except OSError as e:
                print(f"gansweep: could not read checkpoint {checkpoint.path}: {e}", file=sys.stderr)
                return
            if grid in files:
                self.tracker.trial_grid(trial.trial_id, files[grid], step)
            if files.get(WEIGHTS_FILE):
                self.tracker.trial_weights(trial.trial_id, files[WEIGHTS_FILE])

    def on_trial_complete(self, iteration, trials, trial, **info):
        # Completed without an error: short of its budget means a scheduler (ASHA) or a stopper ended it.
        if self.tracker:
            self.tracker.trial_finished(trial.trial_id, outcome(trial.last_result or {}, trial.config,
                                                                status="TERMINATED"))

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.tracker:
            self.tracker.trial_finished(trial.trial_id, "failed")


def progress_reporter(metric: str, extractor: str):
    """Tune's table: each trial's name (arm, seed, id), step, IS, the ranking metric and the divergence flag."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new output engine ignores custom reporters
    columns = {"step": "step", metric_key("is_mean", extractor): "IS", metric: metric, "diverged": "div"}
    return tune.CLIReporter(parameter_columns=[], metric_columns=columns, max_report_frequency=15,
                            sort_by_metric=False, max_column_length=28)

