"""`gansweep survey | survey-results`: ask people which samples look better, then say what their votes show, per
comparison group of the study (its `Design.group_by`)."""

from __future__ import annotations

from pathlib import Path

import click

from sweep.cli.errors import user_errors

RESULTS_MD = "survey_results.md"  # written into <sweep>/survey/ and logged to the MLflow parent run's report/
RESULTS_PNG = "survey_selection_rate.png"  # the same name the report gives the chart


def _sweep_folder(path) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{path} is not a sweep folder (give the experiment folder that `gansweep run` "
                                "wrote, e.g. ./gansweep_results/<name>)")
    return folder


@click.command()
@click.argument("path")
@click.option("--methods", default=None, metavar="A,B,...",
              help="Compare only these arms (comma-separated labels; default: every arm with finished trials).")
@click.option("--group", "groups", multiple=True, metavar="FIELD=VALUE",
              help="Survey only the comparison group(s) with this value of a grouping field of the study, e.g. "
                   "--group time_budget=0 (repeat for more fields). Default: every group; pairs never cross groups.")
@click.option("--pairs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Pairs each participant answers.")
@click.option("--with-real", is_flag=True, help="Sometimes show a held-out real photo against a method's sample "
                                                "(its realism rate).")
@click.option("--real-share", type=click.FloatRange(0, 1, max_open=True), default=0.25, show_default=True,
              help="With --with-real: the share of pairs that show a real photo.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (0.0.0.0 exposes it).")
@click.option("--port", type=click.IntRange(1, 65535), default=5050, show_default=True)
def survey(path, methods, groups, pairs, with_real, real_share, host, port):
    """Serve a preference survey on the finished sweep at PATH: which of two images of one comparison group looks
    better?

    Votes go to PATH/survey/votes.db; `gansweep survey-results PATH` summarises them, per group.
    """
    from sweep.survey import create_app, pool_from_records, serve, sweep_design, votes_path
    from sweep.survey.pool import group_label, parse_group

    with user_errors():
        folder = _sweep_folder(path)
        wanted = [parse_group(g) for g in groups]
        design = sweep_design(folder)
        from sweep.records import read_sweep, reference_table

        real = reference_table(folder) if with_real else None
        if with_real and real is None:
            raise ValueError(f"{path} has no held-out real image table: run the survey without --with-real")
        chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
        pool = pool_from_records(read_sweep(folder), design, methods=chosen, real_table=real, groups=wanted)
        app = create_app(pool, votes_path(folder), n_pairs=pairs, real_share=real_share)
        what = "; ".join(f"{group_label(g)}: {', '.join(ms)}" if g else ", ".join(ms)
                         for g, ms in pool.comparisons.items())
        if len(pool.comparisons) > 1:
            what = f"{len(pool.comparisons)} comparison groups ({what})"
        elif design.group_by:
            what = f"one comparison group ({what})"
        click.echo(f"survey of {what}{' and real photos' if pool.has_real else ''}: "
                   f"{len(pool)} images, {pairs} pairs per participant; votes -> {votes_path(folder)}")
        if pool.skipped:
            click.echo("not surveyed, fewer than two of the methods finished there: " + "; ".join(
                f"{group_label(g)} ({', '.join(ms) or 'none'})" for g, ms in pool.skipped.items()))
        click.echo(f"open http://{host}:{port}/  (Ctrl-C stops; `gansweep survey-results {path}` summarises)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"note: bound to {host}: anyone who can reach this machine can open the survey", err=True)
        serve(app, host, port)


@click.command("survey-results")
@click.argument("path")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=100), default=1000, show_default=True,
              help="Bootstrap resamples (of participants) for the Bradley-Terry intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option("--mlflow-uri", default=None, help="The MLflow store of the sweep (default: the one its record names).")
@click.option("--no-mlflow", is_flag=True, help="Write the files only; log nothing to MLflow.")
def survey_results(path, n_boot, seed, mlflow_uri, no_mlflow):
    """Per comparison group: selection rate per method (95% Wilson CI), head-to-head binomial tests (Holm within
    the group), Bradley-Terry strengths (bootstrap CI over participants) and realism rates of the survey at PATH,
    into PATH/survey/, and onto the sweep's MLflow parent run when its store is reachable."""
    from sweep.survey import survey_results as compute
    from sweep.survey import votes_path
    from sweep.survey.render import markdown, plot

    with user_errors():
        db = votes_path(_sweep_folder(path))
        res = compute(db, n_boot=n_boot, seed=seed)
    table = markdown(res)
    files = [db.parent / RESULTS_MD, db.parent / RESULTS_PNG]
    files[0].write_text(table)
    plot(res, files[1])
    click.echo(table)
    click.echo(f"written: {files[0]}, {files[1]}")
    if not no_mlflow:
        click.echo(log_to_parent_run(Path(path), res.metrics(), files, mlflow_uri))


def log_to_parent_run(folder: Path, metrics: dict, files: list[Path], mlflow_uri: str | None = None) -> str:
    """Put the survey's metrics and files on the sweep's MLflow parent run (its `report/` artifacts, where
    `gansweep report` puts them too); returns one line saying what happened.

    The parent is found by `SweepTracker.attach` (by the sweep path, as `start_sweep` finds it) and written through
    the tracker, but it is neither created nor reopened: its status (FINISHED, FAILED) is the
    sweep's and stays as it is. A store that does not exist, or no parent run in it, is said and skipped (the files
    are written anyway; `gansweep report PATH` attaches them later); an unreachable server likewise.
    """
    from sweep.plan import load_record
    from gan import storage

    try:
        record = load_record(str(folder))
    except FileNotFoundError as e:
        return f"MLflow: not logged ({e})"
    options = record.get("options", {})
    uri = mlflow_uri or options.get("mlflow_uri")
    if not uri:
        return "MLflow: not logged (the sweep's record names no MLflow store; give --mlflow-uri)"
    sweep_path = storage.absolute(str(folder))  # as the plan records it (`Plan.path`)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not Path(uri[len(prefix):]).is_file():
        return f"MLflow: not logged (no store at {uri}; give --mlflow-uri)"
    from sweep.mlflow import tracker as tracking
    from sweep.mlflow.layout import DEFAULT_EXPERIMENT

    tracker = tracking.SweepTracker(uri, experiment_name=options.get("experiment", DEFAULT_EXPERIMENT))
    if tracker.attach(sweep_path) is None:
        if tracker.offline:
            return f"MLflow: not logged (run `gansweep survey-results {folder}` again when {uri} is up)"
        return (f"MLflow: not logged (no parent run of this sweep in {uri}, experiment {tracker.experiment_name}; "
                f"`gansweep report {folder}` creates it and attaches the survey)")
    tracker.sweep_summary(metrics=metrics, files=files)
    if tracker.offline or tracker.failed:
        return f"MLflow: logging to {uri} failed ({tracker.offline_reason or 'see above'})"
    return f"MLflow: {len(metrics)} survey metrics and {len(files)} files on parent run {tracker.parent_run_id} ({uri})"


COMMANDS = [survey, survey_results]
