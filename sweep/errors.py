"""One-line user errors for the CLI: every command validates its input inside `user_errors()`."""

from __future__ import annotations

import contextlib

import click


class InputError(click.UsageError):
    """A user-input problem: printed as one line, exit status 2."""


@contextlib.contextmanager
def user_errors():
    """Turn the library's validation errors (ValueError, FileNotFoundError) into one-line CLI errors."""
    try:
        yield
    except (ValueError, FileNotFoundError) as e:
        raise InputError(str(e)) from e
