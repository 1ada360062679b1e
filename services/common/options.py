"""The command-line options every daemon shares, as one click decorator.

::

    @click.command()
    @daemon_options
    def main(options: DaemonOptions) -> None:
        config = options.load(StatConfig, StatService)   # click error, exit 1, on bad config
        raise SystemExit(run_service(StatService(config), config))

Options: ``--config FILE`` (repeatable; later files win), ``-o KEY=VALUE`` (repeatable),
``--log-level``, ``--socket PATH``, ``--autonomous/--managed``. The last three are shorthands
for ``-o LOG_LEVEL=...``, ``-o CONTROL_SOCKET=...`` and ``-o MODE=...`` and win over them.
"""

from __future__ import annotations

import difflib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from ringbuf import LOG_LEVELS, setup_logging
from ringbuf.errors import HeaderError
from services.common.config import ConfigError, ConfigSource, DaemonConfig, Mode, build_config
from services.common.lifecycle import Service
from services.common.runner import ExitCode

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=DaemonConfig)


@dataclass(frozen=True)
class DaemonOptions:
    """The parsed common options."""

    config_files: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    log_level: str | None = None
    socket: str | None = None
    mode: Mode | None = None

    def source(self) -> ConfigSource:
        """The configuration layers these options describe (files read now)."""
        source = ConfigSource.load(self.config_files, self.overrides)
        flags: dict[str, object] = {}
        if self.log_level:
            flags["LOG_LEVEL"] = self.log_level
        if self.socket:
            flags["CONTROL_SOCKET"] = self.socket
        if self.mode is not None:
            flags["MODE"] = self.mode.value
        return source.with_overrides("command line", flags) if flags else source

    def load(self, config_type: type[C], service_type: type[Service] | None = None) -> C:
        """Build the daemon's config; every problem at once as a ClickException (exit 1).

        ``-o`` keys must be read by ``config_type`` or by one of ``service_type``'s command
        configs (beam, scan, start), so a misspelt key is an error, not silently ignored.
        In autonomous mode the daemon configures beam and scan from this same config, so
        ``service_type``'s beam and scan configs are built here too: a bad or missing key
        stops the daemon before it starts, not in its first configure_beam/configure_scan.
        """
        try:
            source = self.source()
            config = _build(config_type, source, service_type)
        except (HeaderError, ConfigError) as exc:  # a config file that cannot be read, bad keys
            raise click.ClickException(str(exc)) from None
        setup_logging(config.log_level or None)
        return config


def _build(config_type: type[C], source: ConfigSource, service_type: type[Service] | None) -> C:
    """``config_type`` from ``source``, checked as :meth:`DaemonOptions.load` describes."""
    command_types = () if service_type is None else (
        service_type.beam_config, service_type.scan_config, service_type.start_config)
    known = set(config_type.keys()).union(*(t.keys() for t in command_types))
    problems = source.unknown_keys(known)
    _warn_misspelt(source, known)
    config: C | None = None
    try:
        config = build_config(config_type, source)
    except ConfigError as exc:
        problems += exc.problems
    if _mode(source) is Mode.AUTONOMOUS:
        for command_type in command_types[:2]:  # start_scan does not run in autonomous mode
            try:
                build_config(command_type, source)
            except ConfigError as exc:
                problems += exc.problems
    if problems or config is None:
        raise ConfigError(source.describe(), list(dict.fromkeys(problems)))  # once each
    return config


def _warn_misspelt(source: ConfigSource, known: set[str]) -> None:
    """Warn, naming file and line, of each file key that this daemon does not read but that
    looks like one it does (a typo: files may hold other programs' keys, so no error)."""
    for (path, values), lines in zip(source.files, source.file_lines, strict=False):
        for key in values:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            if close:
                logger.warning("%s: line %s: %s is not a key this daemon reads (did you mean "
                               "%s?); ignored", path, lines.get(key, "?"), key, close[0])


def _mode(source: ConfigSource) -> Mode | None:
    """The mode ``source`` asks for (None if it cannot say), also when other keys are bad."""
    found = source.lookup("MODE")
    if found is None:
        return Mode.MANAGED
    try:
        return Mode(str(found[0]).strip().lower())
    except ValueError:
        return None


def daemon_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the common daemon options; the command receives them as ``options``."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        config_files: tuple[str, ...],
        overrides: tuple[str, ...],
        log_level: str | None,
        socket_path: str | None,
        autonomous: bool | None,
        **kwargs: Any,
    ) -> Any:
        setup_logging(log_level)
        mode = None if autonomous is None else (Mode.AUTONOMOUS if autonomous else Mode.MANAGED)
        options = DaemonOptions(tuple(config_files), tuple(overrides), log_level, socket_path, mode)
        try:
            return func(*args, options=options, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception:  # a crash is a runtime failure (2), never a config error (1)
            logger.exception("%s failed", click.get_current_context().info_name)
            raise SystemExit(ExitCode.RUNTIME) from None

    decorators = [
        click.option(
            "--config", "-c", "config_files", multiple=True, metavar="FILE",
            type=click.Path(dir_okay=False),
            help="Config file of KEY value lines (repeatable; later files win).",
        ),
        click.option(
            "-o", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
            help="Override a config key (repeatable). Keys can also be set in the environment "
            "as RINGPIPE_<KEY>; -o wins over the environment, which wins over files.",
        ),
        click.option(
            "--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
            help="Log level (default: LOG_LEVEL key, else env RINGPIPE_LOG_LEVEL, else INFO).",
        ),
        click.option(
            "--socket", "socket_path", metavar="PATH", default=None,
            help="Control socket (default: $RUNTIME_DIRECTORY/<name>.sock or "
            "/run/ringpipe/<name>.sock).",
        ),
        click.option(
            "--autonomous/--managed", "autonomous", default=None,
            help="Autonomous: configure from the config and follow every transfer in the "
            "rings. Managed: wait for lifecycle commands on the control socket "
            "(default: MODE key, else managed).",
        ),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        wrapper = decorator(wrapper)
    return wrapper
