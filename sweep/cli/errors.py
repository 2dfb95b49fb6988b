"""One-line user errors and warnings for the CLI: every command validates its input inside `user_errors()`."""

from __future__ import annotations

import contextlib
import warnings

import click


class InputError(click.UsageError):
    """A user-input problem: printed as one line, exit status 2."""


def _one_line(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` for people: the message on one line, without the file, line and source it came from."""
    click.echo(f"gansweep: warning: {' '.join(str(message).split())}", err=True)


@contextlib.contextmanager
def user_errors():
    """Turn the library's validation errors (ValueError, FileNotFoundError) into one-line CLI errors, and show the
    warnings raised meanwhile (e.g. unreadable image files skipped from a set that is still complete) as one line
    each, `gansweep: warning: ...`."""
    with warnings.catch_warnings():  # restores showwarning and the filters on the way out
        warnings.showwarning = _one_line
        try:
            yield
        except (ValueError, FileNotFoundError) as e:
            raise InputError(str(e)) from e
