"""MLflow tracking of a sweep: one parent run per sweep, one child run per trial, and a backfill from Tune's files.

`SweepTracker` knows nothing about Tune: the driver calls it from a Tune callback (`MlflowTuneCallback`) or,
for `--in-process` sweeps, directly. It talks to MLflow through `MlflowClient` with explicit run ids (never the
fluent active-run stack), and it is idempotent, so resuming a sweep, restarting a trial from its checkpoint or
running `backfill` twice never duplicates a run, a param or a (metric, step) entry:

- the parent run is found again by its tag `gansweep.sweep_path`, a trial's run by `gansweep.trial_id` under it;
- every run remembers the highest step it has logged (read back from MLflow once when a run is reused), and
  results at or below it are skipped (a restored trial re-reports the steps after its checkpoint);
- params are logged once; sample grids are skipped when an artifact of that name exists.

MLflow must never fail a sweep: every MLflow call goes through `SweepTracker._guard`. The first exception
(server unreachable, store error) prints one line to stderr and turns the tracker offline for the rest of the sweep;
`gansweep report <path>` backfills later. For http(s) URIs the HTTP timeout and retries are made short first.
"""

from __future__ import annotations

import math
import numbers
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sweep.report import TUNE_KEYS, trial_outcome

DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "gansweep"
OUTCOMES = {"finished": "FINISHED", "diverged": "FINISHED", "stopped": "FINISHED", "failed": "FAILED",
            "interrupted": "KILLED"}

# Metric policy: every numeric (int/float, not bool) value of a result is logged, except Tune's bookkeeping
# (report.TUNE_KEYS).

# Short HTTP limits so an unreachable server costs seconds once, not minutes per call (set unless already set).
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The commit of the git checkout holding `path` (default: this package's source), or None outside one."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store go beside its database file (`<dir>/mlruns`), wherever the sweep was started
    from; a server decides for itself (None)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    db = Path(tracking_uri[len(prefix):]).expanduser().resolve()
    return (db.parent / "mlruns").as_uri()


def metrics_of(result: dict) -> dict[str, float]:
    """The numeric (Python or NumPy, not bool), non-bookkeeping values of a result, as floats (NaN/inf kept:
    MLflow stores them)."""
    out = {}
    for k, v in result.items():
        if k in TUNE_KEYS or not isinstance(v, numbers.Real) or isinstance(v, bool) or type(v).__name__ == "bool_":
            continue
        out[k] = float(v)
    return out


def trial_params(config: dict) -> dict[str, str]:
    """MLflow params of a trial: `gan.config.params` of its TrialConfig (strings, tuples joined with '+', plus
    `arm`); a config that is not a valid TrialConfig is logged as given (stringified), with arm '?'."""
    from gan.config import TrialConfig, params

    try:
        return params(TrialConfig(**config))
    except (TypeError, ValueError):
        return {**{k: _param(v) for k, v in config.items()}, "arm": str(config.get("arm", "?"))}


def _param(v) -> str:
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v)) if v else "none"
    return str(v)


@dataclass
class _Run:
    """What the tracker knows about one MLflow run."""

    run_id: str
    max_step: float = -math.inf  # highest step logged: results at or below it are skipped
    params: set[str] = field(default_factory=set)  # param keys already logged
    artifacts: dict[str, set[str]] | None = None  # artifact folder -> file names, listed on first need
    finished: bool = False
    diverged: bool = False
    outcome: str | None = None  # the gansweep.outcome it was last finished with


class SweepTracker:
    """A sweep's MLflow runs: `start_sweep`, then per trial `trial_started` / `trial_result` / `trial_artifact` /
    `trial_finished`, then `end_sweep`. Safe to call on a resumed sweep (runs are found again, not duplicated) and
    when MLflow is down (one warning, then every call is a no-op)."""

    def __init__(self, tracking_uri: str = DEFAULT_URI, experiment_name: str = DEFAULT_EXPERIMENT):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.offline = False  # set by the first failed MLflow call: every later call is skipped
        self.offline_reason: str | None = None
        self.parent_run_id: str | None = None
        self.study: str | None = None
        self._client = None
        self._experiment_id: str | None = None
        self._runs: dict[str, _Run] = {}  # trial_id -> run
        self._children_loaded = False  # _runs holds every existing child of the parent run
        self._warned_no_parent = False
        if tracking_uri.startswith(("http://", "https://")):
            for k, v in HTTP_ENV.items():
                os.environ.setdefault(k, v)

    # --- the guard ----------------------------------------------------------------------------------------------

    def _guard(self, fn, *args, **kwargs):
        """Run one MLflow operation; on any error print one line to stderr, go offline and return None."""
        if self.offline:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 -- MLflow must never fail the sweep
            self.offline = True
            text = str(e).strip()
            self.offline_reason = text.splitlines()[0] if text else type(e).__name__
            print(f"gansweep: MLflow at {self.tracking_uri} unreachable: {self.offline_reason}; the sweep carries "
                  "on, run `gansweep report <path>` later to backfill", file=sys.stderr, flush=True)
            return None

    def __getstate__(self):
        """Tune pickles its callbacks (tuner.pkl) and `Tuner.restore` brings that copy back: keep the identity
        (URI, experiment, parent run), drop the client and the run cache, which the copy reads back from MLflow."""
        state = self.__dict__.copy()
        state.update(_client=None, _runs={}, _children_loaded=False, offline=False, offline_reason=None)
        return state

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment_name)
            self._experiment_id = exp.experiment_id if exp else self.client.create_experiment(
                self.experiment_name, artifact_location=artifact_location(self.tracking_uri))
        return self._experiment_id

    def _search(self, filter_string: str) -> list:
        """Every run of the experiment matching `filter_string`, all pages."""
        runs, token = [], None
        while True:
            page = self.client.search_runs([self._experiment()], filter_string=filter_string, max_results=1000,
                                           page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    # --- the sweep ----------------------------------------------------------------------------------------------

    def start_sweep(self, sweep_name: str, sweep_path: str, study: str, params: dict | None = None,
                    tags: dict | None = None) -> str | None:
        """Create (or, for a resumed sweep, reopen) the sweep's parent run; returns its id (None offline)."""
        self.study = study
        return self._guard(self._start_sweep, sweep_name, str(sweep_path), study, dict(params or {}),
                           dict(tags or {}))

    def _start_sweep(self, sweep_name, sweep_path, study, params, tags) -> str:
        from mlflow.entities import Param, RunTag

        found = [r for r in self._search(_eq("tags.`gansweep.sweep_path`", sweep_path))
                 if r.data.tags.get("gansweep.sweep_path") == sweep_path and "mlflow.parentRunId" not in r.data.tags]
        tags = {k: str(v) for k, v in tags.items()}
        commit = git_commit()
        if commit:
            tags.setdefault("mlflow.source.git.commit", commit)
        tags.update({"gansweep.sweep_path": sweep_path, "gansweep.study": study, "gansweep.role": "sweep"})
        if found:  # a resumed sweep: reopen the oldest matching parent, keep its original command line
            run = min(found, key=lambda r: r.info.start_time)
            run_id = run.info.run_id
            if "gansweep.command" in tags and "gansweep.command" in run.data.tags:
                tags["gansweep.last_command"] = tags.pop("gansweep.command")
            self.client.update_run(run_id, status="RUNNING")
            logged = set(run.data.params)
        else:
            run_id = self.client.create_run(self._experiment(), run_name=sweep_name).info.run_id
            logged = set()
        new = [Param(k, _param(v)) for k, v in params.items() if k not in logged]
        self.client.log_batch(run_id, params=new, tags=[RunTag(k, v) for k, v in tags.items()])
        if run_id != self.parent_run_id:
            self._runs, self._children_loaded = {}, not found
        self.parent_run_id = run_id
        return run_id

    def _load_children(self) -> None:
        """Index the trial runs that already exist under the parent run (one query), with what each holds."""
        self._children_loaded = True
        for r in self._search(_eq("tags.`mlflow.parentRunId`", self.parent_run_id)):
            tid = r.data.tags.get("gansweep.trial_id")
            if tid is None or tid in self._runs:
                continue
            step = r.data.metrics.get("step")  # the latest 'step' value is the highest step logged
            outcome = r.data.tags.get("gansweep.outcome")
            self._runs[tid] = _Run(r.info.run_id, max_step=step if step is not None else -math.inf,
                                   params=set(r.data.params), finished=r.info.status != "RUNNING",
                                   diverged=outcome == "diverged", outcome=outcome)

    def end_sweep(self, status: str = "FINISHED", artifacts=()) -> None:
        """Log the report files on the parent run and terminate it. Trial runs this tracker opened that are still
        RUNNING in MLflow (the sweep was interrupted) are ended as `interrupted` (KILLED); the check asks MLflow,
        because on a resumed sweep Tune's callback is a copy of the tracker (see `__getstate__`) that ends them."""
        if self.parent_run_id is None:
            return
        for tid, run in list(self._runs.items()):
            if not run.finished:
                current = self._guard(self.client.get_run, run.run_id)
                if current is not None and current.info.status == "RUNNING":
                    self.trial_finished(tid, "interrupted")
        for path in artifacts or ():
            if not os.path.exists(path):
                continue
            if os.path.isdir(path):
                self._guard(self.client.log_artifacts, self.parent_run_id, str(path), "report")
            else:
                self._guard(self.client.log_artifact, self.parent_run_id, str(path), "report")
        self._guard(self.client.set_terminated, self.parent_run_id, status)

    # --- trials -------------------------------------------------------------------------------------------------

    def trial_started(self, trial_id: str, config: dict, run_name: str | None = None) -> str | None:
        """Create (or reopen) the trial's child run and log its params once; returns the run id (None offline)."""
        if self.offline:
            return None
        if self.parent_run_id is None:
            if not self._warned_no_parent:
                self._warned_no_parent = True
                warnings.warn("SweepTracker.trial_started before start_sweep: trials are not tracked", RuntimeWarning,
                              stacklevel=2)
            return None
        return self._guard(self._trial_started, str(trial_id), dict(config), run_name)

    def _trial_started(self, trial_id, config, run_name) -> str:
        from mlflow.entities import Param, RunTag

        params = trial_params(config)
        tags = {"mlflow.parentRunId": self.parent_run_id, "gansweep.trial_id": trial_id,
                "gansweep.arm": params.get("arm", "?"), "gansweep.study": str(config.get("study", self.study))}
        if trial_id not in self._runs and not self._children_loaded:
            self._load_children()
        run = self._runs.get(trial_id)
        if run is None:
            name = run_name or f"{params.get('arm', trial_id)} seed{params.get('seed', '?')}"
            created = self.client.create_run(self._experiment(), run_name=name, tags=tags)
            run = self._runs[trial_id] = _Run(created.info.run_id)
        elif run.finished:  # a trial started again (resume, restart after a failure)
            self.client.update_run(run.run_id, status="RUNNING")
            run.finished = False
        new = {k: v for k, v in params.items() if k not in run.params}
        self.client.log_batch(run.run_id, params=[Param(k, v) for k, v in new.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        run.params |= set(new)
        return run.run_id

    def _ensure_children(self) -> None:
        if not self._children_loaded and self.parent_run_id is not None and not self.offline:
            self._guard(self._load_children)

    def _run(self, trial_id: str) -> _Run | None:
        self._ensure_children()
        return None if self.offline else self._runs.get(str(trial_id))

    def trial_result(self, trial_id: str, result: dict) -> int:
        """Log a result's metrics at `step=result['step']` in one batch, unless that step is already logged.
        Returns how many metric values were logged."""
        run = self._run(trial_id)
        step = result.get("step", result.get("training_iteration"))
        if run is None or step is None or step <= run.max_step:
            return 0
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = {**metrics_of(result), "step": float(step)}
        batch = [Metric(k, v, now, int(step)) for k, v in values.items()]
        for i in range(0, len(batch), 1000):  # MLflow's per-batch limit
            self._guard(self.client.log_batch, run.run_id, metrics=batch[i:i + 1000])
            if self.offline:
                return 0
        run.max_step = step
        run.diverged = run.diverged or result.get("diverged") == 1
        return len(batch)

    def artifact_names(self, trial_id: str, artifact_path: str = "samples") -> set[str]:
        """Names of the files already logged under `artifact_path` of the trial's run (listed once, then cached)."""
        run = self._run(trial_id)
        if run is None:
            return set()
        if run.artifacts is None:
            run.artifacts = {}
        if artifact_path not in run.artifacts:
            listed = self._guard(self.client.list_artifacts, run.run_id, artifact_path)
            if listed is None:
                return set()
            run.artifacts[artifact_path] = {os.path.basename(f.path) for f in listed}
        return run.artifacts[artifact_path]

    def trial_artifact(self, trial_id: str, local_path, artifact_path: str = "samples",
                       name: str | None = None) -> bool:
        """Log a file (a sample grid) on the trial's run as `<artifact_path>/<name>`; skipped when it is missing or
        an artifact of that name exists. Returns whether it was logged."""
        local_path = str(local_path)
        name = name or os.path.basename(local_path)
        run = self._run(trial_id)
        if run is None or not os.path.isfile(local_path) or name in self.artifact_names(trial_id, artifact_path):
            return False
        if self.offline:
            return False
        with tempfile.TemporaryDirectory() as d:
            src = local_path
            if name != os.path.basename(local_path):  # log under another name: a renamed copy
                src = os.path.join(d, name)
                shutil.copyfile(local_path, src)
            self._guard(self.client.log_artifact, run.run_id, src, artifact_path)
        if self.offline:
            return False
        run.artifacts[artifact_path].add(name)
        return True

    def trial_finished(self, trial_id: str, outcome: str) -> None:
        """End the trial's run: FINISHED for finished/diverged/stopped, FAILED for failed, KILLED for interrupted;
        tags `gansweep.outcome` and `gansweep.diverged`."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; allowed: {', '.join(OUTCOMES)}")
        run = self._run(trial_id)
        if run is None:
            return
        from mlflow.entities import RunTag

        diverged = outcome == "diverged" or run.diverged
        tags = [RunTag("gansweep.outcome", outcome), RunTag("gansweep.diverged", str(int(diverged)))]
        self._guard(self.client.log_batch, run.run_id, tags=tags)
        self._guard(self.client.set_terminated, run.run_id, OUTCOMES[outcome])
        run.finished = not self.offline
        run.outcome = outcome

    def run_id(self, trial_id: str) -> str | None:
        """The MLflow run id of a trial (None when unknown or offline)."""
        run = self._run(trial_id)
        return run.run_id if run else None


def _eq(key: str, value: str) -> str:
    """An MLflow filter `key = 'value'` (a quote in the value is escaped the SQL way)."""
    return f"{key} = '{value.replace(chr(39), chr(39) * 2)}'"


def sample_name(step) -> str:
    """Artifact name of the sample grid at `step`: samples/step_000300.png."""
    return f"step_{int(step):06d}.png" if step is not None else "samples.png"


# --- backfill -----------------------------------------------------------------------------------------------------


def backfill(experiment_path, tracker: SweepTracker) -> dict[str, int]:
    """Replay a sweep's stored results into MLflow: every trial under the experiment folder gets its run (created or
    reused under the tracker's parent run), the results and sample grids MLflow lacks, and its outcome. Idempotent.

    The tracker must have a parent run (`start_sweep`). Trials that are not over (still running, or their driver
    died) are left RUNNING: the running sweep's callback, a resume, or `end_sweep` (as `interrupted`) ends them.
    Returns counts: trials, runs_created, metrics_logged, artifacts_logged.
    """
    from sweep.report import _Folder, checkpoint_samples, read_trials

    counts = {"trials": 0, "runs_created": 0, "metrics_logged": 0, "artifacts_logged": 0}
    if tracker.offline or tracker.parent_run_id is None:
        return counts
    folder = _Folder(experiment_path)
    for trial in read_trials(experiment_path):
        counts["trials"] += 1
        known = tracker._run(trial.trial_id)
        existed, before = known is not None, (known.outcome if known is not None and known.finished else None)
        if tracker.trial_started(trial.trial_id, trial.config) is None:
            break  # offline
        counts["runs_created"] += not existed
        for result in trial.results:
            counts["metrics_logged"] += tracker.trial_result(trial.trial_id, result)
        for checkpoint, step, image in checkpoint_samples(trial, folder):
            name = sample_name(step) if step is not None else f"{checkpoint}.png"
            if name not in tracker.artifact_names(trial.trial_id):
                counts["artifacts_logged"] += tracker.trial_artifact(trial.trial_id, folder.local(image), name=name)
        outcome = trial.outcome
        if outcome != "interrupted":
            tracker.trial_finished(trial.trial_id, outcome)
        elif before is not None:  # reopened only to fill gaps: end it as it was
            tracker.trial_finished(trial.trial_id, before if before in OUTCOMES else "interrupted")
    return counts


# --- the Tune adapter ---------------------------------------------------------------------------------------------


def _make_callback_class():
    from ray.tune import Callback

    class MlflowTuneCallback(Callback):
        """A Tune callback that forwards trial events to a `SweepTracker` (Ray >= 2.50 signatures)."""

        def __init__(self, tracker: SweepTracker):
            self.tracker = tracker

        def on_trial_start(self, iteration, trials, trial, **info):
            config = dict(trial.config)
            self.tracker.trial_started(trial.trial_id, config)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.tracker.trial_result(trial.trial_id, result)

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            # Called after on_trial_result of the report that carried this checkpoint: last_result is that report.
            step = trial.last_result.get("step")
            with _CheckpointFile(checkpoint, "samples.png") as path:
                if path:
                    self.tracker.trial_artifact(trial.trial_id, path, name=sample_name(step))

        def on_trial_complete(self, iteration, trials, trial, **info):
            # Completed without an error: short of `steps` means a scheduler (ASHA) or a stopper ended it.
            outcome = trial_outcome(trial.last_result or {}, trial.config, status="TERMINATED")
            self.tracker.trial_finished(trial.trial_id, outcome)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.tracker.trial_finished(trial.trial_id, "failed")

    # Picklable by reference (Tune pickles its RunConfig, callbacks included, into tuner.pkl).
    MlflowTuneCallback.__module__, MlflowTuneCallback.__qualname__ = __name__, "MlflowTuneCallback"
    return MlflowTuneCallback


class _CheckpointFile:
    """Context manager: a local path to one file of a Tune checkpoint (None when absent); remote files are copied
    to a temporary folder for the duration."""

    def __init__(self, checkpoint, name: str):
        self.checkpoint, self.name, self._tmp = checkpoint, name, None

    def __enter__(self) -> str | None:
        import pyarrow.fs

        fs, base = self.checkpoint.filesystem, self.checkpoint.path
        try:
            src = f"{base.rstrip('/')}/{self.name}"
            if fs.get_file_info(src).type != pyarrow.fs.FileType.File:
                return None
            if isinstance(fs, pyarrow.fs.LocalFileSystem):
                return src
            self._tmp = tempfile.TemporaryDirectory()
            dest = os.path.join(self._tmp.name, self.name)
            with fs.open_input_stream(src) as f, open(dest, "wb") as out:
                out.write(f.read())
            return dest
        except OSError as e:
            print(f"gansweep: could not read {self.name} of checkpoint {base}: {e}", file=sys.stderr)
            return None

    def __exit__(self, *exc):
        if self._tmp is not None:
            self._tmp.cleanup()



def __getattr__(name):
    """`MlflowTuneCallback` is built on first access, so `import sweep.tracking` does not import Ray."""
    if name == "MlflowTuneCallback":
        cls = _make_callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SweepTracker", "MlflowTuneCallback", "backfill", "git_commit", "metrics_of", "trial_params",
           "sample_name", "DEFAULT_URI", "DEFAULT_EXPERIMENT", "OUTCOMES"]
