"""The scan lifecycle of every daemon: the SKA PST ApplicationManager state machine.

States and the commands allowed in each (``reset`` is allowed everywhere)::

    Idle            --configure_beam-->    BeamConfigured
    BeamConfigured  --configure_scan-->    ScanConfigured   --deconfigure_beam--> Idle
    ScanConfigured  --start_scan------->   Scanning         --deconfigure_scan--> BeamConfigured
    Scanning        --end_scan--------->   ScanConfigured
    RuntimeError    --reset------------>   Idle             (any state: reset unwinds to Idle)

A command that is not allowed in the current state, or whose config fails validation, is
refused with a reason and changes nothing. A hook may also refuse by raising :class:`Refused`
(or ``HeaderError`` or ``ConfigError``), which likewise changes nothing. Any other exception
from a hook, or from the scan loop (which runs in its own thread), moves to ``RuntimeError``;
the process keeps running and ``reset`` unwinds what was set up (end_scan, deconfigure_scan,
deconfigure_beam, in that order, from the highest level reached).

The config of a command is the command's map layered over the daemon's own configuration
(its files, environment and ``-o`` options), so keys given at start-up need not be repeated.

In autonomous mode the daemon configures beam and scan itself from its configuration, then
its scan thread calls :meth:`Service.follow_transfer` again and again until stopped;
lifecycle commands are refused (``status`` still works).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ringbuf.errors import HeaderError, Interrupted
from services.common.config import (
    Config,
    ConfigError,
    ConfigSource,
    DaemonConfig,
    Mode,
    build_config,
    non_negative,
    setting,
)
from services.common.counters import Counters, Health

logger = logging.getLogger(__name__)


class State(str, enum.Enum):
    IDLE = "Idle"
    BEAM_CONFIGURED = "BeamConfigured"
    SCAN_CONFIGURED = "ScanConfigured"
    SCANNING = "Scanning"
    RUNTIME_ERROR = "RuntimeError"


class Command(str, enum.Enum):
    CONFIGURE_BEAM = "configure_beam"
    CONFIGURE_SCAN = "configure_scan"
    START_SCAN = "start_scan"
    END_SCAN = "end_scan"
    DECONFIGURE_SCAN = "deconfigure_scan"
    DECONFIGURE_BEAM = "deconfigure_beam"
    RESET = "reset"


#: state -> {command: next state}; anything not listed is refused.
TRANSITIONS: Mapping[State, Mapping[Command, State]] = {
    State.IDLE: {Command.CONFIGURE_BEAM: State.BEAM_CONFIGURED, Command.RESET: State.IDLE},
    State.BEAM_CONFIGURED: {
        Command.CONFIGURE_SCAN: State.SCAN_CONFIGURED,
        Command.DECONFIGURE_BEAM: State.IDLE,
        Command.RESET: State.IDLE,
    },
    State.SCAN_CONFIGURED: {
        Command.START_SCAN: State.SCANNING,
        Command.DECONFIGURE_SCAN: State.BEAM_CONFIGURED,
        Command.RESET: State.IDLE,
    },
    State.SCANNING: {Command.END_SCAN: State.SCAN_CONFIGURED, Command.RESET: State.IDLE},
    State.RUNTIME_ERROR: {Command.RESET: State.IDLE},
}

# How far up the ladder a state is; reset unwinds from the highest level reached.
_LEVEL = {State.IDLE: 0, State.BEAM_CONFIGURED: 1, State.SCAN_CONFIGURED: 2, State.SCANNING: 3}


class Refused(Exception):  # noqa: N818 - a refusal, not an error
    """Raised by a hook to refuse its command (with this reason) and leave the state as it was.

    The hook must undo anything it did before raising.
    """


@dataclass(frozen=True, kw_only=True)
class NoConfig(Config):
    """A command that takes no keys."""


@dataclass(frozen=True, kw_only=True)
class StartScanConfig(Config):
    """The keys of ``start_scan`` (SKA PST: the scan id)."""

    scan_id: int = setting("SCAN_ID", int, validator=non_negative, help="the scan id")


class Service:
    """Base class of a daemon's service: override the hooks it needs.

    Class attributes name the config dataclass of each configuring command. Hooks run on the
    control thread, except :meth:`start_scan` and :meth:`follow_transfer`, which run on the
    scan thread and must return soon after ``stop`` is set. Long loops call
    :meth:`progress` at least every few seconds (the systemd watchdog is fed only while they
    do), and ``health.data_seen()`` whenever data arrives.
    """

    name: ClassVar[str] = "service"
    beam_config: ClassVar[type[Config]] = NoConfig
    scan_config: ClassVar[type[Config]] = NoConfig
    start_config: ClassVar[type[Config]] = StartScanConfig

    def __init__(self, config: DaemonConfig, counters: Counters | None = None) -> None:
        self.config = config
        self.counters = counters if counters is not None else Counters()
        self.health = Health(config.stale_after_s)
        self.beats = 0

    def progress(self) -> None:
        """Heartbeat: the scan loop is making progress (feeds the systemd watchdog)."""
        self.beats += 1

    # Hooks --------------------------------------------------------------------------------
    def configure_beam(self, config: Any) -> None:
        """Attach to the rings named in ``config`` (a :attr:`beam_config`)."""

    def configure_scan(self, config: Any) -> None:
        """Prepare a scan from ``config`` (a :attr:`scan_config`)."""

    def start_scan(self, config: Any, stop: threading.Event) -> None:
        """Run the scan loop until ``stop`` is set (scan thread). Raise to fail the scan."""
        stop.wait()

    def end_scan(self) -> None:
        """After the scan loop returned: flush and close what the scan wrote."""

    def deconfigure_scan(self) -> None:
        """Undo configure_scan. Must tolerate a configure_scan that failed half-way."""

    def deconfigure_beam(self) -> None:
        """Detach from the rings. Must tolerate a configure_beam that failed half-way."""

    def follow_transfer(self, stop: threading.Event) -> None:
        """Autonomous mode: wait for the next transfer in the rings and process it all."""
        raise NotImplementedError(f"{self.name} has no autonomous mode")

    def ring_fill(self) -> Mapping[str, object]:
        """Ring state for the status command (e.g. ``{"data": {"full_blocks": 3, ...}}``)."""
        return {}

    def status_line(self) -> str:
        """A few words for systemd's STATUS= (e.g. ``"scan 12: 345 heaps"``)."""
        return ""


@dataclass(frozen=True)
class Outcome:
    """The result of a command: ``reason`` is one of not_allowed, invalid_config, refused,
    failed (the service went to RuntimeError) when ``ok`` is False."""

    ok: bool
    state: State
    error: str | None = None
    reason: str | None = None


class Lifecycle:
    """Runs a :class:`Service` through the state machine (thread-safe)."""

    def __init__(
        self,
        service: Service,
        source: ConfigSource,
        stop_timeout_s: float,
        mode: Mode = Mode.MANAGED,
    ) -> None:
        self.service = service
        self.source = source
        self.stop_timeout_s = stop_timeout_s
        self.mode = mode
        self.configs: dict[str, Config] = {}
        self.error: str | None = None
        self.previous_state: State | None = None
        self._state = State.IDLE
        self._unwind_from = State.IDLE
        self._command_lock = threading.Lock()  # one command at a time
        self._state_lock = threading.Lock()  # short: state fields
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._closing = False

    # Queries ------------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def scan_running(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def allowed(self) -> list[str]:
        if self.mode is Mode.AUTONOMOUS:
            return []
        return [command.value for command in TRANSITIONS[self._state]]

    # Commands -----------------------------------------------------------------------------
    def execute(self, command: str, config: Mapping[str, object] | None = None) -> Outcome:
        """Run a lifecycle command (``"configure_beam"``, ...) with its config map."""
        try:
            cmd = Command(command)
        except ValueError:
            return Outcome(False, self._state, f"unknown command {command!r}", "not_allowed")
        if self.mode is Mode.AUTONOMOUS:
            return Outcome(
                False,
                self._state,
                f"{cmd.value} refused: the daemon runs in autonomous mode (restart it --managed)",
                "not_allowed",
            )
        with self._command_lock:
            if self._closing:
                return Outcome(False, self._state, "the daemon is shutting down", "not_allowed")
            return self._execute(cmd, config or {})

    def start_autonomous(self) -> Outcome:
        """Configure beam and scan from the daemon's configuration and start following."""
        with self._command_lock:
            for cmd in (Command.CONFIGURE_BEAM, Command.CONFIGURE_SCAN):
                outcome = self._execute(cmd, {})
                if not outcome.ok:
                    return outcome
            self._start_worker(self._follow_loop, "autonomous")
            return Outcome(True, self._state)

    def shutdown(self) -> list[str]:
        """Unwind everything (stop and drain the scan, deconfigure); returns the errors met.

        Commands are refused from then on.
        """
        with self._command_lock:
            self._closing = True
            with self._state_lock:
                start = self._unwind_from if self._state is State.RUNTIME_ERROR else self._state
            errors = self._unwind(start)
            if not self.scan_running:
                self._set_state(State.IDLE, "shutdown")
            return errors

    # Internals ----------------------------------------------------------------------------
    def _execute(self, cmd: Command, config: Mapping[str, object]) -> Outcome:
        state = self._state
        target = TRANSITIONS[state].get(cmd)
        if target is None:
            allowed = ", ".join(self.allowed()) or "none"
            return Outcome(
                False,
                state,
                f"{cmd.value} is not allowed in state {state.value} (allowed: {allowed})",
                "not_allowed",
            )
        if cmd is Command.RESET:
            return self._reset(config)
        config_type = self._config_type(cmd)
        if config_type is None:
            if config:
                return Outcome(False, state, f"{cmd.value} takes no config", "invalid_config")
            parsed: Config | None = None
        else:
            try:
                parsed = self._parse(cmd, config_type, config)
            except ConfigError as exc:
                return Outcome(False, state, str(exc), "invalid_config")
        return self._run_hook(cmd, state, target, parsed)

    def _config_type(self, cmd: Command) -> type[Config] | None:
        return {
            Command.CONFIGURE_BEAM: self.service.beam_config,
            Command.CONFIGURE_SCAN: self.service.scan_config,
            Command.START_SCAN: self.service.start_config,
        }.get(cmd)

    def _parse(
        self, cmd: Command, config_type: type[Config], config: Mapping[str, object]
    ) -> Config:
        where = f"{cmd.value} config"
        known = set(config_type.keys())
        unknown = [f"{key}: unknown key for {cmd.value}" for key in config if key not in known]
        try:
            parsed = build_config(config_type, self.source.with_overrides("command", config), where)
        except ConfigError as exc:
            raise ConfigError(where, unknown + exc.problems) from None
        if unknown:
            raise ConfigError(where, unknown)
        return parsed

    def _run_hook(
        self, cmd: Command, state: State, target: State, config: Config | None
    ) -> Outcome:
        service = self.service
        try:
            if cmd is Command.CONFIGURE_BEAM:
                service.configure_beam(config)
                self.configs["beam"] = config  # type: ignore[assignment]
            elif cmd is Command.CONFIGURE_SCAN:
                service.configure_scan(config)
                self.configs["scan"] = config  # type: ignore[assignment]
            elif cmd is Command.START_SCAN:
                self.configs["start"] = config  # type: ignore[assignment]
                self._start_worker(lambda stop: service.start_scan(config, stop), cmd.value)
            elif cmd is Command.END_SCAN:
                stuck = self._stop_worker()
                if stuck is not None or self._state is State.RUNTIME_ERROR:
                    return Outcome(False, self._state, self.error, "failed")
                service.end_scan()
                self.configs.pop("start", None)
            elif cmd is Command.DECONFIGURE_SCAN:
                service.deconfigure_scan()
                self.configs.pop("scan", None)
            elif cmd is Command.DECONFIGURE_BEAM:
                service.deconfigure_beam()
                self.configs.pop("beam", None)
        except (Refused, HeaderError, ConfigError) as exc:
            logger.warning("%s refused: %s", cmd.value, exc)
            return Outcome(False, state, f"{cmd.value} refused: {exc}", "refused")
        except Exception as exc:
            logger.exception("%s failed", cmd.value)
            self._fail(f"{cmd.value} failed: {_describe(exc)}", max(state, target, key=_level))
            return Outcome(False, self._state, self.error, "failed")
        if cmd is not Command.START_SCAN:  # the scan thread may already have failed
            self._set_state(target, cmd.value)
        return Outcome(True, self._state)

    def _reset(self, config: Mapping[str, object]) -> Outcome:
        if config:
            return Outcome(False, self._state, "reset takes no config", "invalid_config")
        start = self._unwind_from if self._state is State.RUNTIME_ERROR else self._state
        errors = self._unwind(start)
        if self.scan_running:  # nothing was undone: the scan thread still uses it all
            return Outcome(False, self._state, "; ".join(errors), "failed")
        self.error = None
        self._set_state(State.IDLE, "reset")
        if errors:
            return Outcome(True, State.IDLE, "reset with errors: " + "; ".join(errors))
        return Outcome(True, State.IDLE)

    def _unwind(self, start: State) -> list[str]:
        errors: list[str] = []
        level = _LEVEL.get(start, 0)
        steps: list[tuple[int, str, Callable[[], None]]] = [
            (3, "end_scan", self.service.end_scan),
            (2, "deconfigure_scan", self.service.deconfigure_scan),
            (1, "deconfigure_beam", self.service.deconfigure_beam),
        ]
        if level >= 3:
            stuck = self._stop_worker()
            if stuck is not None:
                # Never close what a running scan thread uses (the rings, the open output):
                # it would crash the process. Leave everything to the thread or process exit.
                return [f"{stuck}; nothing was undone while it runs (reset again later)"]
        for needed, name, hook in steps:
            if level >= needed:
                try:
                    hook()
                except Exception as exc:
                    logger.exception("%s failed while unwinding", name)
                    errors.append(f"{name} failed: {_describe(exc)}")
        self.configs.clear()
        return errors

    def _start_worker(self, target: Callable[[threading.Event], None], why: str) -> None:
        self._stop = threading.Event()
        self.service.health.expect_data(True)
        self._set_state(State.SCANNING, why)
        self._worker = threading.Thread(
            target=self._run_worker, args=(target, self._stop), name=f"{self.service.name}-scan"
        )
        self._worker.daemon = True
        self._worker.start()

    def _run_worker(self, target: Callable[[threading.Event], None], stop: threading.Event) -> None:
        try:
            target(stop)
        except Interrupted:
            if not stop.is_set():
                self._fail("scan loop interrupted without a stop request", State.SCANNING)
        except Exception as exc:
            logger.exception("scan loop failed")
            self._fail(f"scan loop failed: {_describe(exc)}", State.SCANNING)
        else:
            if not stop.is_set():
                logger.info("scan loop finished (end the scan with end_scan)")
        finally:
            self.service.health.expect_data(False)

    def _stop_worker(self) -> str | None:
        """Stop and join the scan thread; the error if it did not stop in time."""
        worker = self._worker
        if worker is None:
            return None
        self._stop.set()
        worker.join(self.stop_timeout_s)
        if worker.is_alive():
            message = f"scan loop did not stop within {self.stop_timeout_s:g} s"
            self._fail(message, State.SCANNING)
            return message
        self._worker = None
        return None

    def _follow_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.service.follow_transfer(stop)
            self.service.progress()

    def _fail(self, message: str, unwind_from: State) -> None:
        with self._state_lock:
            if self._state is not State.RUNTIME_ERROR:
                self.previous_state = self._state
                self._unwind_from = unwind_from
                logger.error("state %s -> RuntimeError: %s", self._state.value, message)
            else:
                self._unwind_from = max(self._unwind_from, unwind_from, key=_level)
            self.error = message
            self._state = State.RUNTIME_ERROR

    def _set_state(self, new: State, why: str) -> None:
        with self._state_lock:
            if new is not self._state:
                logger.info("state %s -> %s (%s)", self._state.value, new.value, why)
            self._state = new


def _level(state: State) -> int:
    return _LEVEL.get(state, 0)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
