"""Errors that end a command with one clear line instead of a traceback."""


class StartupError(Exception):
    """A process cannot start: the message names what failed and how to fix it."""
