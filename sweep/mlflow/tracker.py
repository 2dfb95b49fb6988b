"""How a sweep talks to MLflow: `SweepTracker`, one parent run per sweep, one child run per trial (and per donor),
written where and as `sweep.mlflow.layout` says. It knows nothing about Tune (the Tune callback, the in-process
runner and the backfill call it), uses `MlflowClient` with explicit run ids (never the fluent active-run stack),
and is idempotent, so a resume, a trial restarted from its checkpoint or a second backfill duplicates no run, param,
(metric, step) entry or image: the parent is found again by its tag `SWEEP_PATH`, a trial's run by `TRIAL_ID`
under it; each run remembers the highest step it logged (results at or below it are skipped), its params and the
steps of its sample grids (tag `SAMPLE_STEPS`).

MLflow must never fail a sweep: every call goes through `_call`. A transient error (server unreachable, 5xx, a
locked database) is retried with exponential backoff; only when it persists does the tracker go offline for the rest
of the sweep (one line on stderr; `gansweep report <path>` backfills later). An error MLflow reports about the request
itself (a bad value) skips that one call with a warning and stays online.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sweep.mlflow import layout as L
from sweep.mlflow.active import source_version
from sweep.mlflow.layout import EXPERIMENT_KIND
from sweep.records import MLFLOW_STATUS, OUTCOMES, metrics_of

DEFAULT_URI = "sqlite:///mlflow.db"  # where a sweep logs unless told otherwise (`sweep.plan.Options`, the CLI)
DEFAULT_PATIENCE = 7.5  # seconds a call keeps retrying a transient failure before the tracker goes offline


def backoff_for(patience: float) -> tuple[float, ...]:
    """The waits between the attempts of a call that fails transiently: doubling from 0.5 s, each at most 30 s,
    adding up to `patience` seconds (7.5 -> 0.5, 1, 2, 4; 0 -> one attempt). A tracking server that restarts
    within the patience loses nothing: every call waits for it."""
    waits, wait, left = [], 0.5, float(patience)
    while left > 1e-9:
        waits.append(min(wait, left))
        left -= waits[-1]
        wait = min(2 * wait, 30.0)
    return tuple(waits)


BACKOFF = backoff_for(DEFAULT_PATIENCE)  # seconds between the attempts of a call that fails transiently
# MLflow error codes about the request itself: retrying cannot help.
REQUEST_ERRORS = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST",
                            "INVALID_STATE", "BAD_REQUEST", "PERMISSION_DENIED", "UNAUTHENTICATED",
                            "MALFORMED_REQUEST"})
# Short HTTP limits so each attempt against an unreachable server costs seconds (set unless already set); the
# retries are ours, with backoff.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}


@contextlib.contextmanager
def sqlite_init_lock(tracking_uri: str):
    """For a sqlite store, hold an exclusive `flock` on its database file: two sweeps starting on a new store at once
    would otherwise both run MLflow's schema migrations and break it ("table _alembic_tmp_experiments already
    exists"). sqlite's own locks are POSIX record locks, which `flock` does not touch; the file is created empty
    (an empty file is an empty sqlite database). Other URIs: no lock."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        yield
        return
    import fcntl

    db = Path(tracking_uri[len(prefix):]).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db, "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def transient(error: Exception) -> bool:
    """Whether retrying may help: anything but an error MLflow reports about the request itself."""
    from mlflow.exceptions import MlflowException

    return not (isinstance(error, MlflowException) and error.error_code in REQUEST_ERRORS)


@dataclass
class _Run:
    """What the tracker knows about one MLflow run."""

    run_id: str  # MLflow's id of the run
    max_step: float = -math.inf  # highest step logged: results at or below it are skipped
    params: dict[str, str] = field(default_factory=dict)  # params already logged
    sample_steps: set[int] = field(default_factory=set)  # steps whose sample grid it holds (tag `SAMPLE_STEPS`)
    finished: bool = False  # ended (not RUNNING) in MLflow
    diverged: bool = False  # a logged result said diverged=1
    outcome: str | None = None  # the gansweep.outcome it was last finished with


class SweepTracker:
    """A sweep's MLflow runs: `start_sweep`, then per trial `trial_started` / `trial_result` / `trial_grid` /
    `trial_weights` / `trial_finished`, then `sweep_summary` and `end_sweep`. Safe on a resumed sweep (runs are found
    again, not duplicated) and when MLflow is down (retries, then one warning, then every call is a no-op)."""

    def __init__(self, tracking_uri: str, experiment_name: str, backoff: tuple[float, ...] = BACKOFF):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.backoff = backoff
        self.offline = False  # set when a call kept failing: every later call is skipped
        self.failed = False  # whether the last MLflow call failed
        self.offline_reason: str | None = None
        self.parent_run_id: str | None = None
        self.study: str | None = None
        self._client = None
        self._experiment_id: str | None = None
        self._runs: dict[str, _Run] = {}  # trial_id -> run
        self._parent: _Run | None = None  # the parent run's images, once one is logged
        self._children_loaded = False  # _runs holds every existing child of the parent run
        if tracking_uri.startswith(("http://", "https://")):
            for k, v in HTTP_ENV.items():
                os.environ.setdefault(k, v)

    # --- every MLflow call --------------------------------------------------------------------------------------

    def _call(self, fn, *args, **kwargs):
        """Run one MLflow operation with retries; its value, or None when it failed (offline, or a rejected
        request). `self.failed` says which it was for calls whose value is None anyway."""
        self.failed = True
        if self.offline:
            return None
        for attempt in range(len(self.backoff) + 1):
            try:
                out = fn(*args, **kwargs)
                self.failed = False
                return out
            except Exception as e:  # noqa: BLE001 -- MLflow must never fail the sweep
                text = str(e).strip()
                reason = text.splitlines()[0] if text else type(e).__name__
                if not transient(e):
                    print(f"gansweep: MLflow rejected a request ({reason}); skipped", file=sys.stderr, flush=True)
                    return None
                if attempt == len(self.backoff):
                    self.offline, self.offline_reason = True, reason
                    print(f"gansweep: MLflow at {self.tracking_uri} unreachable after {attempt + 1} attempts: "
                          f"{reason}; the sweep carries on, run `gansweep report <path>` later to backfill",
                          file=sys.stderr, flush=True)
                    return None
                time.sleep(self.backoff[attempt])

    def __getstate__(self):
        """Picklable (Ray may ship it): keep the identity (URI, experiment, parent run), drop the client and the run
        cache, which a copy reads back from MLflow."""
        state = self.__dict__.copy()
        state.update(_client=None, _runs={}, _parent=None, _children_loaded=False, offline=False, offline_reason=None, failed=False)
        return state

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            with sqlite_init_lock(self.tracking_uri):  # MLflow builds a new sqlite store's schema on first use
                client = MlflowClient(tracking_uri=self.tracking_uri)
                client.search_experiments(max_results=1)
            self._client = client
        return self._client

    def _experiment(self) -> str:
        if self._experiment_id is None:
            exp = self.client.get_experiment_by_name(self.experiment_name)
            if exp is None:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment_name, artifact_location=L.artifact_location(self.tracking_uri),
                        tags=EXPERIMENT_KIND)
                except Exception as e:  # another sweep made it between the look-up and now: use that one
                    if getattr(e, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                        raise
                    self._experiment_id = self.client.get_experiment_by_name(self.experiment_name).experiment_id
            else:
                self._experiment_id = exp.experiment_id
                for k, v in EXPERIMENT_KIND.items():  # an experiment made by an older version, or by hand
                    if exp.tags.get(k) != v:
                        self.client.set_experiment_tag(exp.experiment_id, k, v)
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
        return self._call(self._start_sweep, sweep_name, str(sweep_path), study, dict(params or {}), dict(tags or {}))

    def _start_sweep(self, sweep_name, sweep_path, study, params, tags) -> str:
        from mlflow.entities import Param, RunTag

        found = self._sweep_run(sweep_path)
        tags = {k: str(v) for k, v in tags.items()}
        tags.setdefault(L.GIT_COMMIT, source_version())
        tags.update({L.SWEEP_PATH: sweep_path, L.STUDY: study, L.ROLE: "sweep"})
        if found:  # a resumed sweep: reopen its parent
            run = found
            run_id = run.info.run_id
            self.client.update_run(run_id, status="RUNNING")
            logged = set(run.data.params)
        else:
            run_id = self.client.create_run(self._experiment(), run_name=sweep_name).info.run_id
            logged = set()
        new = [Param(k, L.param_value(v)) for k, v in params.items() if k not in logged]
        self.client.log_batch(run_id, params=new, tags=[RunTag(k, v) for k, v in tags.items()])
        if run_id != self.parent_run_id:
            self._runs, self._children_loaded = {}, not found
        self.parent_run_id = run_id
        return run_id

    def _sweep_run(self, sweep_path: str):
        """The parent run of the sweep at `sweep_path` (by its tag `SWEEP_PATH`; the oldest, should a store hold
        more), or None."""
        found = [r for r in self._search(L.tag_filter(L.SWEEP_PATH, sweep_path))
                 if r.data.tags.get(L.ROLE) == "sweep"]
        return min(found, key=lambda r: r.info.start_time) if found else None

    def attach(self, sweep_path: str) -> str | None:
        """Log to the existing parent run of the sweep at `sweep_path` (`sweep_summary`) without reopening it: its
        status stays what the sweep ended with. Returns its id; None when the store has no such run (nothing is
        created) or could not be reached (`offline` then says why)."""
        def find():
            if self.client.get_experiment_by_name(self.experiment_name) is None:
                return None
            return self._sweep_run(str(sweep_path))

        run = self._call(find)
        if run is None:
            return None
        if run.info.run_id != self.parent_run_id:
            self._runs, self._children_loaded = {}, False
        self.parent_run_id = run.info.run_id
        return self.parent_run_id

    def _load_children(self) -> None:
        """Index the runs that already exist under the parent run (one query), with what each holds."""
        for r in self._search(L.tag_filter(L.PARENT, self.parent_run_id)):
            tid = r.data.tags.get(L.TRIAL_ID)
            if tid is None or tid in self._runs:
                continue
            step = r.data.metrics.get("step")  # the latest 'step' value is the highest step logged
            outcome = r.data.tags.get(L.OUTCOME)
            self._runs[tid] = _Run(r.info.run_id, max_step=step if step is not None else -math.inf,
                                   params=dict(r.data.params), finished=r.info.status != "RUNNING",
                                   diverged=outcome == "diverged", outcome=outcome,
                                   sample_steps={int(s) for s in r.data.tags.get(L.SAMPLE_STEPS, "").split()})
        self._children_loaded = True

    def sweep_summary(self, table=None, metrics: dict | None = None, tags: dict | None = None, files=(),
                      table_file: str = L.SUMMARY_TABLE) -> None:
        """What the parent run shows: a table (`table_file`: the UI's table view), metrics, tags and report files
        (under `report/`). A metric it holds with the same value is not logged again (a backfill after a live sweep
        adds nothing)."""
        if self.parent_run_id is None:
            return
        from mlflow.entities import Metric, RunTag

        if table is not None and len(table):
            self._call(self.client.log_table, self.parent_run_id, table, table_file)
        now = int(time.time() * 1000)
        metrics = {k: float(v) for k, v in (metrics or {}).items() if v is not None}
        current = self._call(self.client.get_run, self.parent_run_id) if metrics else None
        held = current.data.metrics if current is not None else {}
        values = [Metric(k, v, now, 0) for k, v in metrics.items()
                  if not (k in held and (held[k] == v or (math.isnan(held[k]) and math.isnan(v))))]
        self._call(self.client.log_batch, self.parent_run_id, metrics=values,
                   tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()])
        for path in files or ():
            if os.path.isfile(path):
                self._call(self.client.log_artifact, self.parent_run_id, str(path), L.REPORT_DIR)

    def end_sweep(self, status: str = "FINISHED") -> None:
        """Terminate the parent run. Trial runs this tracker opened that are still RUNNING in MLflow (the sweep was
        interrupted) end as `interrupted` (KILLED)."""
        if self.parent_run_id is None:
            return
        for tid, run in list(self._runs.items()):
            if not run.finished:
                current = self._call(self.client.get_run, run.run_id)
                if current is not None and current.info.status == "RUNNING":
                    self.trial_finished(tid, "interrupted")
        self._call(self.client.set_terminated, self.parent_run_id, status)

    # --- trials -------------------------------------------------------------------------------------------------

    def trial_started(self, trial_id: str, params: dict, run_name: str, *, role: str = "trial",
                      tags: dict | None = None) -> str | None:
        """Create (or reopen) the child run of a trial (or donor) and log its params once; returns the run id."""
        if self.offline:
            return None
        if self.parent_run_id is None:
            warnings.warn("SweepTracker.trial_started before start_sweep: trials are not tracked", RuntimeWarning,
                          stacklevel=2)
            return None
        return self._call(self._trial_started, str(trial_id), {k: L.param_value(v) for k, v in params.items()}, run_name,
                          role, dict(tags or {}))

    def _trial_started(self, trial_id, params, run_name, role, tags) -> str:
        from mlflow.entities import Param, RunTag

        tags = {**{k: str(v) for k, v in tags.items()}, L.PARENT: self.parent_run_id, L.TRIAL_ID: trial_id,
                L.ROLE: role, L.STUDY: str(self.study)}
        if trial_id not in self._runs and not self._children_loaded:
            self._load_children()
        run = self._runs.get(trial_id)
        if run is None:
            created = self.client.create_run(self._experiment(), run_name=run_name, tags=tags)
            run = self._runs[trial_id] = _Run(created.info.run_id)
        elif run.finished:  # a trial started again (resume, restart after a failure)
            self.client.update_run(run.run_id, status="RUNNING")
            run.finished = False
        new = {k: v for k, v in params.items() if k not in run.params}
        self.client.log_batch(run.run_id, params=[Param(k, v) for k, v in new.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        run.params.update(new)
        return run.run_id

    def _run(self, trial_id: str) -> _Run | None:
        if not self._children_loaded and self.parent_run_id is not None and not self.offline:
            self._call(self._load_children)
        return None if self.offline else self._runs.get(str(trial_id))

    def trial_result(self, trial_id: str, result: dict) -> int:
        """Log a result's metrics at `step=result['step']` in one batch, unless that step is already logged.
        Returns how many metric values were logged."""
        run = self._run(trial_id)
        step = result.get("step", result.get("training_iteration"))
        if run is None or step is None or step <= run.max_step:
            return 0
        from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, RunTag

        now = int(time.time() * 1000)
        values = {**metrics_of(result), "step": float(step)}
        batch = [Metric(k, v, now, int(step)) for k, v in values.items()]
        first = run.max_step == -math.inf  # the first result also says where it ran and on which data
        tags = [RunTag(L.DEVICE, result["device"])] if first and isinstance(result.get("device"), str) else []
        inputs = [DatasetInput(Dataset(**fields), [InputTag(L.CONTEXT, context)])
                  for fields, context in L.dataset_inputs(run.params, result)] if first else []
        if inputs:
            self._call(self.client.log_inputs, run.run_id, inputs)
        for i in range(0, len(batch), 1000):  # MLflow's per-batch limit
            self._call(self.client.log_batch, run.run_id, metrics=batch[i:i + 1000], tags=tags if i == 0 else [])
            if self.failed:
                return 0  # offline, or rejected: the step counts as not logged
        run.max_step = step
        run.diverged = run.diverged or result.get("diverged") == 1
        return len(batch)

    def tag_experiment(self, tags: dict[str, str]) -> None:
        """Set the experiment's tags that differ from `tags`."""
        held = self._call(lambda: self.client.get_experiment(self._experiment()).tags) or {}
        for k, v in tags.items():
            if held.get(k) != v:
                self._call(self.client.set_experiment_tag, self._experiment_id, k, v)

    def has_grid(self, trial_id: str, step: int) -> bool:
        """Whether the trial's run already holds the sample grid of `step` (its tag `SAMPLE_STEPS` says so)."""
        run = self._run(trial_id)
        return run is not None and int(step) in run.sample_steps

    def trial_grid(self, trial_id: str, png_path, step: int) -> bool:
        """Log a sample grid as the trial's image `IMAGE_KEY` at `step` (the UI's image view); skipped when the file
        is missing or that step is already there. Returns whether it was logged."""
        run = self._run(trial_id)
        return run is not None and self._image(run, png_path, L.IMAGE_KEY, step)

    def sweep_image(self, png_path, step: int) -> bool:
        """Log an image of the parent run as `ARMS_KEY` at `step` (every arm side by side), once."""
        if self.parent_run_id is None or self.offline:
            return False
        if self._parent is None or self._parent.run_id != self.parent_run_id:
            run = self._call(self.client.get_run, self.parent_run_id)
            if run is None:
                return False
            steps = {int(s) for s in run.data.tags.get(L.SAMPLE_STEPS, "").split()}
            self._parent = _Run(self.parent_run_id, sample_steps=steps)
        return self._image(self._parent, png_path, L.ARMS_KEY, step)

    def _image(self, run: _Run, png_path, key: str, step: int) -> bool:
        if step is None or not os.path.isfile(png_path) or int(step) in run.sample_steps:
            return False
        from mlflow.entities import RunTag
        from PIL import Image

        with Image.open(png_path) as im:
            image = im.convert("RGB")
        self._call(self.client.log_image, run.run_id, image, key=key, step=int(step), synchronous=True)
        if self.failed:
            return False
        run.sample_steps.add(int(step))
        steps = " ".join(map(str, sorted(run.sample_steps)))
        self._call(self.client.log_batch, run.run_id, tags=[RunTag(L.SAMPLE_STEPS, steps)])
        return True

    def trial_weights(self, trial_id: str, path) -> bool:
        """Log the final generator weights (`model/generator.pt`) once; whether they were logged now."""
        run = self._run(trial_id)
        if run is None or not os.path.isfile(path):
            return False
        listed = self._call(self.client.list_artifacts, run.run_id, L.MODEL_DIR)
        if listed is None or os.path.basename(path) in {os.path.basename(f.path) for f in listed}:
            return False
        self._call(self.client.log_artifact, run.run_id, str(path), L.MODEL_DIR)
        return not self.failed

    def trial_finished(self, trial_id: str, outcome: str) -> None:
        """End the trial's run with the status `sweep.records.MLFLOW_STATUS` gives its outcome; tags
        `gansweep.outcome` and `gansweep.diverged`."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; allowed: {', '.join(OUTCOMES)}")
        run = self._run(trial_id)
        if run is None:
            return
        from mlflow.entities import RunTag

        diverged = outcome == "diverged" or run.diverged
        tags = [RunTag(L.OUTCOME, outcome), RunTag(L.DIVERGED, str(int(diverged)))]
        self._call(self.client.log_batch, run.run_id, tags=tags)
        self._call(self.client.set_terminated, run.run_id, MLFLOW_STATUS[outcome])
        run.finished = not self.offline
        run.outcome = outcome

    def known(self, trial_id: str) -> tuple[bool, str | None]:
        """(whether the trial has a run, the outcome it was last finished with or None)."""
        run = self._run(trial_id)
        return run is not None, (run.outcome if run is not None and run.finished else None)

    def run_id(self, trial_id: str) -> str | None:
        """The MLflow run id of a trial (None when unknown or offline)."""
        run = self._run(trial_id)
        return run.run_id if run else None

