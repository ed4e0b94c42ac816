"""Errors a command reports as one line and a non-zero exit, without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix: a bad path, option, schema or configuration."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, prefixed by its kind when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
