"""Replay a sweep's stored results into MLflow: what a tracking server missed while it was unreachable, or what a
driver killed mid-sweep never sent. It writes through the same layout functions and tracker calls as the live
sweep (`sweep.mlflow.layout`), so a backfilled store holds what a live one would. Idempotent: running it twice logs
nothing the second time."""

from __future__ import annotations

from sweep.mlflow import layout
from sweep.mlflow.tracker import SweepTracker
from sweep.records import SweepFolder, read_inputs, read_sweep


def backfill(sweep_path, tracker: SweepTracker) -> dict[str, int]:
    """The sweep's inputs (donor runs, floor, reference: `layout.log_inputs`), then every trial's run (created or
    reused under the tracker's parent run), the results, sample grids and final weights MLflow lacks, and its
    outcome.

    The tracker must have a parent run (`layout.open_sweep`). Trials that are not over (still running, or their
    driver died) stay RUNNING: the running sweep's callback, a resume or `end_sweep` (as `interrupted`) ends them.
    Returns counts: trials, runs_created, metrics_logged, grids_logged.
    """
    counts = {"trials": 0, "runs_created": 0, "metrics_logged": 0, "grids_logged": 0}
    if tracker.offline or tracker.parent_run_id is None:
        return counts
    layout.log_inputs(tracker, read_inputs(sweep_path))
    folder = SweepFolder(sweep_path)
    for record in read_sweep(sweep_path):
        counts["trials"] += 1
        existed, before = tracker.known(record.trial_id)
        params = layout.trial_params(record.config)
        if tracker.trial_started(record.trial_id, params, layout.trial_run_name(record.config, record.trial_id)) is None:
            break  # offline
        counts["runs_created"] += not existed
        for row in record.history:  # with the text the live callback saw in each result (device, data digests)
            row = {**record.text, **row}
            counts["metrics_logged"] += tracker.trial_result(record.trial_id, row)
        for grid in record.grids:
            if grid.step is not None and not tracker.has_grid(record.trial_id, grid.step):
                counts["grids_logged"] += tracker.trial_grid(record.trial_id, folder.local(grid.path), grid.step)
        if record.weights:
            tracker.trial_weights(record.trial_id, folder.local(record.weights))
        if record.outcome != "interrupted":
            tracker.trial_finished(record.trial_id, record.outcome)
        elif before is not None:  # reopened only to fill gaps: end it as it was
            tracker.trial_finished(record.trial_id, before)
    return counts
