"""Errors a subcommand raises to end with a one-line message instead of a traceback."""


class CommandError(Exception):
    """A user-facing failure: printed as one line, process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class NotAvailableYet(CommandError):
    """A subcommand whose implementation has not landed; exits 2 like a usage error."""

    def __init__(self, what: str):
        super().__init__(f"{what} is not implemented yet in this version", exit_code=2)
