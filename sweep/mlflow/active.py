"""The MLflow trackers of the sweeps this process runs, and the code version every run is tagged with.

Tune pickles its callbacks into the sweep folder and `Tuner.restore` brings that copy back; what a resume may change
(the MLflow URI) must not live in it. So the driver registers the sweep's `sweep.mlflow.tracker.SweepTracker` here for as
long as the sweep runs (`activate` ... `deactivate`), and the Tune callback, which holds only the sweep's path, finds
it at run time (`active`).
"""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_ACTIVE: dict = {}  # sweep path -> the SweepTracker the driver runs it with


def activate(sweep_path: str, tracker) -> None:
    """Make `tracker` the one the sweep at `sweep_path` logs to (until `deactivate`)."""
    _ACTIVE[str(sweep_path)] = tracker


def deactivate(sweep_path: str) -> None:
    """The sweep at `sweep_path` has ended: forget its tracker."""
    _ACTIVE.pop(str(sweep_path), None)


def active(sweep_path: str):
    """The tracker of the sweep at `sweep_path`, or None when no driver of this process runs it."""
    return _ACTIVE.get(str(sweep_path))


def source_version(path: str | os.PathLike | None = None) -> str:
    """The git commit of the checkout holding `path` (default: this package's source); where there is no git
    checkout (a cluster node with a synced tree, an installed wheel), `gansweep <package version>`."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip()
        if out.returncode == 0 and len(commit) == 40:
            return commit
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"gansweep {version('gansweep')}"
    except PackageNotFoundError:
        return "gansweep (unknown version)"
