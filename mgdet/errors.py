"""The one base class of every error mgdet raises for a user's input (torch-free, imports nothing).

The command line turns any :class:`MgdetError` into one line on stderr and exit code 2 (``mgdet --debug``
shows the traceback). Each subclass keeps a standard second base (``ValueError`` / ``RuntimeError``), so
code that catches those keeps working.
"""

from __future__ import annotations


class MgdetError(Exception):
    """An input mgdet cannot use; the message names the file / key / value and what to do."""


class OutputError(MgdetError, ValueError):
    """An output would overwrite an input or an earlier result, or cannot be written."""


class InputFileError(MgdetError, ValueError):
    """A file given on the command line is not of the kind the option expects."""
