"""Errors a user can cause (bad path, bad option, corrupt file): the CLI prints them as one line."""


class UserError(Exception):
    """A mistake in what the user asked for; the message says what and how to fix it."""
