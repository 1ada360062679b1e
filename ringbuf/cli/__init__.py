"""The ``ringbuf`` command: one click group; each subcommand family lives in its own module."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ringbuf.errors import RingBufError
from ringbuf.logs import setup_logging

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn library errors into one clear line and a non-zero exit (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (RingBufError, ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="WARNING", show_default=True, envvar="RINGPIPE_LOG_LEVEL",
              help="Logging level [env var: RINGPIPE_LOG_LEVEL].")
def cli(log_level: str) -> None:
    """Crash-safe DADA-style shared-memory ring buffers.

    \b
    Examples:
      ringbuf create -k dada -b 16777216 -n 8
      ringbuf junk -k dada header.txt --seconds 10 --rate 500 &
      ringbuf null -k dada --transfers 1 --json
      ringbuf status -k dada
      ringbuf destroy -k dada
    """
    setup_logging(log_level)


def main() -> None:
    from ringbuf.cli import files, rings, tools

    for module in (rings, tools, files):
        module.register(cli)
    cli()
