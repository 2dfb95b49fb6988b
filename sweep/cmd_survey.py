"""`gansweep survey | survey-results`: ask people which samples look better, then say what their votes show."""

from __future__ import annotations

from pathlib import Path

import click

from sweep.errors import user_errors


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
@click.option("--pairs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Pairs each participant answers.")
@click.option("--with-real", is_flag=True, help="Sometimes show a held-out real photo against a method's sample "
                                                "(its realism rate).")
@click.option("--real-share", type=click.FloatRange(0, 1, max_open=True), default=0.25, show_default=True,
              help="With --with-real: the share of pairs that show a real photo.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (0.0.0.0 exposes it).")
@click.option("--port", type=click.IntRange(1, 65535), default=5050, show_default=True)
def survey(path, methods, pairs, with_real, real_share, host, port):
    """Serve a preference survey on the finished sweep at PATH: which of two images looks better?

    Votes go to PATH/survey/votes.db; `gansweep survey-results PATH` summarises them.
    """
    from sweep.survey import create_app, pool_from_records, serve, votes_path

    with user_errors():
        folder = _sweep_folder(path)
        from sweep.records import read_sweep, reference_table

        real = reference_table(folder) if with_real else None
        if with_real and real is None:
            raise ValueError(f"{path} has no held-out real image table: run the survey without --with-real")
        chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
        pool = pool_from_records(read_sweep(folder), methods=chosen, real_table=real)
        app = create_app(pool, votes_path(folder), n_pairs=pairs, real_share=real_share)
        click.echo(f"survey of {', '.join(pool.methods)}{' and real photos' if pool.has_real else ''}: "
                   f"{len(pool)} images, {pairs} pairs per participant; votes -> {votes_path(folder)}")
        click.echo(f"open http://{host}:{port}/  (Ctrl-C stops; `gansweep survey-results {path}` summarises)")
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"note: bound to {host}: anyone who can reach this machine can open the survey", err=True)
        serve(app, host, port)


@click.command("survey-results")
@click.argument("path")
@click.option("--bootstrap", "n_boot", type=click.IntRange(min=100), default=1000, show_default=True,
              help="Bootstrap resamples (of participants) for the Bradley-Terry intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
def survey_results(path, n_boot, seed):
    """Selection rate per method (95% Wilson CI), head-to-head binomial tests (Holm), Bradley-Terry strengths
    (bootstrap CI over participants) and realism rates of the survey at PATH, into PATH/survey/."""
    from sweep.survey import survey_results as compute
    from sweep.survey import votes_path

    with user_errors():
        db = votes_path(_sweep_folder(path))
        res = compute(db, n_boot=n_boot, seed=seed)
    table = res.markdown()
    (db.parent / "results.md").write_text(table)
    figure = res.plot(db.parent / "selection_rate.png")
    click.echo(table)
    click.echo(f"written: {db.parent / 'results.md'}, {figure}")


COMMANDS = [survey, survey_results]
