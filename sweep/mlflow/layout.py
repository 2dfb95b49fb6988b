"""The MLflow layout of a sweep: every run name, tag, param, metric and artifact path gansweep writes, decided here.

One experiment (default `gansweep`) holds, per sweep:

    parent run  <sweep name>               role `sweep`; params `sweep_params`; tags `sweep_tags` (the command,
                                           resources); metrics and tags of its inputs (`input_summary`: floor_*,
                                           the reference) and of the report (`answer`: best_*, gansweep.best.*,
                                           gansweep.verdict.*, seeds_per_arm); the per-arm table `summary.json`
                                           and the report's files under `report/`
    trial run   <arm>-s<seed>-<trial id>   role `trial`, child of the parent; params: the flat TrialConfig and `arm`
                                           (`trial_params`); one metric batch per reported step; sample grids as
                                           the image `samples` per step; the final generator under `model/`;
                                           tags gansweep.outcome / .diverged / .device
    donor run   donor <key>                role `donor` (not an arm): the GAN a sweep's `generated` arms drew from

Everything a sweep sends to MLflow is written by the functions below and the `SweepTracker` methods they call, and
the live driver (`sweep.execution.driver`), the Tune callback and the backfill (`sweep.mlflow.backfill`) all go
through them: what a sweep would have logged live is what a backfill writes from the sweep's folder. What the live
path knows only at run time (the command line, the resources) is therefore kept in the sweep folder
(`sweep.records.DRIVER_FILE`) before it is logged.
"""

from __future__ import annotations

import json
import math

from sweep.records import arm_of, scored_generator_of, trial_name
from trainables.files import DATA_DIGEST, REFERENCE_DIGEST

# --- the experiment ------------------------------------------------------------------------------------------------

DEFAULT_EXPERIMENT = "gansweep"  # the MLflow experiment a sweep logs to unless told otherwise
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # MLflow 3: open on the runs table
PRIMARY_METRIC = "mlflow.experiment.primaryMetric.name"  # the metric MLflow's default charts plot
GREATER_IS_BETTER = "mlflow.experiment.primaryMetric.greaterIsBetter"  # "true" / "false"


def experiment_tags(metric: str, mode: str) -> dict[str, str]:
    """The experiment's tags for a sweep ranked by `metric` (`mode` min or max): model training, and the ranking
    metric as the primary metric (the last sweep's, when sweeps of one experiment rank differently)."""
    return {**EXPERIMENT_KIND, PRIMARY_METRIC: metric, GREATER_IS_BETTER: "true" if mode == "max" else "false"}

# --- tags ----------------------------------------------------------------------------------------------------------

PARENT = "mlflow.parentRunId"  # MLflow's own: nests a trial under its sweep
GIT_COMMIT = "mlflow.source.git.commit"  # MLflow's own: the code version (`sweep.mlflow.active.source_version`)
ROLE = "gansweep.role"  # what a run is: one of ROLES
ROLES = ("sweep", "trial", "donor")
SWEEP_PATH = "gansweep.sweep_path"  # the sweep folder: how a resume or a backfill finds the parent run again
STUDY = "gansweep.study"  # the study's registry name, on every run
TRIAL_ID = "gansweep.trial_id"  # Tune's trial id (or `sweep.records.inprocess_trial_id`): finds a trial's run again
OUTCOME = "gansweep.outcome"  # how a trial ended (`sweep.records.OUTCOMES`)
DIVERGED = "gansweep.diverged"  # 1 when a result said the GAN diverged
DEVICE = "gansweep.device"  # where a trial ran (the `device` of its first result)
DONOR = "gansweep.donor"  # a donor run: trained by this sweep or reused from the cache
SAMPLE_STEPS = "gansweep.sample_steps"  # the steps whose sample grid the run holds, space-separated
COMMAND = "gansweep.command"  # the command line that started the sweep
LAST_COMMAND = "gansweep.last_command"  # the one that resumed it last
TRIAL_RESOURCES = "gansweep.trial_resources"  # JSON: {"cpu", "gpu"} per trial
CLUSTER_RESOURCES = "gansweep.cluster_resources"  # JSON: the Ray cluster's CPUs, GPUs, memory, nodes
REFERENCE = "gansweep.reference"  # in words: which held-out reference each input was scored against
REFERENCE_SET = "gansweep.reference_set"  # heldout or train (`TrialConfig.reference`), comma-joined over inputs
SPLIT = "gansweep.split"  # how the reference was split from the training images (identity, subfolder, image)
SCORED_GENERATOR = "scored_generator"  # trial param: the generator sampled and scored, ema or raw
BEST = "gansweep.best"  # + ".<group values>": the best arm of a group, only where its difference holds
VERDICT = "gansweep.verdict"  # + ".<group values>": the report's verdict for the group, in words

# --- artifacts, images, params -------------------------------------------------------------------------------------

def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of a sqlite store go beside its database file (`<dir>/mlruns`), wherever the sweep was started
    from; a server decides for itself (None)."""
    from pathlib import Path

    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return (Path(tracking_uri[len(prefix):]).expanduser().resolve().parent / "mlruns").as_uri()


IMAGE_KEY = "samples"  # log_image key of the sample grids
ARMS_KEY = "arms"  # log_image key of the parent's per-step image of every arm's grid (`log_arm_grids`)
MODEL_DIR = "model"  # artifact folder of a trial's final generator weights
REPORT_DIR = "report"  # artifact folder of the report's files on the parent run
SUMMARY_TABLE = "summary.json"  # the per-arm table on the parent run (the UI's table view)
IMPORTANCES_TABLE = "importances.json"  # an Optuna study's hyperparameter importances on the parent run
METRIC, MODE = "metric", "mode"  # parent params: the ranking metric and its direction


def param_value(v) -> str:
    """How a value shows as an MLflow param: lists joined by '+' ('none' when empty), everything else str()."""
    if isinstance(v, (list, tuple)):
        return "+".join(map(str, v)) if v else "none"
    return str(v)


def eq(key: str, value: str) -> str:
    """An MLflow filter `key = 'value'` (a quote in the value is escaped the SQL way)."""
    return f"{key} = '{value.replace(chr(39), chr(39) * 2)}'"


def tag_filter(tag: str, value: str) -> str:
    """The search filter for runs whose tag `tag` is `value`."""
    return eq(f"tags.`{tag}`", value)


SWEEPS = tag_filter(ROLE, "sweep")  # the search filter for parent runs


# --- the parent run ------------------------------------------------------------------------------------------------


def sweep_params(record: dict, trials: int) -> dict[str, str]:
    """The parent run's params, from the sweep's record (`gansweep.json`): study, seeds (distinct seeds resolved),
    the ranking metric and mode it was started with, trials (`trials`: the study's sample count) and one
    `override.<field>` per override."""
    seeds = len({c.get("seed") for c in record.get("configs", [])})
    params = {"study": record["study"], "seeds": seeds, METRIC: record["metric"], MODE: record["mode"],
              "trials": trials, **{f"override.{k}": v for k, v in sorted(record.get("overrides", {}).items())}}
    return {k: param_value(v) for k, v in params.items()}


def sweep_tags(driver: dict) -> dict[str, str]:
    """The parent run's tags from what the driver recorded (`sweep.records.read_driver`): the command that started
    the sweep, the last one that resumed it, and the resources per trial and of the cluster."""
    tags = {COMMAND: driver.get("command"), LAST_COMMAND: driver.get("last_command"),
            TRIAL_RESOURCES: json.dumps(driver["trial_resources"]) if "trial_resources" in driver else None,
            CLUSTER_RESOURCES: json.dumps(driver["cluster_resources"]) if "cluster_resources" in driver else None}
    return {k: v for k, v in tags.items() if v is not None}


def input_summary(entries: list[dict]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) of the parent run from the sweep's inputs (`sweep.records.read_inputs`): `floor_<key>`, the
    real-versus-held-out floor averaged over the inputs, and the reference notes (`gansweep.reference`)."""
    floors: dict[str, list[float]] = {}
    for e in entries:
        for k, v in e.get("floor", {}).items():
            if k not in ("n_samples", "n_reference"):
                floors.setdefault(k, []).append(v)
    notes = " ".join(n for e in entries for n in e.get("notes", []))[:5000]
    tags = {REFERENCE: notes} if notes else {}
    for tag, key in ((REFERENCE_SET, "reference"), (SPLIT, "split")):
        values = sorted({e[key] for e in entries if e.get(key)})
        if values:
            tags[tag] = ",".join(values)
    return {f"floor_{k}": sum(v) / len(v) for k, v in floors.items() if k != "dropped"}, tags


def answer(best_rows: list[dict], metric: str, group_by: tuple[str, ...], seeds_per_arm: int | None
           ) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) of the report's answer: per group (`.<value>` per group_by field) the verdict in words
    (`gansweep.verdict.<group>`) and, where an arm is best, `gansweep.best.<group>` with its score
    (`best_<metric>.<group>`), Δ and Holm p to the baseline and whether the difference holds (`best_holds.<group>`);
    `seeds_per_arm`, the fewest seeds of any arm."""
    metrics: dict[str, float] = {} if seeds_per_arm is None else {"seeds_per_arm": seeds_per_arm}
    tags: dict[str, str] = {}
    for best in best_rows:
        group = "".join(f".{best[k]}" for k in group_by)
        tags[f"{VERDICT}{group}"] = f"{best['arm']}: {best['verdict']}" if best["arm"] else best["verdict"]
        if best["arm"] is None:
            continue
        tags[f"{BEST}{group}"] = best["arm"]
        metrics.update({f"best_{metric}{group}": best[metric], f"best_delta{group}": best["delta"],
                        f"best_p_holm{group}": best["p_holm"], f"best_holds{group}": float(best["holds"])})
    return metrics, tags


# --- datasets ------------------------------------------------------------------------------------------------------

CONTEXT = "mlflow.data.context"  # MLflow's input tag: what a run used a dataset for
TRAINING, EVALUATION = "training", "evaluation"  # contexts: the set a GAN trains on, the reference it is scored on
DATASET_SOURCE = "gansweep"  # source type of the datasets (images gansweep composed from a source)


def dataset_inputs(params: dict, result: dict) -> list[tuple[dict, str]]:
    """A trial's MLflow dataset inputs, from its params and a result carrying the data digests (the trainable's
    `DATA_DIGEST` / `REFERENCE_DIGEST`): [(the Dataset's fields, context)]. The training set is named by its source
    and arm (`lfw-subset: hflip@64`), the reference by its source; each digest is the image hash of its images, so
    two runs trained on the same images show the same dataset."""
    if DATA_DIGEST not in result:
        return []
    source = params.get("dataset", "?")
    origin = json.dumps({"dataset": source, "n_real": params.get("n_real"), "seed": params.get("seed")})
    n_aug = int(params.get("n_aug", 0) or 0) if not params.get("method") else 0
    rows = int(params.get("n_real", 0) or 0) + n_aug
    out = [({"name": f"{source}: {params.get('arm', '?')}", "digest": result[DATA_DIGEST],
             "source_type": DATASET_SOURCE, "source": origin, "profile": json.dumps({"num_rows": rows})}, TRAINING)]
    if REFERENCE_DIGEST in result:
        out.append(({"name": f"{source}: reference", "digest": result[REFERENCE_DIGEST],
                     "source_type": DATASET_SOURCE, "source": origin}, EVALUATION))
    return out


# --- trial and donor runs ------------------------------------------------------------------------------------------


def trial_params(config: dict, *, arm: bool = True) -> dict[str, str]:
    """MLflow params of a run: its flat config as strings, the generator its samples come from (ema or raw), and
    the arm for a trial (a donor is not an arm)."""
    params = {**{k: param_value(v) for k, v in config.items()}, SCORED_GENERATOR: scored_generator_of(config)}
    return {**params, "arm": arm_of(config)} if arm else params


def trial_run_name(config: dict, trial_id: str) -> str:
    """A trial run's name: `sweep.records.trial_name`, what tables and logs call it too."""
    return trial_name(config, trial_id)


def donor_run(donor: dict) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """(trial id, run name, params, tags) of a donor GAN's run, from its info (`trainables.inputs`'s donor dict)."""
    how = "trained by this sweep" if donor.get("trained") else f"reused from the donor cache ({donor['path']})"
    return (f"donor-{donor['key']}", f"donor {donor['key']}", trial_params(donor["config"], arm=False),
            {DONOR: how})


# --- writing it: the live driver and the backfill call these ------------------------------------------------------


def open_sweep(tracker, name: str, path: str, record: dict, trials: int, driver: dict) -> str | None:
    """Create (or reopen) the sweep's parent run with its params and tags, and tag the experiment
    (`experiment_tags`); its id, None offline."""
    run_id = tracker.start_sweep(name, path, record["study"], params=sweep_params(record, trials),
                                 tags=sweep_tags(driver))
    if run_id is not None:
        tracker.tag_experiment(experiment_tags(record["metric"], record["mode"]))
    return run_id


def log_inputs(tracker, entries: list[dict]) -> None:
    """What the sweep's inputs put into MLflow: each donor GAN as a run of its own, the floor and the reference
    notes on the parent run."""
    for entry in entries:
        if entry.get("donor"):
            log_donor(tracker, entry["donor"])
    metrics, tags = input_summary(entries)
    tracker.sweep_summary(metrics=metrics, tags=tags)


def log_donor(tracker, donor: dict) -> None:
    """A donor GAN's run (`donor_run`), whether this sweep trained it or found it in the donor cache, so every
    sweep's store names the donor its `generated` arms drew from: its training seconds at its last step, and its
    last sample grid where it lies in a local folder."""
    import os

    from gan.train import grid_name
    from gan import storage

    trial_id, run_name, params, tags = donor_run(donor)
    tracker.trial_started(trial_id, params, run_name, role="donor", tags=tags)
    steps = donor["config"]["steps"]
    tracker.trial_result(trial_id, {"step": steps, "train_seconds": donor.get("train_seconds", 0.0)})
    if not storage.is_uri(donor["path"]):
        tracker.trial_grid(trial_id, os.path.join(donor["path"], grid_name(steps)), steps)
    tracker.trial_finished(trial_id, "finished")


ANSWER = "gansweep.answer"  # the answer to the study's primary hypotheses, in words
PRIMARY = "gansweep.primary."  # + a hypothesis's name: its verdict; metrics `primary.<name>.<figure>`
EXPLORATORY = "gansweep.exploratory"  # says that every other figure on the parent run is exploratory


def log_primaries(tracker, answer: str, primaries: dict[str, dict], exploratory: str) -> None:
    """The answer to the study's primary hypotheses on the parent run: `ANSWER`, per primary test its verdict
    (`PRIMARY<name>`) and metrics `primary.<name>.<p_holm|delta|d_z|detectable|holds>`, and `EXPLORATORY`."""
    tags = {ANSWER: answer, EXPLORATORY: exploratory,
            **{f"{PRIMARY}{name}": f["verdict"] for name, f in primaries.items()}}
    metrics = {f"primary.{name}.{k}": v for name, f in primaries.items() for k, v in f.items()
               if k not in ("verdict", "status") and v is not None and math.isfinite(v)}
    tracker.sweep_summary(metrics=metrics, tags=tags)


def log_answer(tracker, table, best_rows: list[dict], metric: str, group_by: tuple[str, ...],
               seeds_per_arm: int | None, metrics: dict, files) -> None:
    """The report on the parent run: the per-arm table, `answer`'s metrics and tags, the report's own metrics
    (`metrics`) and its files."""
    answer_metrics, tags = answer(best_rows, metric, group_by, seeds_per_arm)
    tracker.sweep_summary(table, metrics={**answer_metrics, **metrics}, tags=tags, files=files)


def log_importances(tracker, importances: dict[str, float]) -> None:
    """An Optuna study's hyperparameter importances of the ranking metric on the parent run: the table
    `importances.json` (field, importance; most important first) and one metric `importance.<field>` each."""
    if not importances:
        return
    import pandas as pd

    ranked = sorted(importances.items(), key=lambda kv: -kv[1])
    table = pd.DataFrame({"field": [k for k, _ in ranked], "importance": [float(v) for _, v in ranked]})
    tracker.sweep_summary(table, metrics={f"importance.{k}": v for k, v in ranked}, table_file=IMPORTANCES_TABLE)


def log_arm_grids(tracker, records, folder) -> int:
    """On the parent run, per evaluation step, one image of every arm's sample grid (image `ARMS_KEY`): one row per
    arm, the grid of its lowest seed that has one at that step, so all arms compare step by step on one page (the
    UI's image view of trial runs shows at most 10 runs). Returns how many images were logged."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from sweep.report.mosaic import Row, compose

    by_step: dict[int, dict[str, tuple[int, str]]] = {}
    for record in records:
        for grid in record.grids:
            chosen = by_step.setdefault(grid.step, {}).get(record.arm)
            if chosen is None or record.seed < chosen[0]:
                by_step[grid.step][record.arm] = (record.seed, grid.path)
    logged = 0
    with tempfile.TemporaryDirectory(prefix="gansweep-arms-") as work:
        for step, arms in sorted(by_step.items()):
            rows = []
            for arm, (seed, path) in sorted(arms.items()):
                with Image.open(folder.local(path)) as im:
                    rows.append(Row((arm, f"seed {seed}"), np.asarray(im.convert("RGB")).transpose(2, 0, 1)[None]))
            logged += tracker.sweep_image(compose(rows, Path(work) / f"arms-{step}.png"), step)
    return logged
