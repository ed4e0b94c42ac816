"""Errors raised by the readers."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A file or payload is not in a format we read (bad path, missing columns, unparsable JSON).

    The message is one line, fit for a CLI error or an HTTP 4xx body.
    """
