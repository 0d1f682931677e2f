"""The ``nfv`` entry point: the typer app, its commands, and error handling.

Every error nfvkit raises on purpose (:class:`nfvkit.errors.NfvError`) ends the command with one
readable line on stderr (plus one line per further problem for configuration errors) and the
error's exit code: 2 for bad configuration or usage, 3 for bad or missing input files.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from nfvkit.cli import elements as elements_cmd
from nfvkit.cli import gen as gen_cmd
from nfvkit.cli import run as run_cmd
from nfvkit.errors import ConfigError, NfvError

app = typer.Typer(
    name="nfv",
    help="nfvkit: prototype, test, deploy and run network functions on real packets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def report(err: NfvError) -> int:
    """Print ``err`` for a person; return the exit code."""
    lines = err.details() if isinstance(err, ConfigError) else [str(err)]
    for line in lines:
        print(f"nfv: error: {line}", file=sys.stderr)
    return err.exit_code


def _guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn NfvError into a readable message and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NfvError as err:
            raise typer.Exit(report(err)) from None
        except KeyboardInterrupt:
            print("nfv: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    return wrapper


def command(name: str, fn: Callable[..., Any]) -> None:
    """Register ``fn`` as ``nfv NAME`` with nfvkit's error handling."""
    app.command(name)(_guarded(fn))


command("run", run_cmd.run)
command("check", run_cmd.check)
command("elements", elements_cmd.elements)
command("gen", gen_cmd.gen)


def main() -> None:
    """Run the command line."""
    app()


if __name__ == "__main__":
    main()
