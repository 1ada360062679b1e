"""``svc-ctl``: send one command to a daemon's control socket and show the reply."""

from __future__ import annotations

import json
from typing import Any

import click

from ringbuf.errors import HeaderError
from services.common.config import ConfigError, parse_overrides, read_config_file
from services.common.control import ControlClient, ControlError
from services.common.runner import COMMANDS

EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3


class _Refused(click.ClickException):
    exit_code = EXIT_REFUSED


class _Unreachable(click.ClickException):
    exit_code = EXIT_UNREACHABLE


def _format_status(reply: dict[str, Any]) -> str:
    health = reply.get("health") or {}
    reasons = health.get("reasons") or []
    lines = [
        f"{reply.get('service')}: {reply.get('state')}, health {health.get('state')}"
        + (f" ({'; '.join(reasons)})" if reasons else ""),
        f"  mode {reply.get('mode')}, pid {reply.get('pid')}, up {reply.get('uptime_s', 0):.0f} s,"
        f" scan running: {'yes' if reply.get('scan_running') else 'no'}",
        f"  allowed: {', '.join(reply.get('allowed') or []) or 'none'}",
    ]
    if reply.get("error"):
        lines.append(f"  error: {reply['error']} (from {reply.get('previous_state')})")
    for title in ("counters", "control"):
        values = reply.get(title) or {}
        if values:
            lines.append(f"{title}:")
            width = max(len(name) for name in values)
            lines += [f"  {name:<{width}}  {value}" for name, value in values.items()]
    ring = reply.get("ring") or {}
    if ring:
        lines.append("ring:")
        lines += [f"  {name}: {value}" for name, value in ring.items()]
    configs = reply.get("config") or {}
    for section, values in configs.items():
        lines.append(f"config {section}:")
        lines += [f"  {key} {value}" for key, value in values.items()]
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("socket_path", metavar="SOCKET")
@click.argument("command", type=click.Choice(COMMANDS), metavar="COMMAND")
@click.argument("config_file", required=False, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="A config key for the command (repeatable; wins over CONFIG_FILE).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")
@click.option("--timeout", default=30.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the reply.")  # fmt: skip
def main(
    socket_path: str,
    command: str,
    config_file: str | None,
    overrides: tuple[str, ...],
    as_json: bool,
    timeout: float,
) -> None:
    """Send COMMAND to the daemon listening on SOCKET and print its reply.

    COMMAND is status or a lifecycle command: configure_beam, configure_scan, start_scan,
    end_scan, deconfigure_scan, deconfigure_beam, reset. Its config keys come from
    CONFIG_FILE (KEY value lines) and -o KEY=VALUE. Exits 0 if the daemon accepted the
    command, 1 if it refused it, 3 if the daemon cannot be reached or is busy
    (more control connections open than it serves: try again).

    \b
    Examples:
        svc-ctl /run/ringpipe/svc-stat@beam.sock status
        svc-ctl /run/ringpipe/svc-stat@beam.sock configure_beam -o DATA_KEY=a000 -o WEIGHTS_KEY=a010
        svc-ctl /run/ringpipe/svc-stat@beam.sock configure_scan scan.hdr
        svc-ctl /run/ringpipe/svc-stat@beam.sock start_scan -o SCAN_ID=12
        svc-ctl /run/ringpipe/svc-stat@beam.sock status --json | jq .counters
    """
    config: dict[str, object] = {}
    try:
        if config_file:
            config.update(read_config_file(config_file)[0])
        config.update(parse_overrides(overrides))
    except (HeaderError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with ControlClient(socket_path, timeout=timeout) as client:
            reply = client.request(command, config)
    except ControlError as exc:
        raise _Unreachable(str(exc)) from None
    if as_json:
        click.echo(json.dumps(reply, indent=2, sort_keys=False, default=str))
    elif reply.get("ok"):
        if command == "status":
            click.echo(_format_status(reply))
        else:
            extra = f" ({reply['error']})" if reply.get("error") else ""
            click.echo(f"{command}: ok, state {reply.get('state')}{extra}")
    if reply.get("reason") == "busy":  # the daemon did not look at the command
        raise _Unreachable(f"busy: {reply.get('error')} (state {reply.get('state')})")
    if not reply.get("ok"):
        raise _Refused(f"{reply.get('error')} (state {reply.get('state')})")
