"""Run a resolved plan as a Ray Tune sweep (or in-process), tracked in MLflow; resume one whose driver died; report.

The flow of `run_sweep`: write the plan's record (`gansweep.json`), load every real set here (bad data fails in one
line before Ray starts), start the MLflow parent run, prepare each distinct input once (reference statistics, the
donor GAN for `generated`) as Ray tasks, then fit a Tuner whose trials share those inputs through the object store.
A resume (`run_sweep(..., resume=True)` on `sweep.plan.plan_for_resume`'s plan, refused when today's code resolves
other configs) restores the Tuner, running only what did not finish. Both end with the report, and say whether
every trial came through (`sweep.records.sweep_status`): a failed or unfinished trial makes the sweep FAILED (exit
1); a diverged GAN is a result.

Ray is imported where it is used (it takes seconds), and so is the in-process runner, which imports Ray Tune
through the trainable: `gansweep run` reaches `check_new` and `check_data` without it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gan.config import TrialConfig
from gan.imagetable import write_image_table
from gan.realsets import resolve_split
from gan.runtime import CUBLAS_WORKSPACE, select_device
from sweep.execution import orphans
from sweep.mlflow import active, layout
from sweep.mlflow.tracker import SweepTracker, backoff_for
from sweep.mlflow.backfill import backfill
from sweep.plan import RECORD, Options, Plan, configs_changed, load_record, plan_from_record
from sweep.records import (DRIVER_FILE, INPUTS_FILE, SweepFolder, read_driver, read_sweep, sweep_status, trial_dirname,
                           trial_name)
from sweep.report import primaries
from sweep.report.write import write_report
from gan import storage
from trainables.inputs import data_key, input_key, load_real_sets, prepare_inputs


@dataclass
class SweepResult:
    """How a sweep ended."""

    outcomes: Counter  # outcome -> trials
    files: list[Path] = field(default_factory=list)  # the report's files
    mlflow_offline: str | None = None  # why MLflow could not be reached, when it went offline during the sweep

    @property
    def ok(self) -> bool:
        """Every trial came through: none failed, none left unfinished (`sweep_status`)."""
        return sweep_status(self.outcomes) == "FINISHED"


# --- setting up ---------------------------------------------------------------------------------------------------


def check_new(plan: Plan) -> None:
    """A new sweep must not write into an existing one (its results and checkpoints would be mixed up)."""
    if storage.exists(storage.join(plan.path, RECORD)):
        raise ValueError(f"{plan.path} already holds a sweep; continue it with `gansweep resume {plan.path}` "
                         "or pick another --name")


def _inputs_needed(plan: Plan) -> list[TrialConfig]:
    """Configs that span every input a trial may ask for (an Optuna study: every point its space can produce)."""
    return [TrialConfig(**c) for c in plan.study.possible_configs()]


def check_data(plan: Plan) -> dict:
    """Load every real set the sweep needs, here in the driver: a missing folder or unreadable images fail in one
    line (ValueError / FileNotFoundError) before Ray starts or anything is written. Sets are cached, so the trials'
    inputs reuse them."""
    return load_real_sets(_inputs_needed(plan), plan.options.cache_dir)


def process_env(plan: Plan) -> dict[str, str]:
    """Environment variables every process of the sweep must have from its start: with `deterministic` trials, the
    cuBLAS workspace setting (cuBLAS reads it once, at the first CUDA matmul of a process, so setting it inside a
    trial that follows another use of the GPU in the same process would be too late)."""
    return {"CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE} if any(c.deterministic for c in plan.configs) else {}


def _init_ray(options: Options, env: dict[str, str]) -> bool:
    """Connect to the cluster, or start a one-node Ray, with `env` in every worker's environment (a job-level
    runtime_env); True when this call started a one-node Ray (which the sweep then stops), False when it joined a
    cluster or the process already had Ray (a test session, a notebook)."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": env} if env else None
    if options.address:
        ray.init(address=options.address, include_dashboard=False, runtime_env=runtime_env)
        return False
    # "local": a new one-node Ray even where this machine has another's (Ray would otherwise join the one named in
    # /tmp/ray/ray_current_cluster, a killed driver's stale one included, and refuse num_cpus); RAY_ADDRESS joins.
    address = None if os.environ.get("RAY_ADDRESS") else "local"
    ray.init(address=address, num_cpus=options.num_cpus, include_dashboard=False, runtime_env=runtime_env)
    return True


def _cluster_resources() -> dict:
    import ray

    try:
        return {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory")} | {
            "nodes": len([n for n in ray.nodes() if n.get("Alive")])}
    except Exception:
        return {}


def trial_resources(options: Options, use_ray: bool, budgeted: bool = False) -> dict:
    """{'cpu', 'gpu'} per trial: the options', else 1 CPU and a whole GPU where the cluster (under Ray) or the
    device this process selects (in-process, `gan.runtime.select_device`) has one. `budgeted` (a study with
    equal-time trials) on CPUs: every CPU of the smallest node per trial, so no two clocks run side by side and each
    trial trains on the same cores (on GPUs a whole GPU each, fractions being refused by the plan)."""
    if options.gpus_per_trial is not None:
        gpus = options.gpus_per_trial
    elif use_ray:
        import ray

        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    else:
        gpus = 1.0 if select_device().type == "cuda" else 0.0
    cpus = options.cpus_per_trial or (1 if use_ray else os.cpu_count() or 1)
    if budgeted and not gpus and use_ray and options.cpus_per_trial is None:
        import ray

        cpus = min((n["Resources"]["CPU"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")),
                   default=1)
    return {"cpu": cpus, "gpu": gpus}


@dataclass
class Preparation:
    """Inputs being prepared: Ray tasks already running (or, in-process, the calls still to make)."""

    groups: dict[str, list[TrialConfig]]  # input key -> the configs that share it
    pending: dict  # input key -> ObjectRef (Ray) or the prepare_inputs arguments (in-process)


def submit_inputs(plan: Plan, real_sets: dict, resources: dict, use_ray: bool) -> Preparation:
    """Start preparing every distinct input once (as Ray tasks, so the driver can set up MLflow meanwhile)."""
    groups: dict[str, list[TrialConfig]] = {}
    for cfg in _inputs_needed(plan):
        groups.setdefault(input_key(cfg), []).append(cfg)
    donors = any("generated" in c.da for g in groups.values() for c in g)
    print(f"gansweep: preparing {len(groups)} input(s): reference statistics, the floor"
          f"{', leakage probes' if any(not g[0].method for g in groups.values()) else ''}"
          f"{', donor GANs' if donors else ''}", file=sys.stderr, flush=True)
    args = {k: (g, *real_sets[data_key(g[0])], plan.donor_dir, plan.options.cache_dir) for k, g in groups.items()}
    if not use_ray:
        return Preparation(groups, args)
    import ray

    # On CPUs, every input at once on a fraction of a CPU and one thread each: an input prepared alone at the end
    # would leave cores idle.
    cpus = resources["cpu"] if resources["gpu"] else min(resources["cpu"],
                                                          ray.cluster_resources().get("CPU", 1) / len(groups))
    task = ray.remote(num_cpus=cpus, num_gpus=resources["gpu"])(prepare_inputs)
    return Preparation(groups, {k: task.remote(*a, threads=max(1, int(cpus))) for k, a in args.items()})


def collect_inputs(plan: Plan, preparation: Preparation, tracker, use_ray: bool) -> dict:
    """The prepared inputs (printing progress as each is ready); their donors logged, `inputs.json` written."""
    if use_ray:
        import ray

        keys = {ref: k for k, ref in preparation.pending.items()}
        inputs, pending = {}, list(keys)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            inputs[keys[done[0]]] = ray.get(done[0])
            print(f"gansweep: input {len(inputs)}/{len(keys)} ready", file=sys.stderr, flush=True)
    else:
        inputs = {k: prepare_inputs(*a) for k, a in preparation.pending.items()}
    record_inputs(plan, {k: (preparation.groups[k][0], inp) for k, inp in inputs.items()}, tracker)
    return inputs


def record_inputs(plan: Plan, prepared: dict, tracker) -> None:
    """`<SWEEP>/inputs.json`: per input, the config fields that select its trials, which reference it used and why,
    the floor and the donor GAN; the reference images as an image table (`inputs/`, what a survey shows as real
    photos). Then MLflow gets what `inputs.json` says (`sweep.mlflow.layout.log_inputs`), as a backfill would."""
    work = tempfile.mkdtemp(prefix="gansweep_inputs_") if storage.is_uri(plan.path) else \
        os.path.join(plan.path, "inputs")
    entries = []
    for i, (key, (cfg, inp)) in enumerate(sorted(prepared.items())):
        table = f"reference-{i:03d}.parquet"
        write_image_table(os.path.join(work, table), inp.reference_images,
                          metadata={"input": key, "held_out": inp.held_out})
        entries.append({"key": key, "match": {k: getattr(cfg, k) for k in INPUT_FIELDS}, "held_out": inp.held_out,
                        "reference": cfg.reference, "split": resolve_split(cfg.dataset, cfg.split),
                        "n_reference": len(inp.reference), "reference_table": f"inputs/{table}",
                        "notes": inp.notes, "floor": inp.floor, "probe": probe_rates(inp.reference.leakage),
                        "donor": inp.donor})
    storage.upload_dir(work, storage.join(plan.path, "inputs"))
    storage.write_text(storage.join(plan.path, INPUTS_FILE), json.dumps(entries, indent=2, default=float))
    layout.log_inputs(tracker, json.loads(json.dumps(entries, default=float)))  # as a backfill reads them


def probe_rates(probe) -> dict:
    """A leakage probe's nested-cross-validated rates on real images, by the share key of its DA type
    (`gan.leakage.LeakageProbe.rates`: tpr, fpr, the chosen C, measurable); {} without one."""
    return {} if probe is None else probe.rates()


INPUT_FIELDS = ("dataset", "n_real", "n_heldout", "image_size", "seed", "extractor")  # what decides an input's data


# --- running ------------------------------------------------------------------------------------------------------


def _tuner(plan: Plan, inputs: dict, resources: dict, resume: bool):
    from ray import tune

    from sweep.execution.callback import MlflowTuneCallback, progress_reporter  # import Ray Tune
    from trainables.arm import train_arm

    trainable = tune.with_resources(tune.with_parameters(train_arm, inputs=inputs), resources)
    if resume:
        return tune.Tuner.restore(plan.path, trainable=trainable, resume_unfinished=True, resume_errored=True,
                                  param_space=plan.study.param_space())
    options, cfg = plan.options, plan.configs[0]
    scheduler = None
    if options.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="step", max_t=cfg.steps, grace_period=cfg.eval_every, reduction_factor=2)
    return tune.Tuner(
        trainable,
        param_space=plan.study.param_space(),
        tune_config=tune.TuneConfig(
            search_alg=plan.study.search_alg(metric=plan.metric, mode=plan.mode),
            scheduler=scheduler, num_samples=plan.study.num_samples,
            metric=plan.metric if scheduler is not None else None,
            mode=plan.mode if scheduler is not None else None,
            max_concurrent_trials=options.max_concurrent,
            trial_name_creator=lambda t: trial_name(t.config, t.trial_id),
            trial_dirname_creator=lambda t: trial_dirname(t.config, t.trial_id),
            reuse_actors=True,  # a finished trial's worker takes the next: no new process, imports or extractor load
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=storage.absolute(options.storage),
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=options.keep_checkpoints),
            callbacks=[MlflowTuneCallback(plan.path)],
            progress_reporter=progress_reporter(plan.metric, cfg.extractor),
            verbose=options.verbose,
        ),
    )


def run_sweep(plan: Plan, *, resume: bool = False, report: bool = True, real_sets: dict | None = None) -> SweepResult:
    """Run (or resume) a plan to the end, then write the report and end the MLflow parent run: FINISHED when every
    trial came through, FAILED otherwise (and when the sweep itself raised). `real_sets`: what `check_data` loaded
    (the CLI checks the data first, so that bad data is an input error)."""
    options = plan.options
    use_ray = not options.in_process
    if not resume:
        check_new(plan)
    real_sets = check_data(plan) if real_sets is None else real_sets  # before Ray and before anything is written
    if not resume:
        storage.write_text(storage.join(plan.path, RECORD), json.dumps(plan.record(), indent=2, default=str))
    env = process_env(plan)
    os.environ.update(env)  # this process too: in-process trials and inputs prepared here
    if resume:
        orphans.stop_orphans(plan.path)  # what a SIGKILLed driver's Ray left running
    own_ray = use_ray and _init_ray(options, env)
    if own_ray:
        orphans.record_session(plan.path)
    resources = trial_resources(options, use_ray, budgeted=any(c.time_budget > 0 for c in plan.configs))
    preparation = submit_inputs(plan, real_sets, resources, use_ray)  # runs while MLflow is set up
    tracker = SweepTracker(options.mlflow_uri, experiment_name=options.experiment,
                           backoff=backoff_for(options.mlflow_patience))
    active.activate(plan.path, tracker)
    driver = record_driver(plan, resources, _cluster_resources() if use_ray else {}, resume)
    layout.open_sweep(tracker, plan.name, plan.path, load_record(plan.path), plan.study.num_samples, driver)
    completed = False
    result = SweepResult(Counter())
    try:
        if resume:
            backfill(plan.path, tracker)  # whatever the dead driver did not get into MLflow
        inputs = collect_inputs(plan, preparation, tracker, use_ray)
        if use_ray:
            _tuner(plan, inputs, resources, resume).fit()
        else:
            from sweep.execution.inprocess import run_in_process  # imports Ray Tune, through the trainable

            run_in_process(plan, inputs, tracker)
        completed = True
    finally:
        result.outcomes = Counter(r.outcome for r in read_sweep(plan.path))
        if report:
            result.files = _report(plan, tracker)
        tracker.end_sweep(sweep_status(result.outcomes) if completed else "FAILED")
        result.mlflow_offline = tracker.offline_reason if tracker.offline else None
        active.deactivate(plan.path)
        if own_ray:
            import ray

            ray.shutdown()  # now, not at interpreter exit (where it takes seconds longer)
    return result


def record_driver(plan: Plan, resources: dict, cluster: dict, resume: bool) -> dict:
    """`<SWEEP>/driver.json`: the command line that started the sweep (a resume's as `last_command`) and the
    resources its trials and cluster had, what the parent run's tags say (`sweep.mlflow.layout.sweep_tags`)."""
    driver = read_driver(plan.path) if resume else {}
    command = " ".join(plan.options.argv)
    driver.update({"last_command" if "command" in driver else "command": command,
                   "trial_resources": resources, "cluster_resources": cluster})
    storage.write_text(storage.join(plan.path, DRIVER_FILE), json.dumps(driver, indent=2))
    return driver


def _report(plan: Plan, tracker) -> list[Path]:
    """Write the report and put its answer on the parent run: the best arm per group where a difference holds
    (`sweep.mlflow.layout.log_answer`), the primary hypotheses' answer (`layout.log_primaries`), with the seeds
    per arm the plan resolved. A report failure must not hide the sweep's outcome."""
    try:
        rep = write_report(plan.path, plan.design, plan.metric, plan.mode)
    except Exception as e:  # noqa: BLE001
        print(f"gansweep: report not written: {e}", file=sys.stderr)
        return []
    seeds: dict[str, set] = {}
    for cfg in plan.configs:
        seeds.setdefault(cfg.arm, set()).add(cfg.seed)
    layout.log_answer(tracker, rep.summary.drop(columns=["context"]), rep.best, plan.metric, plan.design.group_by,
                      min(map(len, seeds.values())) if seeds else None, rep.metrics, rep.files)
    layout.log_primaries(tracker, primaries.answer_text(rep.primaries), primaries.mlflow_fields(rep.primaries),
                         primaries.EXPLORATORY)
    records = read_sweep(plan.path)
    study = getattr(plan, "study", None)
    if study is not None and study.kind == "optuna":  # how much each searched field explains of the metric
        layout.log_importances(tracker, study.importances(
            [(r.config, r.last[plan.metric]) for r in records if r.outcome == "finished" and plan.metric in r.last],
            plan.mode))
    try:
        layout.log_arm_grids(tracker, records, SweepFolder(plan.path))
    except OSError as e:  # an unreadable grid: the rest of the answer is on the parent already
        print(f"gansweep: the parent run's per-step image of every arm not logged: {e}", file=sys.stderr)
    return rep.files


def report_sweep(path: str, *, metric: str | None = None, mode: str | None = None, mlflow_uri: str | None = None,
                 mlflow: bool = True) -> list[Path]:
    """Write the report of the sweep at `path`; with `mlflow`, first backfill whatever MLflow missed (a server that
    was unreachable during the sweep), attach the report to the sweep's parent run and end that run as the trials'
    outcomes say (`sweep_status`). The report reads every trial's own recorded config, so a sweep whose configs
    today's code would resolve otherwise is still reported as it ran (with a one-line warning)."""
    record = load_record(path)
    plan = plan_from_record(path, record, metric=metric, mode=mode, mlflow_uri=mlflow_uri)
    changed = configs_changed(plan, record)
    if changed:
        print(f"gansweep: warning: {changed}; reporting the trials as they ran", file=sys.stderr, flush=True)
    if not mlflow:
        return write_report(plan.path, plan.design, plan.metric, plan.mode).files
    tracker = SweepTracker(plan.options.mlflow_uri, experiment_name=plan.options.experiment,
                           backoff=backoff_for(plan.options.mlflow_patience))
    layout.open_sweep(tracker, plan.name, plan.path, record, plan.study.num_samples, read_driver(plan.path))
    backfill(plan.path, tracker)
    files = _report(plan, tracker)
    tracker.end_sweep(sweep_status(r.outcome for r in read_sweep(plan.path)))
    return files


__all__ = ["SweepResult", "run_sweep", "report_sweep", "check_new", "check_data"]
