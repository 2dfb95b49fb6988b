"""The `gansweep` command line (also `python -m sweep`).

Each command group lives in its own module of this package (`run`, `data`, `score`, `survey`, `train`). Ray, MLflow and the survey's web server are imported only
when a command runs (tests/test_imports.py checks it), so `gansweep --help` and input errors cost the import of
torch (which validating a config needs) and no more. Bad input prints one line and exits 2 before any work starts.
"""

from __future__ import annotations

import sys

import click

from sweep.cli.errors import InputError, user_errors  # noqa: F401  (re-exported for the command modules)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="gansweep", prog_name="gansweep", message="%(prog)s %(version)s")
def cli():
    """gansweep: which data augmentations help a GAN learn from a small image set, and how best to reach 128x128
    images, as Ray Tune sweeps tracked in MLflow."""


def _register():
    from sweep.cli import data, run, score, survey, train

    for c in [data.data, train.train, score.score, *run.COMMANDS, *survey.COMMANDS]:
        cli.add_command(c)


_register()


def main(argv=None):
    """Entry point: click in non-standalone mode so every usage error is exactly one line on stderr."""
    try:
        rv = cli.main(args=argv, prog_name="gansweep", standalone_mode=False)
    except click.UsageError as e:
        click.echo(f"gansweep: error: {e.format_message()}", err=True)
        sys.exit(2)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
