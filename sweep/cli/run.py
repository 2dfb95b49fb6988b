"""`gansweep studies | run | resume | report | ui`: the sweep commands.

The driver (`sweep.execution.driver`: pandas, the report, the inputs) and MLflow are imported only by the commands that run,
so `gansweep --help` and input errors stay quick.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from urllib.parse import quote

import click

from gan.metrics import inception_state_dict
from search_spaces import STUDIES, build_study
from sweep.cli.errors import user_errors
from sweep.plan import Options, absolute_mlflow_uri, dry_run_lines, plan_for_resume, resolve_plan

_D = {f.name: f.default for f in dataclasses.fields(Options)}  # CLI defaults = the plan options' defaults

_PATIENCE_HELP = ("How long each MLflow call retries an unreachable tracking store (a restarting server), with "
                  "backoff, before the sweep goes on offline (then `gansweep report PATH` backfills).")
_SWEEP_OPTIONS = [
    click.option("--storage", default=_D["storage"], show_default=True,
                 help="Local folder or storage URI (s3://...) for results, checkpoints and the donor cache."),
    click.option("--name", default=None, help="Experiment folder name (default: <study>-<timestamp>)."),
    click.option("--mlflow-uri", default=_D["mlflow_uri"], show_default=True,
                 help="MLflow tracking URI (a sqlite:/// file or an http(s):// server)."),
    click.option("--experiment", default=_D["experiment"], show_default=True, help="MLflow experiment name."),
    click.option("--mlflow-patience", type=click.FloatRange(min=0), default=_D["mlflow_patience"], show_default=True,
                 metavar="SECONDS", help=_PATIENCE_HELP),
]


def _add(options):
    def deco(f):
        for o in reversed(options):
            f = o(f)
        return f
    return deco


@click.command()
def studies():
    """List the studies with their arm counts."""
    for name in STUDIES:
        study = build_study(name)
        click.echo(f"{name:<18} {study.num_samples:>4} trials  {study.kind:<6} ranks by {study.metric} ({study.mode})  "
                   f"{study.description.splitlines()[0] if study.description else ''}")


@click.command()
@click.argument("study")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Repeat every arm with K seeds (grid studies; default 3: seeds are the unit of replication).")
@click.option("--dataset", multiple=True, help="Image source, e.g. lfw-subset, folder:PATH, celeba:ROOT, "
              "oxford-pet:ROOT:Pomeranian, lfw:ROOT; give one per dataset of the study (paper: two, in order).")
@click.option("--download", is_flag=True, help="Let torchvision download celeba/oxford-pet data that is missing.")
@click.option("--num-samples", type=click.IntRange(min=1), default=None, help="Trials of an Optuna study.")
@click.option("--only", multiple=True, metavar="ARM", help="Run only these arms (labels as --dry-run prints them, "
              "e.g. none, hflip@64, contrast+hflip@128 in the demo).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override any TrialConfig field, e.g. --set eval_every=50 --set batch_size=32.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps per trial.")
@click.option("--image-size", type=click.Choice(["32", "64", "128"]), default=None)
@click.option("--extractor", type=click.Choice(["effnet", "inception"]), default=None,
              help="Feature extractor for IS/FID/KID/PR.")
@click.option("--inception-weights", default=None, type=click.Path(dir_okay=False),
              help="torch-fidelity inception-v3-compat weights file (else $GANSWEEP_INCEPTION_WEIGHTS or the hub cache).")
@click.option("--metric", default=None, help="Metric that ASHA/Optuna optimise and the report ranks by.")
@click.option("--mode", type=click.Choice(["min", "max"]), default=None)
@click.option("--scheduler", type=click.Choice(["fifo", "asha"]), default=_D["scheduler"], show_default=True,
              help="asha stops weak arms early.")
@click.option("--cpus-per-trial", type=click.FloatRange(min=0, min_open=True), default=None,
              help="CPUs (and torch threads) per trial. Default: 1 under Ray, every core with --in-process.")
@click.option("--gpus-per-trial", type=click.FloatRange(min=0), default=None,
              help="Fractional GPUs per trial (0.25 packs 4 trials per GPU). Default: 1 if the cluster has GPUs.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None)
@click.option("--max-failures", type=click.IntRange(min=0), default=_D["max_failures"], show_default=True,
              help="Restarts of a trial from its last checkpoint after its worker dies.")
@click.option("--address", default=None, help="Join a running Ray cluster ('auto' or host:port). "
                                              "Default: start a one-node Ray on this machine.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of the local one-node Ray.")
@click.option("--in-process", is_flag=True, help="Run trials one by one in this process (debugging, breakpoints).")
@click.option("--dry-run", is_flag=True, help="Print the resolved trial configs and exit (reads no data).")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: one JSON object per line.")
@click.option("--no-report", is_flag=True, help="Skip the report at the end.")
@_add(_SWEEP_OPTIONS)
def run(study, seeds, dataset, download, num_samples, only, settings, steps, image_size, extractor, inception_weights,
        metric, mode, scheduler, cpus_per_trial, gpus_per_trial, max_concurrent, max_failures, address, num_cpus,
        in_process, dry_run, as_json, no_report, storage, name, mlflow_uri, experiment, mlflow_patience):
    """Run STUDY (see `gansweep studies`) as a Ray Tune sweep, every trial tracked in MLflow."""
    flags = {"dataset": list(dataset) or None, "steps": steps, "extractor": extractor,
             "image_size": int(image_size) if image_size else None, "inception_weights": inception_weights,
             "download": True if download else None}
    overrides = {**_parse_settings(settings), **{k: v for k, v in flags.items() if v is not None}}
    options = Options(storage=storage, name=name, mlflow_uri=mlflow_uri, experiment=experiment,
                      mlflow_patience=mlflow_patience, address=address,
                      in_process=in_process, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                      max_concurrent=max_concurrent, scheduler=scheduler, metric=metric, mode=mode,
                      max_failures=max_failures, num_cpus=num_cpus)
    with user_errors():
        plan = resolve_plan(study, seeds=seeds, overrides=overrides, num_samples=num_samples, only=tuple(only),
                            options=options)
    if dry_run:
        for line in dry_run_lines(plan, as_json):
            click.echo(line)
        return 0
    with user_errors():
        real_sets = _check_runnable(plan)
    click.echo(f"gansweep: {study}: {plan.study.num_samples} trials -> {plan.path}  (MLflow: {plan.options.mlflow_uri})")
    from sweep.execution.driver import run_sweep

    return _finish(plan, run_sweep(plan, real_sets=real_sets, report=not no_report))


def _parse_settings(settings) -> dict:
    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. eval_every=50)", param_hint="--set")
        out[key.strip()] = value.strip()
    return out


def _check_runnable(plan) -> dict:
    """Checks that need the file system, before Ray starts: the sweep folder must be new, the Inception weights
    must be there, and every real set must load (it is loaded here, and cached for the trials)."""
    from sweep.execution.driver import check_data, check_new

    check_new(plan)
    inception = {c.inception_weights for c in plan.configs if c.extractor == "inception"}
    if inception:  # missing weights fail here, in one line, not inside every trial
        for weights in inception:
            inception_state_dict(weights or None)
    return check_data(plan)


def _finish(plan, result) -> int:
    """Print the summary; exit 1 when a trial failed or did not finish (a diverged GAN is a result)."""
    summary = [f for f in result.files if str(f).endswith("summary.md")]
    if summary:
        click.echo("")
        click.echo(open(summary[0]).read())
    counts = ", ".join(f"{n} {o}" for o, n in sorted(result.outcomes.items()))
    click.echo(f"trials: {counts}")
    click.echo(f"report: {plan.path}/report")
    if result.mlflow_offline:
        click.echo(f"MLflow: {plan.options.mlflow_uri} was unreachable, so the trials are not in it yet; when it "
                   f"is up, backfill it: gansweep report {plan.path}")
    else:
        click.echo(f"browse: gansweep ui --mlflow-uri {plan.options.mlflow_uri}")
    if not result.ok:
        click.echo("gansweep: some trials failed or did not finish; `gansweep resume " + str(plan.path) +
                   "` reruns them", err=True)
        return 1
    return 0


@click.command()
@click.argument("path")
@click.option("--address", default=None, help="Ray cluster to resume on (default: as the sweep ran).")
@click.option("--mlflow-uri", default=None, help="MLflow tracking URI (default: the sweep's).")
@click.option("--mlflow-patience", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help=_PATIENCE_HELP[:-1] + "; default: the sweep's.")
def resume(path, address, mlflow_uri, mlflow_patience):
    """Continue the sweep at PATH whose driver died: only what did not finish runs again. With --mlflow-uri, results
    go to that store from now on (what the old one had is backfilled there first)."""
    from sweep.execution.driver import run_sweep

    with user_errors():  # not a sweep folder, or configs this code resolves otherwise: one line, before any work
        plan = plan_for_resume(path, address=address, mlflow_uri=mlflow_uri, mlflow_patience=mlflow_patience)
    return _finish(plan, run_sweep(plan, resume=True))


@click.command()
@click.argument("path")
@click.option("--metric", default=None, help="Rank arms by this metric (default: the sweep's).")
@click.option("--mode", type=click.Choice(["min", "max"]), default=None)
@click.option("--mlflow-uri", default=None, help="Also backfill MLflow and attach the report (default: the sweep's).")
@click.option("--no-mlflow", is_flag=True, help="Write the report files only.")
def report(path, metric, mode, mlflow_uri, no_mlflow):
    """Results to Parquet, a per-arm summary (mean, 95% CI, difference to no-DA) and plots, next to the results."""
    from sweep.execution.driver import report_sweep

    with user_errors():
        files = report_sweep(path, metric=metric, mode=mode, mlflow_uri=mlflow_uri, mlflow=not no_mlflow)
    summary = [f for f in files if str(f).endswith("summary.md")]
    if summary:
        click.echo(open(summary[0]).read())
    click.echo(f"report: {path}/report")


@click.command()
@click.option("--mlflow-uri", default=_D["mlflow_uri"], show_default=True)
@click.option("--experiment", default=_D["experiment"], show_default=True, help="The experiment to link to.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (0.0.0.0 exposes it).")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes (one is plenty for one researcher and starts fastest).")
def ui(mlflow_uri, experiment, host, port, workers):
    """The MLflow UI on the sweep's tracking store, with links straight to the runs table."""
    mlflow_uri = absolute_mlflow_uri(mlflow_uri)
    with user_errors():
        _check_store(mlflow_uri)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", mlflow_uri, "--host", host,
           "--port", str(port), "--workers", str(workers)]
    click.echo(f"MLflow UI on http://{host}:{port}  ({mlflow_uri})")
    for line in ui_links(mlflow_uri, experiment, f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"):
        click.echo(line)
    return serve_until_stopped(cmd)


def _check_store(mlflow_uri: str) -> None:
    """A sqlite store must exist: MLflow would make an empty one at a mistyped path and serve it."""
    prefix = "sqlite:///"
    if mlflow_uri.startswith(prefix):
        db = mlflow_uri[len(prefix):]
        if not os.path.isfile(db):
            where = "no such file" if os.path.isdir(os.path.dirname(db)) else \
                f"no folder {os.path.dirname(db)}"
            raise FileNotFoundError(f"no MLflow store at {db} ({where}); give the --mlflow-uri a sweep logged to "
                                    "(`gansweep run` prints it)")


def serve_until_stopped(cmd: list[str]) -> int:
    """Run a server command in its own process group until it exits, or until this process gets SIGTERM or SIGINT:
    then the whole group (the server and the workers it forked) is stopped, SIGTERM first, SIGKILL after 10 s.
    Returns the server's exit status, or 128 + the signal's number."""
    proc = subprocess.Popen(cmd, start_new_session=True)
    got: list[int] = []

    def stop(signum, frame):
        got.append(signum)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 128 + (got[0] if got else signal.SIGINT)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    from sweep.execution.orphans import group_members, stop

    proc.poll()  # reap the leader if it has exited, so that it does not count as alive
    stop(group_members(proc.pid) or [proc.pid])
    if group_members(proc.pid):  # forked while it was being stopped
        stop(group_members(proc.pid), grace=2.0)
    proc.poll()


def ui_links(mlflow_uri: str, experiment: str, base: str) -> list[str]:
    """Links into the UI for the experiment: its runs table (MLflow 3 opens a fresh browser on its GenAI pages
    unless the link says `workflowType=machine_learning`), and every trial side by side, sorted by the last sweep's
    ranking metric (sorting by a metric lists child runs flat, so the chart view shows all of them)."""
    from mlflow.tracking import MlflowClient  # seconds to import: only this command needs it

    from sweep.mlflow import layout

    try:
        client = MlflowClient(mlflow_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return [f"  (no experiment {experiment!r} in this store yet)"]
        last = client.search_runs([exp.experiment_id], filter_string=layout.SWEEPS,
                                  order_by=["attributes.start_time DESC"], max_results=1)
    except Exception as e:  # noqa: BLE001 -- the links are a convenience; the UI starts anyway
        return [f"  (could not read {mlflow_uri}: {str(e).splitlines()[0]})"]
    runs = f"{base}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"
    lines = [f"  runs table:  {runs}"]
    if last and layout.METRIC in last[0].data.params:
        metric, mode = last[0].data.params[layout.METRIC], last[0].data.params.get(layout.MODE, "min")
        lines.append(f"  every trial, best first by {metric}:  {runs}&orderByKey={quote(f'metrics.`{metric}`')}"
                     f"&orderByAsc={'true' if mode == 'min' else 'false'}")
    return lines


COMMANDS = [studies, run, resume, report, ui]
