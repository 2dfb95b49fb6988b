"""Every trial of a sweep as a typed record: the one reader of trial folders, and the one owner of trial names, the
outcome rule and how an outcome shows in MLflow.

A sweep folder (a local path or a storage URI such as s3://...), as Tune or the in-process runner leaves it:

    <SWEEP>/gansweep.json                  the resolved plan (`sweep.plan`)
    <SWEEP>/inputs.json                    what the driver prepared per input (`INPUTS_FILE`): reference, floor,
                                           donor
    <SWEEP>/driver.json                    the commands that ran it and their resources (`DRIVER_FILE`)
    <SWEEP>/experiment_state-*.json        Tune's state, read through its public `tune.ExperimentAnalysis`
    <SWEEP>/<trial>/params.json            the trial's flat TrialConfig
    <SWEEP>/<trial>/result.json            one JSON line per report; a restored trial repeats steps (the last wins)
    <SWEEP>/<trial>/checkpoint_NNNNNN/     state.pt and the sample grid (`gan.train.grid_name`); the final one
                                           also generator.pt and samples.parquet (`trainables.files`)
    <SWEEP>/<trial>/error.txt              the trial raised

`read_sweep` works on a finished, a running or a dead sweep and needs no MLflow. The report, MLflow tracking and its
backfill, the in-process runner, the progress table, the benchmarks and the tests read trials through this module
only: a record carries the metrics of every step (`history`) and when, where and by which process every report was
made (`timeline`). `sweep_status` says how the whole sweep ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import numbers
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass, field
from typing import Iterable

from gan import storage
from gan.config import TrialConfig
from gan.train import grid_step
from trainables.files import FINAL_SAMPLES_FILE, WEIGHTS_FILE

INPUTS_FILE = "inputs.json"  # the sweep's prepared inputs, written by the driver beside the trials
DRIVER_FILE = "driver.json"  # what the driver ran with: its command lines and resources (`read_driver`)

# --- outcomes -----------------------------------------------------------------------------------------------------

OUTCOMES = ("finished", "stopped", "diverged", "failed", "interrupted")
# How each outcome ends the trial's MLflow run: a diverged GAN and a trial a scheduler stopped are results.
MLFLOW_STATUS = {"finished": "FINISHED", "stopped": "FINISHED", "diverged": "FINISHED", "failed": "FAILED",
                 "interrupted": "KILLED"}


def outcome(last: dict, config: dict, *, status: str | None = None, error: bool = False) -> str:
    """How a trial ended, from its last report, its config and Tune's status (None when unknown).

    diverged: its last report says diverged=1. failed: Tune's status is ERROR (or, with no status, an error file).
    finished: it used its whole budget (reached `steps`, or `time_budget` training seconds where one is set).
    stopped: Tune terminated it earlier (a scheduler such as ASHA). interrupted: none of these: still running,
    pending, or its driver died (a resume continues it).
    """
    if last.get("diverged") == 1:
        return "diverged"
    if status == "ERROR" or (status is None and error):
        return "failed"
    step, steps = last.get("step"), int(config.get("steps", 0) or 0)
    budget = float(config.get("time_budget", 0) or 0)
    if step is not None and (0 < steps <= step or 0 < budget <= float(last.get("train_seconds", 0) or 0)):
        return "finished"
    if status == "TERMINATED":
        return "stopped"
    return "interrupted"


def sweep_status(outcomes: Iterable[str]) -> str:
    """How a sweep's MLflow parent run ends, from its trials' outcomes (a Counter of them works too): FAILED when any
    trial failed or did not finish (interrupted), else FINISHED; a diverged GAN or a scheduler's stop is a result.
    `gansweep run`, `resume` and `report` all end the parent this way, and exit 1 when it is FAILED."""
    return "FAILED" if {"failed", "interrupted"} & set(outcomes) else "FINISHED"


# --- names --------------------------------------------------------------------------------------------------------


def arm_of(config: dict) -> str:
    """The arm label of a flat config (`TrialConfig.arm`); '?' for a config this version cannot read."""
    try:
        return TrialConfig(**config).arm
    except (TypeError, ValueError):
        return "?"


def scored_generator_of(config: dict) -> str:
    """Which generator a trial samples and scores (`TrialConfig.scored_generator`: 'ema' or 'raw'); '?' for a config
    this version cannot read."""
    try:
        return TrialConfig(**config).scored_generator
    except (TypeError, ValueError):
        return "?"


def trial_name(config: dict, trial_id: str) -> str:
    """What tables, logs and MLflow call a trial: its arm, seed and id, e.g. `hflip+contrast@200-s1-7c1f2_00004`."""
    return f"{arm_of(config)}-s{config.get('seed', 0)}-{trial_id}"


def trial_dirname(config: dict, trial_id: str) -> str:
    """Its folder: the trial name with only [A-Za-z0-9_.-] (object stores and shells dislike '+' and '@')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", trial_name(config, trial_id))


def inprocess_trial_id(index: int, config: dict) -> str:
    """The id of the `index`-th in-process trial, shaped like Tune's (`00009_2e4523de`): its position and a hash of
    its config, so a resumed in-process sweep finds its trials again."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{index:05d}_{digest}"


# --- results ------------------------------------------------------------------------------------------------------

# Keys Tune (or the in-process runner) adds to every result: bookkeeping, not measurements.
TUNE_KEYS = frozenset({
    "timestamp", "checkpoint_dir_name", "should_checkpoint", "done", "training_iteration", "trial_id", "date",
    "time_this_iter_s", "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "experiment_tag", "warmup_time", "timesteps_total", "episodes_total",
    "timesteps_since_restore", "episodes_this_iter", "timesteps_this_iter",
})


def metrics_of(result: dict) -> dict[str, float]:
    """The numeric (Python or NumPy, not bool), non-bookkeeping values of a result, as floats (NaN/inf kept)."""
    out = {}
    for k, v in result.items():
        if k in TUNE_KEYS or not isinstance(v, numbers.Real) or isinstance(v, bool) or type(v).__name__ == "bool_":
            continue
        out[k] = float(v)
    return out


def parse_result_lines(text: str) -> list[dict]:
    """result.json -> one dict per line (a line cut short by a killed process is dropped)."""
    rows = []
    for line in text.splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def one_per_step(rows: list[dict]) -> list[dict]:
    """One result per step, in step order: a restored trial re-reports the steps after its checkpoint, and the last
    report of a step wins."""
    by_step: dict = {}
    for i, row in enumerate(rows):
        by_step[row.get("step", row.get("training_iteration", i))] = row
    return [by_step[k] for k in sorted(by_step, key=lambda s: (s is None, s))]


# --- the record ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleGrid:
    """One sample grid a trial's checkpoint still holds."""

    step: int  # the evaluation step it shows (from its name, `gan.train.grid_step`)
    path: str  # the PNG in the sweep's storage (`SweepFolder.local` gives a local file)


@dataclass(frozen=True)
class ReportLine:
    """When, where and by which process one report was made: a line of result.json, whose metrics the record's
    `history` holds. Missing values are None (an in-process trial has no Ray node)."""

    step: int | None  # the training step the report is about
    timestamp: float | None  # when it was made, seconds since the epoch
    time_total_s: float | None  # seconds inside the trainable so far, as Tune counts them (in-process: the same)
    pid: int | None  # the process that ran the trainable
    node_id: str | None  # the Ray node that process ran on

    @classmethod
    def of(cls, row: dict) -> "ReportLine":
        return cls(step=row.get("step"), timestamp=row.get("timestamp"), time_total_s=row.get("time_total_s"),
                   pid=row.get("pid"), node_id=row.get("node_id"))


@dataclass
class TrialRecord:
    """One trial as its folder records it."""

    trial_id: str  # Tune's trial id, or `inprocess_trial_id`
    name: str  # `trial_name`
    path: str  # the trial folder (local path or URI)
    config: dict  # the flat TrialConfig (params.json)
    arm: str  # `TrialConfig.arm`
    seed: int
    outcome: str  # see `outcome`
    history: list[dict]  # one entry per reported step, in step order: the report's metrics (`metrics_of`)
    status: str | None = None  # Tune's trial status; None for in-process trials
    timeline: list[ReportLine] = field(default_factory=list)  # every report in order, a restored trial's repeats too
    grids: list[SampleGrid] = field(default_factory=list)  # sample grids of the checkpoints still on disk, by step
    weights: str | None = None  # the final generator weights (generator.pt), once the trial finished
    final_samples: str | None = None  # its final evaluation samples (a gan.imagetable Parquet table)
    text: dict[str, str] = field(default_factory=dict)  # its first report's text values: device, data digests

    @property
    def last(self) -> dict:
        """The metrics of the last step reported (the last report of that step)."""
        return self.history[-1] if self.history else {}

    @property
    def reports(self) -> int:
        """Reports made, a restored trial's repeats included (Tune's training_iteration of the last one)."""
        return len(self.timeline)

    @property
    def mlflow_status(self) -> str:
        return MLFLOW_STATUS[self.outcome]


class SweepFolder:
    """Read-only access to a sweep folder, a local path or a storage URI (reads go through `gan.storage`)."""

    def __init__(self, root):
        self.remote = storage.is_uri(root)
        self.root = str(root).rstrip("/") if self.remote else storage.absolute(root)
        self._tmp = None

    def join(self, *parts) -> str:
        return posixpath.join(self.root, *parts) if self.remote else os.path.join(self.root, *parts)

    def listdir(self, path: str | None = None) -> tuple[list[str], list[str]]:
        """(sub-folder names, file names) of `path` (default: the root); empty when it doesn't exist."""
        return storage.listdir(path or self.root)

    def read_text(self, path: str) -> str:
        return storage.read_text(path)

    def local(self, path: str) -> str:
        """A local path to the file at `path` (a remote file is copied to a temporary folder first, once)."""
        if not self.remote:
            return path
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="gansweep_sweep_")
        where = hashlib.sha256(path.encode()).hexdigest()[:16]  # one folder per file: the name stays the same
        return storage.fetch(path, os.path.join(self._tmp, where))


def _tune_trials(folder: SweepFolder) -> dict[str, tuple[str, str]]:
    """trial folder name -> (trial id, status), through Tune's public ExperimentAnalysis; {} for a folder Tune never
    wrote its state to (an in-process sweep, or a driver killed before its first save)."""
    _, files = folder.listdir()
    if not any(f.startswith("experiment_state") and f.endswith(".json") for f in files):
        return {}
    from ray.tune import ExperimentAnalysis  # Ray takes seconds to import: only Tune's folders need it

    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it warns about trials without results yet; we count those ourselves
    try:
        analysis = ExperimentAnalysis(folder.root)
    finally:
        quiet.setLevel(level)
    return {posixpath.basename(str(t.path).rstrip("/")): (t.trial_id, t.status) for t in analysis.trials}


_TUNE_TRIAL_ID = re.compile(r"-((?:[0-9a-f]{5}|\d{5})_[0-9a-f]{5,8})$")


def read_trial(folder: SweepFolder, name: str, tune_state: tuple[str, str] | None = None) -> TrialRecord | None:
    """The record of trial folder `name`, or None when it is not a trial folder (no params.json / result.json)."""
    path = folder.join(name)
    dirs, files = folder.listdir(path)
    if "params.json" not in files and "result.json" not in files:
        return None
    lines = parse_result_lines(folder.read_text(folder.join(name, "result.json"))) if "result.json" in files else []
    config = json.loads(folder.read_text(folder.join(name, "params.json"))) if "params.json" in files else {}
    if not config and lines:
        config = dict(lines[-1].get("config") or {})
    match = _TUNE_TRIAL_ID.search(name)
    trial_id = (tune_state[0] if tune_state else None) or next(
        (r["trial_id"] for r in lines if r.get("trial_id")), None) or (match.group(1) if match else name)
    status = tune_state[1] if tune_state else None
    rows = one_per_step(lines)
    checkpoints = sorted(d for d in dirs if d.startswith("checkpoint_") and not d.endswith(".tmp"))
    grids, weights, final = [], None, None
    for ckpt in checkpoints:
        inside = folder.listdir(folder.join(name, ckpt))[1]
        grids += [SampleGrid(grid_step(f), folder.join(name, ckpt, f)) for f in inside if grid_step(f) is not None]
        if WEIGHTS_FILE in inside:
            weights = folder.join(name, ckpt, WEIGHTS_FILE)
        if FINAL_SAMPLES_FILE in inside:
            final = folder.join(name, ckpt, FINAL_SAMPLES_FILE)
    last = rows[-1] if rows else {}
    return TrialRecord(
        trial_id=trial_id, name=trial_name(config, trial_id), path=path, config=config, arm=arm_of(config),
        seed=int(config.get("seed", 0)),
        outcome=outcome(last, config, status=status, error=bool({"error.txt", "error.pkl"} & set(files))),
        history=[{**metrics_of(r), "step": r.get("step")} for r in rows], status=status,
        timeline=[ReportLine.of(r) for r in lines], grids=sorted(grids, key=lambda g: g.step), weights=weights,
        final_samples=final, text={k: v for k, v in (lines[0] if lines else {}).items()
                                   if isinstance(v, str) and k not in TUNE_KEYS})


def read_inputs(path) -> list[dict]:
    """The driver's `inputs.json`: per input, which reference it used and why, its floor and its leakage probe's
    rates ([] before it exists)."""
    folder = SweepFolder(path)
    if INPUTS_FILE not in folder.listdir()[1]:
        return []
    return json.loads(folder.read_text(folder.join(INPUTS_FILE)))


def read_driver(path) -> dict:
    """The driver's `driver.json`: `command` (the command line that started the sweep), `last_command` (the last
    resume's), `trial_resources` and `cluster_resources`; {} before it exists."""
    folder = SweepFolder(path)
    if DRIVER_FILE not in folder.listdir()[1]:
        return {}
    return json.loads(folder.read_text(folder.join(DRIVER_FILE)))


def reference_table(path) -> str | None:
    """A local path to the sweep's held-out real images (an image table the driver wrote beside the trials), or None
    when no input of the sweep had a held-out reference."""
    folder = SweepFolder(path)
    for entry in read_inputs(path):
        if entry.get("held_out") and entry.get("reference_table"):
            return folder.local(folder.join(*entry["reference_table"].split("/")))
    return None


def read_sweep(path) -> list[TrialRecord]:
    """Every trial of the sweep at `path` (a local folder or a URI), sorted by trial id."""
    folder = SweepFolder(path)
    states = _tune_trials(folder)
    records = (read_trial(folder, name, states.get(name)) for name in folder.listdir()[0])
    return sorted((r for r in records if r is not None), key=lambda r: r.trial_id)

