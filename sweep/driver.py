"""Run a study as a Ray Tune sweep (or in-process), tracked in MLflow, and resume one whose driver died.

The flow of `run_sweep`: resolve and validate every trial config (before Ray starts), write the sweep record
(`gansweep.json` in the experiment folder), start the MLflow parent run, prepare each distinct input once (real
set, donor GAN for `generated`, reference features), then fit a Tuner whose trials share those inputs through the
object store. `resume_sweep` reads the record back and restores the Tuner, running only what did not finish.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gan.config import TrialConfig
from trainables import storage

RECORD = "gansweep.json"


@dataclass
class SweepOptions:
    storage: str = "./gansweep_results"  # local folder or URI (s3://...) for Tune results, checkpoints, donor cache
    name: str | None = None  # experiment folder name; default <study>-<timestamp>
    mlflow_uri: str = "sqlite:///mlflow.db"  # MLflow tracking URI (sqlite file or an http server)
    experiment: str = "gansweep"  # MLflow experiment
    address: str | None = None  # join this Ray cluster ("auto" = the one this machine belongs to)
    in_process: bool = False  # run trials one by one in this process (debugging; no Ray workers)
    cpus_per_trial: float | None = None  # None = 1 under Ray; every core in-process
    gpus_per_trial: float | None = None  # None = 1 when the cluster has GPUs, else 0; fractions pack trials
    max_concurrent: int | None = None
    scheduler: str = "fifo"  # fifo | asha
    metric: str | None = None  # what ASHA/Optuna optimise and the report ranks by (default: the study's)
    mode: str | None = None  # min | max
    max_failures: int = 2  # restarts of a trial from its last checkpoint after a worker dies
    keep_checkpoints: int = 2
    num_cpus: int | None = None  # CPUs of the one-node Ray started when no --address is given
    cache_dir: str | None = None  # image-set and feature caches (default ~/.cache/gansweep)
    verbose: int = 1
    argv: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class Sweep:
    """A resolved sweep: its study space, the validated configs (grid studies) and where it lives."""

    study: str
    space: object  # search_spaces.StudySpace
    configs: list[TrialConfig]  # every trial (grid) or the fixed part of each key (optuna: one per input key)
    path: str  # <storage>/<name>
    name: str
    metric: str
    mode: str
    seeds: int = 1
    overrides: dict = field(default_factory=dict)
    num_samples: int | None = None  # Optuna trials (None = the study's default)
    only: list[str] = field(default_factory=list)  # arm labels to keep (grid studies), empty = all


# --- resolving ------------------------------------------------------------------------------------------------


def resolve_sweep(study: str, *, seeds: int = 1, overrides: dict | None = None, num_samples: int | None = None,
                  only: list[str] | None = None, opts: SweepOptions) -> Sweep:
    """Everything that can be checked without data or Ray: raises ValueError with one line on bad input."""
    from gan.sources import resolve_source
    from search_spaces import build_study, sample_configs

    overrides = dict(overrides or {})
    if isinstance(overrides.get("dataset"), (list, tuple)) and len(overrides["dataset"]) == 1:
        overrides["dataset"] = overrides["dataset"][0]
    space = build_study(study, seeds=seeds, overrides=overrides, num_samples=num_samples)
    # Trials run in Tune's trial folders: rebuild with the study's own data roots made absolute.
    datasets = [space.constants["dataset"]] if space.configs is None else \
        list(dict.fromkeys(c["dataset"] for c in space.configs))
    resolved = [resolve_source(d) for d in datasets]
    if resolved != datasets:
        overrides["dataset"] = resolved[0] if len(resolved) == 1 else resolved
        space = build_study(study, seeds=seeds, overrides=overrides, num_samples=num_samples)
    if only:
        space = _only_arms(space, only)
    if space.configs is not None:
        raw = list(space.configs)
    else:  # optuna: the fixed part decides the inputs; sample a few points to validate the space end to end
        raw = sample_configs(space, n=min(space.num_samples, 8))
    configs = _configs(raw)
    metric = opts.metric or space.metric
    mode = opts.mode or space.mode
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    known = metric_names(configs)
    if metric not in known:
        raise ValueError(f"metric {metric!r} is not reported by this study; allowed: {', '.join(sorted(known))}")
    if opts.in_process and storage.is_uri(opts.storage):
        raise ValueError(f"--in-process writes trials to a local folder; give a local --storage, not {opts.storage}")
    if opts.scheduler not in ("fifo", "asha"):
        raise ValueError(f"scheduler {opts.scheduler!r} is unknown; allowed: fifo, asha")
    opts.mlflow_uri = absolute_mlflow_uri(opts.mlflow_uri)
    name = opts.name or f"{study}-{time.strftime('%Y%m%d-%H%M%S')}"
    path = storage.join(storage.absolute(opts.storage), name)
    return Sweep(study=study, space=space, configs=configs, path=path, name=name, metric=metric, mode=mode,
                 seeds=seeds, overrides=overrides, num_samples=num_samples, only=list(only or []))


def _only_arms(space, only: list[str]):
    """The study restricted to the arms named in `only` (labels as `gansweep run --dry-run` prints them)."""
    if space.configs is None:
        raise ValueError(f"--only picks arms of a grid study; {space.name} is an Optuna search")
    arms = [TrialConfig(**c).arm for c in space.configs]
    labels = list(dict.fromkeys(arms))
    unknown = [a for a in only if a not in labels]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r} in study {space.name}; allowed: {', '.join(labels)}")
    kept = tuple(c for c, arm in zip(space.configs, arms) if arm in only)
    return dataclasses.replace(space, configs=kept, num_samples=len(kept))


def absolute_mlflow_uri(uri: str) -> str:
    """`sqlite:///mlflow.db` -> `sqlite:////abs/cwd/mlflow.db`, so resume/report later find the same store."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + os.path.abspath(uri[len(prefix):])
    return uri


def metric_names(configs: list[TrialConfig]) -> set[str]:
    """The metric keys the trials of `configs` report."""
    names = {"loss_d", "loss_g", "d_real", "d_fake", "images_per_s"}
    for ext in {c.extractor for c in configs}:
        names |= {f"{m}_{ext}" for m in ("is_mean", "is_std", "fid", "kid_mean", "kid_std", "precision", "recall")}
    return names


def dry_run_lines(sweep: Sweep, as_json: bool) -> list[str]:
    """One line per trial config (grid studies; optuna: sampled points, marked as such)."""
    from gan.config import params

    lines = []
    sampled = sweep.space.configs is None
    for cfg in sweep.configs:
        row = {k: (v if not isinstance(v, tuple) else params(cfg)[k]) for k, v in dataclasses.asdict(cfg).items()}
        row["arm"] = cfg.arm
        if sampled:
            row["sampled"] = True
        lines.append(json.dumps(row, sort_keys=True) if as_json else
                     f"{cfg.arm:<24} dataset={cfg.dataset} seed={cfg.seed} size={cfg.image_size} "
                     f"steps={cfg.steps} extractor={cfg.extractor}")
    return lines


# --- running ---------------------------------------------------------------------------------------------------


def _groups(configs: list[TrialConfig]) -> dict[str, list[TrialConfig]]:
    from trainables.inputs import input_key

    groups: dict[str, list[TrialConfig]] = {}
    for c in configs:
        groups.setdefault(input_key(c), []).append(c)
    return groups


def _configs(raw: list[dict]) -> list[TrialConfig]:
    return [TrialConfig(**c) for c in raw]


def _inputs_needed(sweep: Sweep) -> list[TrialConfig]:
    """Configs that span every input a trial may ask for (Optuna points are drawn at run time: take every point the
    space can produce, so the donor samples cover the largest `generated` count)."""
    if sweep.space.configs is not None:
        return sweep.configs
    from search_spaces import possible_configs

    return _configs(possible_configs(sweep.space))


def _log_donor(tracker, donor: dict) -> None:
    """The donor GAN as an MLflow run of its own under the sweep."""
    run_id = f"donor-{donor['key']}"
    tracker.trial_started(run_id, donor["config"], run_name=f"donor {donor['key']}")
    tracker.trial_result(run_id, {"step": donor["config"]["steps"], "train_seconds": donor.get("train_seconds", 0.0)})
    grids = sorted(Path(donor["path"]).glob("samples_step*.png")) if not storage.is_uri(donor["path"]) else []
    if grids:
        tracker.trial_artifact(run_id, str(grids[-1]), name=grids[-1].name)
    tracker.trial_finished(run_id, "finished")


def prepare(sweep: Sweep, opts: SweepOptions, tracker=None, use_ray: bool = True) -> dict:
    """Prepare every distinct input once (as Ray tasks with a trial's resources, or here in-process)."""
    from trainables.inputs import prepare_inputs

    groups = _groups(_inputs_needed(sweep))
    donor_dir = storage.join(storage.absolute(opts.storage), "donors")
    if use_ray:
        import ray

        task = ray.remote(num_cpus=opts.cpus_per_trial or 1, num_gpus=opts.gpus_per_trial or 0)(prepare_inputs)
        refs = {k: task.remote(g, donor_dir, opts.cache_dir) for k, g in groups.items()}
        inputs = {k: ray.get(r) for k, r in refs.items()}
    else:
        inputs = {k: prepare_inputs(g, donor_dir, opts.cache_dir) for k, g in groups.items()}
    if tracker is not None:
        for key, inp in inputs.items():
            if inp.donor and inp.donor.get("trained"):
                _log_donor(tracker, inp.donor)
    return inputs


def check_new(sweep: Sweep) -> None:
    """A new sweep must not write into an existing one (its results and checkpoints would be mixed up)."""
    if storage.exists(storage.join(sweep.path, RECORD)):
        raise ValueError(f"{sweep.path} already holds a sweep; continue it with `gansweep resume {sweep.path}` "
                         "or pick another --name")


def _record(sweep: Sweep, opts: SweepOptions) -> dict:
    return {
        "study": sweep.study, "seeds": sweep.seeds, "overrides": sweep.overrides, "name": sweep.name,
        "num_samples": sweep.num_samples, "only": sweep.only,
        "metric": sweep.metric, "mode": sweep.mode, "options": dataclasses.asdict(opts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _init_ray(opts: SweepOptions) -> None:
    import ray

    if ray.is_initialized():
        return
    if opts.address:
        ray.init(address=opts.address, include_dashboard=False)
    else:
        ray.init(num_cpus=opts.num_cpus, include_dashboard=False)


def _cluster_resources() -> dict:
    import ray

    try:
        return {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")} | {
            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
    except Exception:
        return {}


def _auto_gpus(opts: SweepOptions, use_ray: bool) -> float:
    if opts.gpus_per_trial is not None:
        return opts.gpus_per_trial
    if use_ray:
        import ray

        return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


def make_tracker(opts: SweepOptions):
    from sweep.tracking import SweepTracker

    return SweepTracker(opts.mlflow_uri, experiment_name=opts.experiment)


def run_sweep(sweep: Sweep, opts: SweepOptions, *, resume: bool = False, report: bool = True):
    """Run (or resume) a resolved sweep to the end, then write the report. Returns the report's files."""
    use_ray = not opts.in_process
    if use_ray:
        _init_ray(opts)
    opts.gpus_per_trial = _auto_gpus(opts, use_ray)
    record = _record(sweep, opts)
    if not resume:
        check_new(sweep)
        storage.write_text(storage.join(sweep.path, RECORD), json.dumps(record, indent=2, default=str))
    tracker = make_tracker(opts)
    tracker.start_sweep(sweep.name, sweep.path, sweep.study,
                        params={"study": sweep.study, "seeds": sweep.seeds, "metric": sweep.metric,
                                "mode": sweep.mode, "trials": sweep.space.num_samples,
                                **{f"override.{k}": v for k, v in sweep.overrides.items()}},
                        tags={"gansweep.command": " ".join(opts.argv),
                              "gansweep.cluster_resources": json.dumps(_cluster_resources() if use_ray else {})})
    status = "FAILED"
    try:
        if resume:
            from sweep.tracking import backfill

            backfill(sweep.path, tracker)  # whatever the dead driver did not get into MLflow
        inputs = prepare(sweep, opts, tracker, use_ray=use_ray)
        if use_ray:
            _fit_with_tune(sweep, opts, inputs, tracker, resume=resume)
        else:
            from sweep.inprocess import run_in_process

            run_in_process(sweep, opts, inputs, tracker)
        status = "FINISHED"
    finally:
        files = _write_report(sweep.path, sweep.metric, sweep.mode) if report else []
        tracker.end_sweep(status=status, artifacts=files)
    return files


def _write_report(path: str, metric: str, mode: str) -> list:
    from sweep.report import write_report

    try:
        return write_report(path, metric=metric, mode=mode)
    except Exception as e:  # a report failure must not hide the sweep's own outcome
        print(f"gansweep: report not written: {e}", file=sys.stderr)
        return []


def _tuner_parts(sweep: Sweep, opts: SweepOptions, inputs: dict, tracker):
    from ray import tune

    from sweep.tracking import MlflowTuneCallback
    from trainables import train_arm

    trainable = tune.with_resources(tune.with_parameters(train_arm, inputs=inputs),
                                    {"cpu": opts.cpus_per_trial or 1, "gpu": opts.gpus_per_trial or 0})
    scheduler = None
    if opts.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        cfg = sweep.configs[0]
        scheduler = ASHAScheduler(time_attr="step", max_t=cfg.steps, grace_period=cfg.eval_every,
                                  reduction_factor=2)
    run_config = tune.RunConfig(
        name=sweep.name,
        storage_path=storage.absolute(opts.storage),
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=opts.keep_checkpoints),
        callbacks=[MlflowTuneCallback(tracker)],
        progress_reporter=_progress_reporter(sweep),
        verbose=opts.verbose,
    )
    return trainable, scheduler, run_config


def _progress_reporter(sweep: Sweep):
    """Tune's table reporter showing the arm, step, IS and FID of every trial."""
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the new output engine ignores custom reporters
    ext = sweep.configs[0].extractor
    return tune.CLIReporter(
        parameter_columns={"dataset": "dataset", "seed": "seed"},
        metric_columns={"arm": "arm", "step": "step", f"is_mean_{ext}": "IS", f"fid_{ext}": "FID",
                        "diverged": "div"},
        max_report_frequency=15, sort_by_metric=False, max_column_length=28)


def trial_name(trial) -> str:
    """What Tune's table and logs call a trial: its arm, seed and id, e.g. `hflip+contrast@200-s1-7c1f2_00004`."""
    return f"{TrialConfig(**trial.config).arm}-s{trial.config.get('seed', 0)}-{trial.trial_id}"


def trial_dirname(trial) -> str:
    """Its folder: the trial name with only [A-Za-z0-9_.-] (object stores and shells dislike '+' and '@')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", trial_name(trial))


def _fit_with_tune(sweep: Sweep, opts: SweepOptions, inputs: dict, tracker, *, resume: bool):
    from ray import tune

    trainable, scheduler, run_config = _tuner_parts(sweep, opts, inputs, tracker)
    if resume:
        tuner = tune.Tuner.restore(sweep.path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                                   param_space=sweep.space.param_space())
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=sweep.space.param_space(),
            tune_config=tune.TuneConfig(
                search_alg=sweep.space.search_alg(metric=sweep.metric, mode=sweep.mode),
                scheduler=scheduler, num_samples=sweep.space.num_samples,
                metric=sweep.metric if scheduler is not None else None,
                mode=sweep.mode if scheduler is not None else None,
                max_concurrent_trials=opts.max_concurrent,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_dirname,
                reuse_actors=True,  # a finished trial's worker takes the next: no new process, imports or extractor load
            ),
            run_config=run_config,
        )
    return tuner.fit()


# --- resume ----------------------------------------------------------------------------------------------------


def load_record(path: str) -> dict:
    path = storage.absolute(path)
    record_path = storage.join(path, RECORD)
    if not storage.exists(record_path):
        raise FileNotFoundError(f"{path} is not a gansweep sweep folder (no {RECORD}); "
                                "pass the folder `gansweep run` printed, e.g. ./gansweep_results/demo-20260101-120000")
    return json.loads(storage.read_text(record_path))


def report_sweep(path: str, *, metric: str | None = None, mode: str | None = None, mlflow_uri: str | None = None,
                 mlflow: bool = True) -> list:
    """Write the report of the sweep at `path`; with `mlflow`, first backfill whatever MLflow missed (a server
    that was unreachable during the sweep) and attach the report to the sweep's parent run."""
    from sweep.report import write_report

    path = storage.absolute(path)
    record = load_record(path)
    metric, mode = metric or record["metric"], mode or record["mode"]
    files = write_report(path, metric=metric, mode=mode)
    if mlflow:
        from sweep.tracking import backfill

        opts = record["options"]
        tracker = make_tracker(SweepOptions(mlflow_uri=mlflow_uri or opts["mlflow_uri"],
                                            experiment=opts.get("experiment", "gansweep")))
        tracker.start_sweep(record["name"], path, record["study"], params={}, tags={})
        backfill(path, tracker)
        tracker.end_sweep(status="FINISHED", artifacts=files)
    return files


def resume_sweep(path: str, overrides: dict | None = None):
    """Continue a sweep whose driver died: finished trials stay, the rest restart from their last checkpoint."""
    path = storage.absolute(path)
    record = load_record(path)
    known = {f.name for f in dataclasses.fields(SweepOptions)}
    opts = SweepOptions(**{k: v for k, v in record["options"].items() if k in known})
    opts.argv = list(sys.argv)
    for k, v in (overrides or {}).items():
        if v is not None:
            setattr(opts, k, v)
    # The experiment folder lives where it lives now (the storage may have been moved or mounted elsewhere).
    opts.storage, opts.name = os.path.dirname(path.rstrip("/")) if not storage.is_uri(path) else \
        path.rstrip("/").rsplit("/", 1)[0], os.path.basename(path.rstrip("/"))
    sweep = resolve_sweep(record["study"], seeds=record["seeds"], overrides=record["overrides"],
                          num_samples=record.get("num_samples"), only=record.get("only"), opts=opts)
    return run_sweep(sweep, opts, resume=True)
