"""The command skeleton every sender shares (``emu-send``, ``beam-send``).

Every sender takes the same options: config files (``-c``), ``-o/--set KEY=VALUE``, where to
send (``--host``, ``--port``), how fast (``--rate``), multicast ``--ttl`` and ``--interface``,
and ``-v``. A sender names the config key each common option sets (:class:`SenderKeys`), so
``--port 9000`` is the same as ``-o DATA_PORT=9000`` for beam-send and
``-o transmission.target_port_start=9000`` for emu-send; an option given on the command line
wins over ``-o``, which wins over the environment, which wins over the files. Errors in the
input (config, MS, destination) end the command with one line, exit code 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from ringbuf import setup_logging
from services.common.config import Config, ConfigSource, build_config
from services.common.errors import USER_ERRORS

C = TypeVar("C", bound=Config)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class SenderKeys:
    """The config key each common option sets."""

    host: str
    port: str
    rate: str
    ttl: str
    interface: str


@dataclass(frozen=True)
class SenderArgs:
    """The common options as given on the command line."""

    keys: SenderKeys
    config_files: tuple[str, ...]
    overrides: tuple[str, ...]
    host: str | None = None
    port: int | None = None
    rate: float | None = None
    ttl: int | None = None
    interface: str | None = None
    verbose: int = 0

    def options(self) -> dict[str, object]:
        """``{config key: value}`` of the common options given."""
        given = {self.keys.host: self.host, self.keys.port: self.port, self.keys.rate: self.rate,
                 self.keys.ttl: self.ttl, self.keys.interface: self.interface}
        return {key: value for key, value in given.items() if value is not None}

    def load(self, cls: type[C]) -> C:
        """The sender's config: files < environment < ``-o`` < the options above."""
        source = ConfigSource.load(self.config_files, self.overrides)
        options = self.options()
        if options:
            source = source.with_overrides("command line", options)
        return build_config(cls, source)


def sender_options(keys: SenderKeys) -> Callable[[F], F]:
    """Add the common options to a click command; it receives them as ``args: SenderArgs``."""

    def decorate(func: F) -> F:
        options = [
            click.option("-c", "--config", "config_files", multiple=True,
                         type=click.Path(dir_okay=False),
                         help="KEY value config file (repeatable; later files win)"),
            click.option("-o", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
                         help="set a config key (repeatable)"),
            click.option("--host", default=None, help=f"destination address ({keys.host})"),
            click.option("--port", type=int, default=None,
                         help=f"destination UDP port of the first stream ({keys.port})"),
            click.option("--rate", type=float, default=None,
                         help=f"bytes per second over all streams ({keys.rate})"),
            click.option("--ttl", type=int, default=None,
                         help=f"multicast TTL ({keys.ttl})"),
            click.option("--interface", default=None,
                         help="multicast: address of the interface to send from "
                              f"({keys.interface})"),
            click.option("-v", "--verbose", count=True, help="log more (-v info, -vv debug)"),
        ]

        def wrapper(config_files: tuple[str, ...], overrides: tuple[str, ...],
                    host: str | None, port: int | None, rate: float | None, ttl: int | None,
                    interface: str | None, verbose: int, **kwargs: Any) -> Any:
            args = SenderArgs(keys, config_files, overrides, host, port, rate, ttl, interface,
                              verbose)
            setup_logging(("WARNING", "INFO", "DEBUG")[min(verbose, 2)])
            try:
                return func(args=args, **kwargs)
            except USER_ERRORS + (OSError, ValueError) as exc:
                logging.getLogger(func.__module__).debug("failed", exc_info=True)
                raise click.ClickException(str(exc)) from None

        wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate
