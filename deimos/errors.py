"""The project's error hierarchy.

`InputError` is bad user input: the CLI turns it into exit code 2 with a one-line reason. It
subclasses `ValueError` so that library callers can catch the familiar type.
"""


class DeimosError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(DeimosError, ValueError):
    """Input that the user must fix: the message names the file, line, id or argument and why."""
