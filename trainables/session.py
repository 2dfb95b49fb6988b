"""Where a trainable reports to: Ray Tune, or the driver itself when a sweep runs `--in-process`.

In-process mode runs the same trainable code one trial after another in the driver (breakpoints work, no Ray
workers). It keeps checkpoints in the trial's directory exactly as Tune would hand them back, so restore logic is
exercised the same way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

from ray import tune

_in_process: "InProcessSession | None" = None


class InProcessSession:
    """A stand-in for Tune's session: persists checkpoints under `trial_dir` and forwards each report."""

    def __init__(self, trial_dir: str | os.PathLike, on_report: Callable[[dict, str | None], None], cpus: int = 0):
        self.trial_dir = Path(trial_dir)
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        self.on_report = on_report
        self.cpus = cpus
        self.iteration = 0

    def latest_checkpoint(self) -> Path | None:
        found = sorted(p for p in self.trial_dir.glob("checkpoint_*") if not p.name.endswith(".tmp"))
        return found[-1] if found else None

    def report(self, metrics: dict, checkpoint: tune.Checkpoint | None) -> None:
        """Record the result, then put the checkpoint in place: a crash in between resumes from the previous
        checkpoint and reports this step again (readers keep the last row of a step; MLflow skips it)."""
        dest = None
        if checkpoint is not None:
            dest = self.trial_dir / f"checkpoint_{self.iteration:06d}"
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(checkpoint.path, tmp)
        self.iteration += 1
        self.on_report(dict(metrics), str(tmp) if dest else None)
        if dest is not None:
            os.replace(tmp, dest)

    def __enter__(self):
        global _in_process
        _in_process = self
        return self

    def __exit__(self, *exc):
        global _in_process
        _in_process = None


def report(metrics: dict, checkpoint_dir: str | None = None) -> None:
    """Report metrics (and a checkpoint directory, copied away before this returns) to Tune or the driver."""
    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    if _in_process is not None:
        _in_process.report(metrics, checkpoint)
    else:
        tune.report(metrics, checkpoint=checkpoint)


def get_checkpoint() -> tune.Checkpoint | None:
    """The checkpoint to resume from (after a worker failure or `gansweep resume`), or None for a fresh start."""
    if _in_process is not None:
        path = _in_process.latest_checkpoint()
        return tune.Checkpoint.from_directory(str(path)) if path else None
    return tune.get_checkpoint()


def cpus_allotted() -> int:
    """CPUs this trial may use (its Tune resource request; all cores in-process)."""
    if _in_process is not None:
        return _in_process.cpus or (os.cpu_count() or 1)
    try:
        resources = tune.get_context().get_trial_resources()
        return max(1, int(resources.required_resources.get("CPU", 1)))
    except Exception:  # outside a Tune trial (e.g. a plain function call in a test)
        return os.cpu_count() or 1
