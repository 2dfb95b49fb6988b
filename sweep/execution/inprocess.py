"""`--in-process`: the sweep's trials one after another in the driver, through the same trainable code.

For debugging (breakpoints work, no Ray workers). Trial folders mirror Tune's on-disk layout (`params.json`,
`result.json` with one JSON line per report, `checkpoint_NNNNNN/`) and are named by `sweep.records`, so the report,
backfill and resume read both the same way. A failing trial is recorded and the sweep goes on, as under Tune; a
resumed in-process sweep skips what finished and reruns what failed or was interrupted.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from gan import storage
from gan.train import grid_name
from sweep.plan import Plan
from sweep.records import SweepFolder, inprocess_trial_id, outcome, read_trial, trial_dirname, trial_name
from sweep.mlflow.layout import trial_params, trial_run_name
from sweep.mlflow.tracker import SweepTracker
from trainables.arm import train_arm
from trainables.files import WEIGHTS_FILE
from trainables.session import InProcessSession

DONE = ("finished", "diverged")  # outcomes a resumed in-process sweep does not run again


def run_in_process(plan: Plan, inputs: dict, tracker: SweepTracker) -> None:
    """Run every trial of the plan that has not finished or diverged yet, one after another, logging to `tracker`."""
    root = Path(plan.path)
    folder = SweepFolder(root)
    for index, (config, tell) in enumerate(plan.study.suggest(plan.metric, plan.mode)):
        trial_id = inprocess_trial_id(index, config)
        name = trial_dirname(config, trial_id)
        trial_dir = root / name
        before = read_trial(folder, name)
        if before is not None and before.outcome in DONE:
            tell(before.last)  # an Optuna searcher replays the same suggestions only when told the same results
            continue
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "error.txt").unlink(missing_ok=True)  # a failed trial runs again, as Tune's resume_errored does
        storage.write_text(trial_dir / "params.json", json.dumps(config, indent=2, sort_keys=True))
        tracker.trial_started(trial_id, trial_params(config), trial_run_name(config, trial_id))
        last: dict = before.last if before is not None else {}

        def on_report(metrics: dict, checkpoint: str | None):
            nonlocal last
            row = {**metrics, "trial_id": trial_id, "timestamp": time.time(), "config": config, "pid": os.getpid(),
                   "time_total_s": time.perf_counter() - started,  # as Tune counts it: since this run of the trial
                   "training_iteration": session.iteration,  # already counts this report
                   "checkpoint_dir_name": Path(checkpoint).name.removesuffix(".tmp") if checkpoint else None}
            with open(trial_dir / "result.json", "a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            last = metrics
            tracker.trial_result(trial_id, metrics)
            if checkpoint:
                tracker.trial_grid(trial_id, str(Path(checkpoint) / grid_name(metrics["step"])), metrics["step"])
                tracker.trial_weights(trial_id, str(Path(checkpoint) / WEIGHTS_FILE))
            if plan.options.verbose:
                shown = "  ".join(f"{k} {metrics[k]:.4g}" for k in (plan.metric,) if k in metrics)
                print(f"[{trial_name(config, trial_id)}] step {metrics['step']:>6}  {shown}  "
                      f"diverged {metrics['diverged']}", flush=True)

        session = InProcessSession(trial_dir, on_report, cpus=int(plan.options.cpus_per_trial or 0))  # 0: all cores
        started = time.perf_counter()
        session.iteration = before.reports if before is not None else 0
        try:
            with session:
                train_arm(config, inputs)
            ended = outcome(last, config, status="TERMINATED")
        except Exception:
            storage.write_text(trial_dir / "error.txt", traceback.format_exc())
            print(f"[{trial_name(config, trial_id)}] failed:\n{traceback.format_exc()}", flush=True)
            ended = "failed"
        tracker.trial_finished(trial_id, ended)
        tell(last if ended != "failed" else None)
