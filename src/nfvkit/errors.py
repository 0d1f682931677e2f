"""The error hierarchy of nfvkit: one domain root, mapped to exit codes by the CLI (and to
ProblemDetails by the REST API later).

Every error carries a message meant for a person, and ``where`` (a file, a graph location, a
config path) when it is about some input.
"""

from __future__ import annotations


class NfvError(Exception):
    """Root of every error nfvkit raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class InputFileError(NfvError):
    """A file given by the user is missing, unreadable or not in the expected format."""

    exit_code = 3


class PcapError(InputFileError):
    """A pcap/pcapng file is malformed or uses something we do not support."""


class ConfigError(NfvError):
    """A configuration (graph, element config, generator profile) is invalid.

    ``errors`` lists every problem found as ``(location, message)``; validation reports them
    all at once rather than stopping at the first.
    """

    exit_code = 2

    def __init__(self, errors: list[tuple[str, str]], where: str | None = None) -> None:
        self.errors = errors
        first = f"{errors[0][0]}: {errors[0][1]}" if errors else "invalid configuration"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more, where)

    def details(self) -> list[str]:
        """One line per problem, each with its location."""
        prefix = f"{self.where}: " if self.where else ""
        return [f"{prefix}{loc}: {msg}" for loc, msg in self.errors]


class HandlerError(NfvError):
    """A runtime handler was called with a bad name or value."""

    exit_code = 2
