"""The command skeleton every sender shares (``emu-send``, ``beam-send``).

Every sender takes the same options: config files (``-c``), ``-o/--set KEY=VALUE``, where to
send (``--host``, ``--port``), how fast (``--rate``), multicast ``--ttl`` and ``--interface``,
and ``-v``. Config files are ``KEY value`` files or, as the SKA CBF-SDP emulator writes them,
INI files (``[section]`` then ``key = value``, read as ``section.key``). A sender names
the config key each common option sets (:class:`SenderKeys`), so ``--port 9000`` is the
same as ``-o DATA_PORT=9000`` for beam-send and ``-o transmission.target_port_start=9000``
for emu-send; an option given on the command line wins over ``-o``, which wins over the
environment, which wins over the files. Errors in the input (config, MS, destination) end
the command with one line, exit code 1.
"""

from __future__ import annotations

import configparser
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from ringbuf import DadaHeader, setup_logging
from ringbuf.errors import HeaderError
from services.common.config import (
    Config,
    ConfigError,
    ConfigSource,
    build_config,
    parse_overrides,
)
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

    def load(self, cls: type[C], strict: bool = False) -> C:
        """The sender's config: files < environment < ``-o`` < the options above.

        ``strict``: a key in a config file or ``-o`` that ``cls`` does not declare is an error
        (otherwise such keys are left for the services that share the files and options).
        """
        files = tuple((path, read_config_file(path)) for path in self.config_files)
        source = ConfigSource(files, dict(os.environ))
        if self.overrides:
            source = source.with_overrides("-o", parse_overrides(self.overrides))
        options = self.options()
        if options:
            source = source.with_overrides("command line", options)
        if strict:
            known = set(cls.keys())
            unknown = [f"{key} ({path}): unknown key" for path, values in files
                       for key in values if key not in known]
            unknown += source.unknown_keys(known)
            if unknown:
                raise ConfigError(source.describe(), unknown)
        return build_config(cls, source)


def is_ini(path: str) -> bool:
    """True if the first line that is not blank or a comment is a ``[section]`` line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if text and not text.startswith(("#", ";")):
                return text.startswith("[")
    return False


def read_config_file(path: str) -> dict[str, str]:
    """``{key: value}`` of a ``KEY value`` file or an INI file (keys ``section.key``)."""
    if not is_ini(path):
        return dict(DadaHeader.load(path).items())
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise HeaderError(f"{path}: {first}") from None
    return {f"{section}.{key}": value.strip() for section in parser.sections()
            for key, value in parser.items(section)}


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
