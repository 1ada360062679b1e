"""``run_service``: the one way every ringpipe daemon runs.

Sequence::

    setup logging -> control socket -> (autonomous: configure beam + scan, start following)
    -> READY=1 + STATUS -> main loop -> STOPPING=1 -> drain + deconfigure -> close socket
    -> final counters logged -> exit code

The main loop wakes at least twice a second to: turn a SIGTERM/SIGINT into a graceful stop
(signal handlers only record the signal; a second one forces exit at once with 128+signal),
toggle DEBUG logging on SIGUSR2, send STATUS= when it changes, log counter deltas every
LOG_INTERVAL_S, and send WATCHDOG=1 every half watchdog interval, but only while the scan
thread (if one runs) has called ``service.progress()`` since the last ping, so a stuck scan
loop gets the daemon restarted.
"""

from __future__ import annotations

import enum
import logging
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from ringbuf import parse_level, setup_logging, toggle_debug
from services.common import systemd
from services.common.config import DaemonConfig, Mode
from services.common.control import (
    ControlCounters,
    ControlError,
    ControlServer,
    default_socket_path,
)
from services.common.counters import DeltaLogger, HealthState, format_counters
from services.common.lifecycle import Command, Lifecycle, Service, State

logger = logging.getLogger(__name__)

STATUS_COMMAND = "status"
COMMANDS = (STATUS_COMMAND, *(c.value for c in Command))
_TICK_S = 0.5


class ExitCode(enum.IntEnum):
    """Process exit codes of the daemons (a forced exit is 128 + the signal number)."""

    OK = 0
    CONFIG = 1  # bad configuration: fix it; systemd units do not restart on this code
    RUNTIME = 2  # the service failed while running (or could not drain cleanly)
    UNAVAILABLE = 3  # something it needs is missing or taken (ring, control socket)


class _Signals:
    """Records SIGTERM/SIGINT/SIGUSR2 for the main loop; a second stop signal exits at once."""

    def __init__(self) -> None:
        self.stop_signal: int | None = None
        self.toggle_debug = False
        self._rfd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, Any] = {}
        self._previous_wakeup = -1
        self.installed = threading.current_thread() is threading.main_thread()
        if not self.installed:
            logger.warning("run_service not on the main thread: signals are not handled")
            return
        self._previous_wakeup = signal.set_wakeup_fd(self._wfd, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGUSR2:
            self.toggle_debug = True
        elif self.stop_signal is None:
            self.stop_signal = signum
        else:
            os.write(2, f"second {signal.Signals(signum).name}: exiting at once\n".encode())
            os._exit(128 + signum)

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, waking early when a signal arrives."""
        ready, _, _ = select.select([self._rfd], [], [], timeout)
        if ready:
            try:
                while os.read(self._rfd, 512):
                    pass
            except BlockingIOError:
                pass

    def restore(self) -> None:
        if self.installed:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self._rfd)
        os.close(self._wfd)


class _Daemon:
    """The state one run_service call keeps: service, lifecycle, control server."""

    def __init__(self, service: Service, config: DaemonConfig) -> None:
        self.service = service
        self.config = config
        self.name = config.name or service.name
        self.started = time.monotonic()
        self.lifecycle = Lifecycle(service, config.source, config.stop_timeout_s, config.mode)
        self.control_counters = ControlCounters()
        self.server = ControlServer(
            config.control_socket or default_socket_path(self.name),
            self.handle,
            COMMANDS,
            mode=config.control_socket_mode,
            state=lambda: self.lifecycle.state.value,
            counters=self.control_counters,
        )

    def health(self) -> tuple[HealthState, list[str]]:
        if self.lifecycle.state is State.RUNTIME_ERROR:
            return HealthState.FAIL, [self.lifecycle.error or "RuntimeError"]
        report = self.service.health.report()
        return report.state, list(report.reasons)

    def status_line(self) -> str:
        health, reasons = self.health()
        text = f"{self.lifecycle.state.value}; health {health.value}"
        if reasons:
            text += f" ({'; '.join(reasons)})"
        extra = self.service.status_line()
        return f"{text}; {extra}" if extra else text

    def handle(self, command: str, config: dict[str, Any]) -> dict[str, Any]:
        if command == STATUS_COMMAND:
            if config:
                self.control_counters.add("commands_refused_total")
                return {"ok": False, "state": self.lifecycle.state.value,
                        "error": "status takes no config", "reason": "invalid_config"}  # fmt: skip
            self.control_counters.add("commands_ok_total")
            return self.status()
        outcome = self.lifecycle.execute(command, config)
        if outcome.ok:
            self.control_counters.add("commands_ok_total")
            logger.info("command %s: ok, state %s", command, outcome.state.value)
        elif outcome.reason == "failed":
            self.control_counters.add("commands_failed_total")
        else:
            self.control_counters.add("commands_refused_total")
            logger.warning("command %s refused: %s", command, outcome.error)
        return {
            "ok": outcome.ok,
            "state": outcome.state.value,
            "error": outcome.error,
            "reason": outcome.reason,
            "command": command,
        }

    def status(self) -> dict[str, Any]:
        lifecycle = self.lifecycle
        health, reasons = self.health()
        try:
            ring: Mapping[str, object] = self.service.ring_fill()
        except Exception as exc:
            ring = {"error": str(exc)}
        configs: dict[str, Any] = {"daemon": self.config.to_dict()}
        applied = dict(lifecycle.configs)  # a copy: commands may change it meanwhile
        configs.update({name: cfg.to_dict() for name, cfg in applied.items()})
        return {
            "ok": True,
            "state": lifecycle.state.value,
            "error": lifecycle.error,
            "previous_state": lifecycle.previous_state.value if lifecycle.previous_state else None,
            "service": self.name,
            "mode": self.config.mode.value,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "health": {"state": health.value, "reasons": reasons},
            "allowed": lifecycle.allowed(),
            "scan_running": lifecycle.scan_running,
            "counters": self.service.counters.snapshot(),
            "control": self.control_counters.snapshot(),
            "ring": dict(ring),
            "config": configs,
        }


def _exit_code_for(reason: str | None) -> ExitCode:
    return {"invalid_config": ExitCode.CONFIG, "refused": ExitCode.UNAVAILABLE}.get(
        reason or "", ExitCode.RUNTIME
    )


def run_service(
    service: Service, config: DaemonConfig, environ: Mapping[str, str] | None = None
) -> int:
    """Run ``service`` until SIGTERM/SIGINT (or a fatal error); returns an :class:`ExitCode`.

    ``config`` is the daemon's loaded configuration (a :class:`DaemonConfig` subclass);
    ``environ`` (default ``os.environ``) supplies the systemd variables.
    """
    environ = os.environ if environ is None else environ
    setup_logging(config.log_level or None)
    daemon = _Daemon(service, config)
    signals = _Signals()
    code = ExitCode.OK
    try:
        code = _serve(daemon, signals, environ, parse_level(config.log_level or None))
    except Exception:
        logger.exception("%s failed", daemon.name)
        code = ExitCode.RUNTIME
        try:
            daemon.lifecycle.shutdown()
        except Exception:
            logger.exception("shutdown after the failure failed too")
    finally:
        daemon.server.close()
        signals.restore()
        logger.info("final counters: %s", format_counters(service.counters.snapshot()))
        logger.info("control counters: %s", format_counters(daemon.control_counters.snapshot()))
    if daemon.lifecycle.scan_running:
        # The scan thread did not stop within STOP_TIMEOUT_S and still uses the rings and its
        # outputs: nothing was closed under it, and no interpreter shutdown may either.
        logger.error("%s: the scan loop did not stop within STOP_TIMEOUT_S %g s; exiting "
                     "with code %d without closing what it uses", daemon.name,
                     config.stop_timeout_s, int(ExitCode.RUNTIME))
        _exit_now(ExitCode.RUNTIME)
    logger.info("%s exiting with code %d", daemon.name, int(code))
    return int(code)


def _exit_now(code: int) -> None:
    """Flush the logs and end the process at once (no interpreter shutdown, no finalizers)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _serve(
    daemon: _Daemon, signals: _Signals, environ: Mapping[str, str], base_level: int
) -> ExitCode:
    config = daemon.config
    try:
        daemon.server.start()
    except ControlError as exc:
        logger.error("%s", exc)
        return ExitCode.UNAVAILABLE
    code = ExitCode.OK
    if config.mode is Mode.AUTONOMOUS:
        outcome = daemon.lifecycle.start_autonomous()
        if not outcome.ok:
            logger.error("cannot start autonomous mode: %s", outcome.error)
            code = _exit_code_for(outcome.reason)
    if code is ExitCode.OK:
        logger.info("%s ready (%s mode)", daemon.name, config.mode.value)
        systemd.notify(environ, ready=True, status=daemon.status_line())
        code = _main_loop(daemon, signals, environ, base_level)
    systemd.notify(environ, stopping=True, status="stopping: draining")
    errors = daemon.lifecycle.shutdown()
    if errors:
        logger.error("shutdown incomplete: %s", "; ".join(errors))
        code = code or ExitCode.RUNTIME
    return code


def _main_loop(
    daemon: _Daemon, signals: _Signals, environ: Mapping[str, str], base_level: int
) -> ExitCode:
    service, lifecycle = daemon.service, daemon.lifecycle
    watchdog_s = systemd.watchdog_interval(environ)
    ping_every = watchdog_s / 2 if watchdog_s else None
    tick = min(_TICK_S, ping_every / 2) if ping_every else _TICK_S
    deltas = DeltaLogger(service.counters.snapshot, daemon.config.log_interval_s, logger)
    last_status = ""
    last_ping = time.monotonic()
    last_beats = service.beats
    stalled = False
    while True:
        signals.wait(tick)
        if signals.stop_signal is not None:
            logger.info("%s received: stopping", signal.Signals(signals.stop_signal).name)
            return ExitCode.OK
        if signals.toggle_debug:
            signals.toggle_debug = False
            level = toggle_debug(base_level)
            logger.warning("SIGUSR2: log level now %s", logging.getLevelName(level))
        if daemon.config.mode is Mode.AUTONOMOUS and lifecycle.state is State.RUNTIME_ERROR:
            logger.error("autonomous mode failed: %s", lifecycle.error)
            return ExitCode.RUNTIME
        status = daemon.status_line()
        if status != last_status:
            systemd.notify(environ, status=status)
            last_status = status
        deltas.poll()
        now = time.monotonic()
        if ping_every and now - last_ping >= ping_every:
            if not lifecycle.scan_running or service.beats != last_beats:
                systemd.notify(environ, watchdog=True)
                last_ping, last_beats, stalled = now, service.beats, False
            elif not stalled:
                stalled = True
                logger.warning("scan loop made no progress for %.1f s: not feeding the watchdog",
                               now - last_ping)  # fmt: skip
